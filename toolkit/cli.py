"""The `imgtool` command line: parse, call, print. Exit codes: 0 ok, 1 check/build failed, 2 usage or environment."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
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
base_app = typer.Typer(
    help="Base images: the offline bootstrap, per-server bases in a registry, imgtool.lock.", no_args_is_help=True
)
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
AppOpt = Annotated[str | None, typer.Option("--app", help="ASGI app as module:attr (default: \\[tool.imgtool] app).")]
ContextOpt = Annotated[
    Path | None, typer.Option("--context", help="Build context holding the app (default: the bundled app).")
]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Base image (default: python:<python>-slim).")]
PythonOpt = Annotated[str | None, typer.Option("--python", help="Python version X.Y of the default base.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="Runtime stage: distroless (Python and the libraries the app links, from Debian packages, no shell) "
        "or debian (the base image, with a shell and apt). Default: \\[tool.imgtool] runtime, else distroless.",
    ),
]


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _tag_prefix() -> str:
    """IMGTOOL_TAG_PREFIX, put before every default tag: test sessions sharing one engine keep their images apart."""
    return os.environ.get("IMGTOOL_TAG_PREFIX", "")


def _notice(message: str) -> None:
    from rich.markup import escape

    err.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


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


def _plans(server_names, all_servers, app_ref, context, base, python, tag=None, frozen=False, runtime=None):
    """Config, Docker client and one BuildPlan per selected server (on imgtool.lock's bases when it has them)."""
    from toolkit import assets as helper_files
    from toolkit import engine
    from toolkit.base import resolve_bases
    from toolkit.config import load_config
    from toolkit.plan import make_plan
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref, python=python, base=base, runtime=runtime)
    specs = select_servers(server_names, all_servers, config.servers)
    client = engine.connect()
    bases = resolve_bases(client, config, [spec.name for spec in specs], base, frozen, _notice)
    assets = helper_files.ensure((engine.daemon_arch(client),))
    plans = [
        make_plan(config, spec, bases[spec.name], assets, tag, several=len(specs) > 1, tag_prefix=_tag_prefix())
        for spec in specs
    ]
    # Said once everything is decided, so an error stays the only line.
    if config.origins["app"].startswith("detected"):
        err.print(f"app: {config.app}, {config.origins['app']}", highlight=False, markup=False)
    err.print(f"dependencies: {config.deps.summary}", highlight=False, markup=False)
    if any(plan.runtime != config.runtime for plan in plans):
        _notice(f"the per-server bases from imgtool.lock are the runtime (debian), not {config.runtime}")
    return client, plans


