"""The `imgtool` command line: parse, call, print. Exit codes: 0 ok, 1 check/build failed, 2 usage or environment."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from toolkit.errors import ImgtoolError, Interrupted, UsageError

app = typer.Typer(
    name="imgtool",
    help="Build, smoke-test and compose Docker images of a Python ASGI app, for every ASGI server.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
base_app = typer.Typer(help="Base images: the offline bootstrap and what is available locally.", no_args_is_help=True)
app.add_typer(base_app, name="base")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--server", "-s", help="Server to act on (repeatable): uvicorn, hypercorn, daphne, granian, gunicorn."
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Act on every server in the registry.")]
AppOpt = Annotated[str | None, typer.Option("--app", help="ASGI app as module:attr (default: [tool.imgtool] app).")]
ContextOpt = Annotated[
    Path | None, typer.Option("--context", help="Build context holding the app (default: the bundled app).")
]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Base image (default: python:<python>-slim).")]
PythonOpt = Annotated[str | None, typer.Option("--python", help="Python version X.Y of the default base.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")]


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _notice(message: str) -> None:
    err.print(f"[yellow]note:[/] {message}", highlight=False)


@app.command(epilog="Example: imgtool servers --json")
def servers(as_json: JsonOpt = False) -> None:
    """List the ASGI servers imgtool builds, with their protocols and commands."""
    from toolkit.servers import SERVERS

    if as_json:
        _print_json(
            [
                {
                    "name": spec.name,
                    "summary": spec.summary,
                    "packages": list(spec.packages),
                    "protocols": sorted(spec.protocols),
                    "lifespan": spec.lifespan,
                    "graceful": spec.graceful,
                    "command": list(spec.command),
                    "limitations": spec.limitations,
                    "deprecation": spec.deprecation,
                }
                for spec in SERVERS.values()
            ]
        )
        return
    table = Table(title="ASGI servers")
    for column in ("server", "packages", "protocols", "lifespan", "graceful", "command"):
        table.add_column(column)
    for spec in SERVERS.values():
        name = f"{spec.name} [dim](legacy)[/]" if spec.deprecation else spec.name
        table.add_row(
            name,
            "\n".join(spec.packages),
            ", ".join(sorted(spec.protocols)),
            "yes" if spec.lifespan else "no",
            "yes" if spec.graceful else "no",
            " ".join(spec.command),
        )
    out.print(table)


def _plans(server_names, all_servers, app_ref, context, base, python, tag=None):
    """Config, Docker client and one BuildPlan per selected server."""
    from toolkit import engine
    from toolkit.base import resolve_base
    from toolkit.config import load_config
    from toolkit.plan import make_plan
    from toolkit.servers import select_servers

    specs = select_servers(server_names, all_servers)
    config = load_config(context=context, app=app_ref, python=python, base=base)
    client = engine.connect()
    base_image = resolve_base(client, config.base, config.python, _notice)
    assets = engine.ensure_assets_image(client)
    plans = [make_plan(config, spec, base_image, assets, tag, several=len(specs) > 1) for spec in specs]
    return client, plans


@app.command(epilog="Example: imgtool render --server granian -o Dockerfile")
def render(
    server: Annotated[str, typer.Option("--server", "-s", help="Server to render for.")] = "granian",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Print the Dockerfile that `imgtool build` would use."""
    from toolkit.render import render_dockerfile

    if output is not None and not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
    _, plans = _plans([server], False, app_ref, context, base, python)
    text = render_dockerfile(plans[0])
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@app.command(epilog="Examples: imgtool build --server granian · imgtool build --all --json")
def build(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Image tag; with several servers it must contain {server}.")
    ] = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build without BuildKit's layer cache.")] = False,
    ca_cert: Annotated[
        Path | None,
        typer.Option("--ca-cert", help="CA bundle for the build's HTTPS (default: the system bundle, as a secret)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a multi-stage image of the app for each server (default: the bundled app on granian)."""
    from toolkit import engine
    from toolkit.render import render_dockerfile

    ca = engine.resolve_ca_cert(ca_cert)
    if tag is not None:
        from toolkit.config import validate_tag

        validate_tag(tag.replace("{server}", "server"))
    engine.require_buildx()
    client, plans = _plans(server, all_servers, app_ref, context, base, python, tag)
    results = []
    for plan in plans:
        if plan.server.deprecation:
            _notice(plan.server.deprecation)
        if not as_json:
            err.print(f"[bold]building[/] {plan.tag} on {plan.base.ref}", highlight=False)
        result = engine.build_image(client, plan, render_dockerfile(plan), ca, no_cache, show_progress=not as_json)
        results.append(result)
    if as_json:
        _print_json([asdict(result) for result in results])
        return
    table = Table(title="imgtool build")
    for column in ("server", "tag", "image id", "size", "time"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.server,
            result.tag,
            result.image_id.removeprefix("sha256:")[:12],
            f"{result.size_bytes / 1e6:.0f} MB",
            f"{result.seconds:.1f} s",
        )
    out.print(table)


@app.command(
    "test",
    epilog="Examples: imgtool test --server granian · imgtool test --all --junit report.xml · "
    "imgtool test --image myapp:latest --protocol http1 --health-path /healthz",
)
def test_images(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    context: ContextOpt = None,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="Test this image instead (repeatable; any image).")
    ] = None,
    protocol: Annotated[
        list[str] | None, typer.Option("--protocol", "-p", help="Protocols to check: http1, h2c, h2-tls, ws.")
    ] = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", "-c", help="Run only these checks (repeatable; default all).")
    ] = None,
    health_path: Annotated[str | None, typer.Option("--health-path", help="Health route (default: label).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Container port (default: label or 8000).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for healthy.")] = 20.0,
    junit_file: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run each image and prove health and every protocol its server claims; exit 1 on any failure."""
    from toolkit import engine
    from toolkit.config import load_config
    from toolkit.plan import default_tag
    from toolkit.servers import PROTOCOLS, select_servers
    from toolkit.smoke import CHECKS, Report
    from toolkit.smoke import report as render
    from toolkit.smoke.runner import Runner, describe_image, new_run_id

    for name in protocol or []:
        if name not in PROTOCOLS:
            raise UsageError(f"unknown protocol {name!r}: choose from {', '.join(PROTOCOLS)}")
    for name in check or []:
        if name not in CHECKS:
            raise UsageError(f"unknown check {name!r}: choose from {', '.join(CHECKS)}")
    if image and (server or all_servers):
        raise UsageError("--image and --server/--all exclude each other: pass one of them")
    if junit_file is not None and not junit_file.parent.is_dir():
        raise UsageError(f"cannot write {junit_file}: directory {junit_file.parent} does not exist")
    if image:
        refs = list(image)
    else:
        config = load_config(context=context)
        refs = [default_tag(config, spec) for spec in select_servers(server, all_servers)]
    selected = set(check or CHECKS)
    if protocol:
        selected = (selected - set(PROTOCOLS)) | set(protocol)

    client = engine.connect()
    images = [describe_image(client, ref, health_path, port, protocol) for ref in refs]
    report = Report()
    # IMGTOOL_RUN_ID lets a caller (CI, a test session) find and clean exactly its own containers.
    run_id = os.environ.get("IMGTOOL_RUN_ID") or new_run_id()
    with Runner(client, run_id, timeout=timeout) as runner, err.status("starting") as status:
        for subject in images:
            report.servers.append(
                runner.run(subject, selected, lambda step, name=subject.name: status.update(f"{name}: {step}"))
            )
    if junit_file is not None:
        junit_file.write_text(render.junit(report))
    if as_json:
        _print_json(render.as_dict(report))
    else:
        out.print(render.table(report))
        for line in render.notes(report):
            out.print(f"[dim]{line}[/]", highlight=False)
        for line in render.failures(report):
            out.print(line, highlight=False, markup=False)
    if report.failed:
        raise typer.Exit(1)


@base_app.command("bootstrap", epilog="Example: imgtool base bootstrap")
def base_bootstrap(
    python: PythonOpt = None,
    mirror: Annotated[str | None, typer.Option("--mirror", help="Debian mirror (default: apt's own).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the base exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a Debian + Python base image offline (debootstrap + docker import), for hosts with no registry."""
    from toolkit import engine
    from toolkit.base import BOOTSTRAP_PYTHON, bootstrap

    client = engine.connect()
    if not as_json:
        err.print("bootstrapping the offline Python base (debootstrap, about a minute)...")
    image = bootstrap(client, python or BOOTSTRAP_PYTHON, mirror, force)
    if as_json:
        _print_json(asdict(image))
    else:
        out.print(f"base ready: {image.name}")