@app.command(epilog="Example: imgtool render --server granian -o Dockerfile")
def render(
    server: Annotated[str, typer.Option("--server", "-s", help="Server to render for.")] = "granian",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    runtime: RuntimeOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Print the Dockerfile that `imgtool build` would use; its header names the buildx command that builds it."""
    from toolkit import engine
    from toolkit.render import render_dockerfile

    if output is not None and not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
    _, plans = _plans([server], False, app_ref, context, base, python, runtime=runtime)
    text = render_dockerfile(plans[0], str(output.resolve()) if output else "Dockerfile", engine.resolve_ca_cert(None))
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
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Build only on the bases in imgtool.lock; fail if it is missing or stale.")
    ] = False,
    runtime: RuntimeOpt = None,
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
    client, plans = _plans(server, all_servers, app_ref, context, base, python, tag, frozen, runtime)
    results = []
    for plan in plans:
        if plan.server.deprecation:
            _notice(plan.server.deprecation)
        if not as_json:
            err.print(f"[bold]building[/] {plan.tag} on {plan.base.ref}", highlight=False)
        dockerfile = render_dockerfile(plan, "-", ca)
        results.append(_build_checked(client, plan, dockerfile, ca, no_cache, show_progress=not as_json))
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


def _build_checked(client, plan, dockerfile, ca, no_cache, show_progress):
    """Build one image; its import check imports the app's import-time skeleton when a full check left a trace.

    A skeleton that no longer fits (the import ran a stubbed body) costs one more build, with the app itself;
    a build with the app itself leaves the trace for the next one (toolkit.importkey).
    """
    from toolkit import engine, importkey

    context, app_ref = plan.config.context, plan.config.app
    key = importkey.prepare(context, app_ref, plan.app_dir)
    try:
        result = engine.build_image(client, plan, dockerfile, ca, no_cache, show_progress, import_key=key)
    except engine.ImportKeyStale as exc:
        _notice(f"{exc}: checking the app itself")
        importkey.forget(context, app_ref)
        key = None
        result = engine.build_image(client, plan, dockerfile, ca, no_cache, show_progress)
    if key is None:
        report = engine.read_image_json(client, result.image_id, f"{plan.assets_dir}/{importkey.REPORT_NAME}")
        if report is not None:
            importkey.remember(context, app_ref, report)
    return result


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
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the containers (repeatable).")
    ] = None,
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
    environment = {}
    for pair in env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {pair!r} is not KEY=VALUE: e.g. --env DATABASE_URL=sqlite:///tmp/db")
        environment[key] = value
    if image and (server or all_servers):
        raise UsageError("--image and --server/--all exclude each other: pass one of them")
    if junit_file is not None and not junit_file.parent.is_dir():
        raise UsageError(f"cannot write {junit_file}: directory {junit_file.parent} does not exist")
    if image:
        refs = list(image)
    else:
        config = load_config(context=context)
        refs = [
            default_tag(config, spec, _tag_prefix()) for spec in select_servers(server, all_servers, config.servers)
        ]
    selected = set(check or CHECKS)
    if protocol:
        selected = (selected - set(PROTOCOLS)) | set(protocol)

    client = engine.connect()
    images = [describe_image(client, ref, health_path, port, protocol, environment) for ref in refs]
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
    from toolkit.plan import SERVER_BASE_LABEL

    client = engine.connect()
    names = [
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.startswith("python:")
        or tag == BOOTSTRAP_IMAGE
        or (image.labels or {}).get(engine.LABEL) == "base"
        or (image.labels or {}).get(SERVER_BASE_LABEL) == "server"
    ]
    bases = [describe(client, name) for name in sorted(set(names))]
    if as_json:
        _print_json([asdict(base) for base in bases])
        return
    table = Table(title="base images")
    for column in ("image", "digest", "kind"):
        table.add_column(column)
    for base in bases:
        kind = "per-server base" if base.server_base else "offline bootstrap" if base.bootstrapped else "published"
        table.add_row(base.name, base.digest or "-", kind)
    out.print(table)


RegistryOpt = Annotated[
    str,
    typer.Option(
        "--registry",
        help="Registry of the per-server bases, host[:port][/path]; plain HTTP only for localhost/127.0.0.1.",
    ),
]


@contextmanager
def _registry_progress(enabled: bool):
    """A callback showing the engine's push/pull events as per-layer progress bars on stderr."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err, transient=True
    ) as progress:
        tasks: dict[str, object] = {}

        def update(event: dict) -> None:
            layer, status = event.get("id"), event.get("status", "")
            if not layer or "progressDetail" not in event:
                return
            if layer not in tasks:
                tasks[layer] = progress.add_task(layer, total=None)
            detail = event.get("progressDetail") or {}
            task = tasks[layer]
            if detail.get("total"):
                progress.update(task, total=detail["total"], completed=detail.get("current", 0))
            progress.update(task, description=f"{layer} {status.lower()}")

        yield update


def _digest_table(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for column in ("server", "image", "digest"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["server"], row["ref"], row["digest"])
    out.print(table)


@base_app.command(
    "build",
    epilog="Examples: imgtool base build --server granian · imgtool base build --all --python 3.11 "
    "--registry localhost:5000",
)
def base_build(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    python: PythonOpt = None,
    registry: RegistryOpt = "localhost:5000",
    base: Annotated[
        str | None, typer.Option("--base", help="Root Python base (default: python:<python>-slim, else offline).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build without BuildKit's layer cache.")] = False,
    ca_cert: Annotated[
        Path | None,
        typer.Option("--ca-cert", help="CA bundle for the build's HTTPS (default: the system bundle, as a secret)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build per-server bases <registry>/imgtool-base:<server>-py<X.Y>: Python + a venv with the server."""
    from toolkit import assets as helper_files
    from toolkit import engine
    from toolkit.base import resolve_base, validate_python, validate_registry
    from toolkit.config import DEFAULT_PYTHON
    from toolkit.plan import make_server_base_plan
    from toolkit.render import render_base_dockerfile
    from toolkit.servers import select_servers

    registry = validate_registry(registry)
    python = validate_python(python or DEFAULT_PYTHON)
    specs = select_servers(server, all_servers)
    ca = engine.resolve_ca_cert(ca_cert)
    engine.require_buildx()
    client = engine.connect()
    root = resolve_base(client, base, python, _notice)
    assets = helper_files.ensure((engine.daemon_arch(client),))
    results = []
    for spec in specs:
        plan = make_server_base_plan(spec, root, python, assets, registry)
        if not as_json:
            err.print(f"[bold]building[/] {plan.tag} on {root.ref}", highlight=False)
        dockerfile = render_base_dockerfile(plan, "-", ca)
        results.append(engine.build_server_base(client, plan, dockerfile, ca, no_cache, not as_json))
    if as_json:
        _print_json([asdict(result) for result in results])
        return
    table = Table(title="imgtool base build")
    for column in ("server", "image", "size", "time"):
        table.add_column(column)
    for result in results:
        table.add_row(result.server, result.tag, f"{result.size_bytes / 1e6:.0f} MB", f"{result.seconds:.1f} s")
    out.print(table)


def _transfer_bases(title: str, transfer, server, all_servers, python, registry, as_json) -> None:
    """Push or pull each selected per-server base with progress; print the digests."""
    from toolkit import engine
    from toolkit.base import validate_python, validate_registry
    from toolkit.config import DEFAULT_PYTHON
    from toolkit.plan import server_base_ref
    from toolkit.servers import select_servers

    registry = validate_registry(registry)
    python = validate_python(python or DEFAULT_PYTHON)
    specs = select_servers(server, all_servers)
    client = engine.connect()
    rows = []
    for spec in specs:
        ref = server_base_ref(registry, spec.name, python)
        with _registry_progress(not as_json) as progress:
            digest = transfer(client, ref, spec.name, python, progress)
        rows.append({"server": spec.name, "ref": ref, "digest": digest})
    if as_json:
        _print_json(rows)
    else:
        _digest_table(title, rows)


@base_app.command(
    "push", epilog="Examples: imgtool base push --registry localhost:5000 --server granian · imgtool base push --all"
)
def base_push(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    python: PythonOpt = None,
    registry: RegistryOpt = "localhost:5000",
    as_json: JsonOpt = False,
) -> None:
    """Push per-server bases to a registry (credentials: the standard Docker config); print their digests."""
    from toolkit.base import push

    _transfer_bases("imgtool base push", push, server, all_servers, python, registry, as_json)


@base_app.command(
    "pull", epilog="Examples: imgtool base pull --registry localhost:5000 --server granian · imgtool base pull --all"
)
def base_pull(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    python: PythonOpt = None,
    registry: RegistryOpt = "localhost:5000",
    as_json: JsonOpt = False,
) -> None:
    """Pull per-server bases from a registry; print their digests."""
    from toolkit.base import pull_server_base

    def pull(client, ref, _server, _python, progress):
        return pull_server_base(client, ref, progress)

    _transfer_bases("imgtool base pull", pull, server, all_servers, python, registry, as_json)


@base_app.command(
    "lock",
    epilog="Examples: imgtool base lock --server granian --server uvicorn · "
    "imgtool base lock --all --registry localhost:5000 --context ~/src/myproject",
)
def base_lock(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    python: PythonOpt = None,
    registry: RegistryOpt = "localhost:5000",
    context: ContextOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin per-server bases by registry digest in the project's imgtool.lock (written or updated)."""
    from toolkit import engine
    from toolkit.base import lock_digest, validate_registry
    from toolkit.config import load_config
    from toolkit.lock import Lock, LockEntry, read_lock, write_lock
    from toolkit.plan import server_base_ref
    from toolkit.servers import select_servers

    registry = validate_registry(registry)
    config = load_config(context=context, python=python)
    specs = select_servers(server, all_servers, config.servers)
    client = engine.connect()
    lock = read_lock(config.context) or Lock()
    rows = []
    for spec in specs:
        ref = server_base_ref(registry, spec.name, config.python)
        digest = lock_digest(client, ref, _notice)
        lock = lock.with_entry(spec.name, config.python, LockEntry(ref, digest))
        rows.append({"server": spec.name, "ref": ref, "digest": digest})
    path = write_lock(config.context, lock)
    if as_json:
        _print_json({"lock": str(path), "bases": rows})
        return
    _digest_table(f"{path}", rows)


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


@app.command(
    epilog="Examples: imgtool workflow · imgtool workflow --context app -s granian -s uvicorn "
    "-o .github/workflows/images.yml --force"
)
def workflow(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Workflow file to write (never replaced without --force).")
    ] = Path(".github/workflows/images.yml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing workflow file.")] = False,
    context: Annotated[
        str, typer.Option("--context", help="The app's build context, relative to the repository root.")
    ] = ".",
    server: ServerOpt = None,
    python: Annotated[
        list[str] | None, typer.Option("--python", help="Python X.Y to build for (repeatable; default 3.11, 3.12).")
    ] = None,
    install: Annotated[
        str | None, typer.Option("--install", help="pip arguments that install imgtool on the runner.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a GitHub Actions workflow: build, smoke-test, then push multi-arch images with SBOM and provenance."""
    from toolkit.workflow import PYTHONS, render_workflow, write_workflow

    pythons = tuple(python) if python else PYTHONS
    text = render_workflow(context=context, install=install, servers=tuple(server) if server else None, pythons=pythons)
    written = write_workflow(output.expanduser(), text, force)
    if as_json:
        _print_json({"output": str(written), "servers": server or "all", "pythons": list(pythons)})
        return
    err.print(f"wrote {written}; commit it, then each push builds, tests and publishes to ghcr.io")


@app.command("config", epilog="Examples: imgtool config · imgtool config --context ~/src/myproject --json")
def show_config(
    server: ServerOpt = None,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    health_path: Annotated[str | None, typer.Option("--health-path", help="Health route.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Container port.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the settings a build would use: defaults < \\[tool.imgtool] < flags, and where each came from."""
    from rich.markup import escape

    from toolkit.config import describe_config, load_config
    from toolkit.servers import select_servers

    config = load_config(context, app_ref, python, base, health_path, port)
    servers = tuple(spec.name for spec in select_servers(server, False, config.servers))
    origin = "flag" if server else config.origins.get("servers", "default")
    rows = describe_config(config, servers, origin)
    if as_json:
        _print_json({"context": str(config.context), "settings": {key: {"value": v, "from": o} for key, v, o in rows}})
        return
    table = Table(title=f"imgtool config: {config.context}")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for key, value, source in rows:
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(escape(key), escape(shown), escape(source))
    out.print(table)


@app.command(epilog="Examples: imgtool init · imgtool init --context ~/src/myproject --server uvicorn --force")
def init(
    context: Annotated[Path, typer.Option("--context", help="The project to set up.")] = Path("."),
    server: ServerOpt = None,
    app_ref: AppOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing \\[tool.imgtool] and .dockerignore.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write \\[tool.imgtool] into pyproject.toml and a Python .dockerignore; never overwrite without --force."""
    from toolkit import scaffold
    from toolkit.config import load_config
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref)
    servers = [spec.name for spec in select_servers(server, False, config.servers)]
    table = scaffold.tool_table(config.app, servers, config.health_path, config.port)
    changes = scaffold.plan_init(config.context, table, force)
    scaffold.apply(changes)
    if as_json:
        _print_json([{"path": str(change.path), "action": change.action} for change in changes])
        return
    for change in changes:
        hint = " (exists and differs; --force replaces it)" if change.action == "kept" else ""
        err.print(f"{change.action:9} {change.path}{hint}", highlight=False, markup=False)


@app.command(epilog="Examples: imgtool doctor · imgtool doctor --json")
def doctor(
    python: PythonOpt = None,
    context: Annotated[
        Path | None, typer.Option("--context", help="Project whose imgtool.lock decides the base path (default: .).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check engine, buildx, compose, base image and disk space: each line ok or the fix; exit 2 if unusable."""
    from rich.markup import escape

    from toolkit.doctor import diagnose, usable

    findings = diagnose(python or "3.11", context)
    ok = usable(findings)
    if as_json:
        _print_json({"usable": ok, "checks": [asdict(finding) for finding in findings]})
    else:
        for finding in findings:
            status = "[green]ok [/]" if finding.ok else ("[red]fix[/]" if finding.required else "[yellow]fix[/]")
            out.print(f"{status}  {finding.name:8} {escape(finding.detail)}", highlight=False)
        out.print("usable: builds and tests can run" if ok else "not usable yet: fix the lines marked fix")
    if not ok:
        raise typer.Exit(2)


@app.command(epilog="Examples: imgtool bake --all · then: docker buildx bake -f docker-bake.hcl granian")
def bake(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Bake file to write.")] = Path("docker-bake.hcl"),
    as_json: JsonOpt = False,
) -> None:
    """Write a docker-bake.hcl with a target per server (Dockerfiles beside it under .imgtool/)."""
    from toolkit import engine, scaffold
    from toolkit.assets import copy_beside
    from toolkit.compose import assets_dir, check_output

    output = output.expanduser()
    check_output(output)
    _, plans = _plans(server, all_servers, app_ref, context, base, python)
    text, dockerfiles = scaffold.bake_file(plans, output, engine.resolve_ca_cert(None))
    for path, dockerfile in dockerfiles.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dockerfile)
    copy_beside(plans[0].assets_context, assets_dir(output))
    output.write_text(text)
    if as_json:
        _print_json({"output": str(output), "targets": [plan.server.name for plan in plans]})
        return
    err.print(f"wrote {output}; build: docker buildx bake -f {output.name} (from {output.parent})", highlight=False)


@app.command(
    epilog="Examples: imgtool bench --all · imgtool bench --server granian --duration 5s --json · "
    "imgtool bench --image myapp:latest --plot bench.png"
)
def bench(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="Measure this image instead (repeatable; any image).")
    ] = None,
    context: ContextOpt = None,
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="Load time per protocol, 1s to 10m: 10s, 1500ms, 1m.")
    ] = "10s",
    connections: Annotated[
        int, typer.Option("--connections", "-c", min=1, max=256, help="Concurrent connections (h2c: streams).")
    ] = 32,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            help="bridge: load the container's own address (default); published: its 127.0.0.1 port "
            "through Docker's userland proxy.",
        ),
    ] = "bridge",
    path: Annotated[str, typer.Option("--path", help="Route to load.")] = "/",
    generator: Annotated[
        str, typer.Option("--generator", help="auto (wrk/h2load when installed), wrk, or httpx (built in).")
    ] = "auto",
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG bar chart (matplotlib).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load each image (server on CPU 0, load on CPU 1): req/s, p50/p99, errors, size, time-to-healthy, RSS."""
    from toolkit import bench as b
    from toolkit import engine
    from toolkit.config import load_config
    from toolkit.plan import default_tag
    from toolkit.servers import select_servers
    from toolkit.smoke.runner import new_run_id

    seconds = b.parse_duration(duration)
    if not path.startswith("/"):
        raise UsageError(f"--path {path!r} must start with /: e.g. --path /")
    if via not in ("bridge", "published"):
        raise UsageError(f"--via {via!r} is not bridge or published: pass one of them")
    if image and (server or all_servers):
        raise UsageError("--image and --server/--all exclude each other: pass one of them")
    if plot_file is not None:
        b.require_matplotlib()
        if not plot_file.parent.is_dir():
            raise UsageError(f"cannot write {plot_file}: directory {plot_file.parent} does not exist")
    generators = b.pick_generators(generator)
    if image:
        refs = list(image)
    else:
        config = load_config(context=context)
        refs = [
            default_tag(config, spec, _tag_prefix()) for spec in select_servers(server, all_servers, config.servers)
        ]
    client = engine.connect()
    subjects = [b.subject_for(client, ref) for ref in refs]
    cpus = b.load_cpus()
    report = b.BenchReport(
        duration_seconds=seconds,
        connections=connections,
        path=path,
        generators={k: v for k, v in generators.items() if k == "http1" or any(s.h2c for s in subjects)},
        server_cpus=b.SERVER_CPUS,
        load_cpus=",".join(map(str, sorted(cpus))) if cpus else "any",
        # IMGTOOL_RUN_ID lets a caller (CI, a test session) find and clean exactly its own containers.
        run_id=os.environ.get("IMGTOOL_RUN_ID") or new_run_id(),
    )
    with b.Bench(client, report.run_id, via) as runner, err.status("starting") as status:
        for subject in subjects:
            status.update(f"{subject.name}: starting, then {seconds:g} s of load per protocol")
            report.results.append(runner.measure(subject, generators, seconds, connections, path))
    if plot_file is not None:
        b.plot(report, str(plot_file))
    if as_json:
        _print_json(report.as_dict())
    else:
        table = Table(title="imgtool bench")
        for column in b.TABLE_COLUMNS:
            table.add_column(column, justify="left" if column == "server" else "right")
        for row in b.table_rows(report):
            table.add_row(*row)
        out.print(table)
        out.print(b.describe_generators(report), highlight=False, markup=False)
        for result in report.results:
            if result.error:
                out.print(f"{result.name}: {result.error}", highlight=False, markup=False)
        if plot_file is not None:
            out.print(f"wrote {plot_file}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


def _interrupt(signum, frame) -> None:
    raise Interrupted()


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app()
    except ImgtoolError as exc:
        from rich.markup import escape

        # Messages carry user input (paths, names, `host[:port][/path]`): never read them as markup.
        err.print(f"[red]imgtool: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