@base_app.command("list", epilog="Example: imgtool base list --json")
def base_list(as_json: JsonOpt = False) -> None:
    """Show the base images present locally that imgtool can build on."""
    from toolkit import engine
    from toolkit.base import BOOTSTRAP_IMAGE, describe

    client = engine.connect()
    names = [
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.startswith("python:") or tag == BOOTSTRAP_IMAGE or (image.labels or {}).get(engine.LABEL) == "base"
    ]
    bases = [describe(client, name) for name in sorted(set(names))]
    if as_json:
        _print_json([asdict(base) for base in bases])
        return
    table = Table(title="base images")
    for column in ("image", "digest", "kind"):
        table.add_column(column)
    for base in bases:
        table.add_row(base.name, base.digest or "-", "offline bootstrap" if base.bootstrapped else "published")
    out.print(table)


@app.command(
    epilog="Examples: imgtool compose --all · imgtool compose -s granian --build -o stack.yaml · "
    "then: docker compose up -d --wait"
)
def compose(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Compose file to write (validated first).")] = Path(
        "compose.yaml"
    ),
    build_mode: Annotated[
        bool,
        typer.Option(
            "--build/--image",
            help="--image: run the images `imgtool build` made. --build: compose builds them from "
            "Dockerfiles written to .imgtool/ beside the file (needs the default docker build driver).",
        ),
    ] = False,
    port_base: Annotated[
        int, typer.Option("--port-base", help="First host port on 127.0.0.1; the rest count up.")
    ] = 8001,
    profile: Annotated[
        bool,
        typer.Option("--profile", help="Put each service in a profile named after its server (and 'all')."),
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="WEB_CONCURRENCY of every service.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Write a compose file running the app under each server: healthchecks, 127.0.0.1 ports, restarts."""
    from toolkit import compose as stack
    from toolkit import engine
    from toolkit.servers import select_servers

    output = output.expanduser()
    specs = select_servers(server, all_servers)
    stack.check_output(output)
    stack.check_ports(port_base, len(specs))
    stack.check_workers(workers)
    client, plans = _plans(server, all_servers, app_ref, context, base, python)
    for plan in plans:
        if plan.server.deprecation:
            _notice(plan.server.deprecation)
    ca = engine.resolve_ca_cert(None) if build_mode else None
    result = stack.emit(
        client,
        plans,
        output,
        port_base=port_base,
        build=build_mode,
        profiles=profile,
        workers=workers,
        ca_cert=ca,
        notice=_notice,
    )
    if as_json:
        _print_json(asdict(result))
        return
    table = Table(title=f"imgtool compose: {result.output} ({result.mode} mode, project {result.project})")
    for column in ("service", "url", "image" if result.mode == "image" else "dockerfile"):
        table.add_column(column)
    for service in result.services:
        table.add_row(service.server, f"{service.url}/", service.image or service.dockerfile or "-")
    out.print(table)
    selector = " --profile all" if result.profiles else ""
    err.print(f"wrote {result.output}; start it: docker compose -f {result.output}{selector} up -d --wait")


def _interrupt(signum, frame) -> None:
    raise Interrupted()


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app()
    except ImgtoolError as exc:
        err.print(f"[red]imgtool: error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
