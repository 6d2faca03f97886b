"""The `imgtool` command line: parse, call, print. Exit codes: 0 ok, 1 check/build failed, 2 usage or environment."""

from __future__ import annotations

import dataclasses
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

from toolkit.errors import EnvironmentProblem, ImgtoolError, Interrupted, UsageError

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


def _print_version(value: bool) -> None:
    if value:
        from toolkit import DISTRIBUTION, __version__

        sys.stdout.write(f"imgtool {__version__} ({DISTRIBUTION})\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version (and the package's name) and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    # No docstring: the app's help above stays the one `imgtool --help` shows.
    pass


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
    Path | None,
    typer.Option(
        "--context", help="The project directory (default: the current directory, or \\[tool.imgtool] context)."
    ),
]
DemoOpt = Annotated[bool, typer.Option("--demo", help="Act on imgtool's bundled reference app instead of a project.")]
HealthPathOpt = Annotated[
    str | None,
    typer.Option(
        "--health-path",
        help="Route that must answer 2xx (default: \\[tool.imgtool] health-path, else any answer below 500 at /).",
    ),
]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Base image (default: python:<python>-slim).")]
PythonOpt = Annotated[str | None, typer.Option("--python", help="Python version X.Y of the default base.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")]


# ---- issue 20: private indexes, backing services, dev mode (options and helpers) ----


def _network(value: str | None) -> str | None:
    if value is not None and value not in ("default", "host", "none"):
        raise typer.BadParameter(f"{value!r} is not default, host or none")
    return value


NetworkOpt = Annotated[
    str | None,
    typer.Option(
        "--network",
        help="The build's network: host reaches a package index on this machine's 127.0.0.1 (default: default).",
        callback=_network,
    ),
]
WithOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        help="Add a backing service (repeatable): postgres, redis; NAME=IMAGE for another image. The app gets "
        "its connection settings (DATABASE_URL, REDIS_URL, POSTGRES_*) and starts once it is healthy.",
    ),
]


def _index_secrets(indexes):
    """Package-index credentials as build secrets: from this environment and the netrc file (toolkit/indexes.py)."""
    from toolkit.indexes import build_secrets, check_credentials, netrc_file

    check_credentials(indexes, os.environ)
    return build_secrets(indexes, netrc_file(os.environ, Path.home()))


def _stack_extension(values: list[str] | None):
    """`--with` services as a function that adds them to a compose model (validated now, applied later)."""
    from toolkit.services import parse_with, with_services

    selected = parse_with(values)
    return (lambda model: with_services(model, selected)) if selected else None


def _with_index_secrets(extend, secrets):
    from toolkit.indexes import with_build_secrets

    if not secrets:
        return extend
    return lambda model: with_build_secrets(extend(model) if extend else model, secrets)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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
                    "without_lifespan": spec.without_lifespan,
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


def _plans(
    server_names,
    all_servers,
    app_ref,
    context,
    base,
    python,
    tag=None,
    frozen=False,
    builder=None,
    demo=False,
    health_path=None,
):
    """Config, Docker client and one BuildPlan per selected server (on imgtool.lock's bases when it has them).

    `builder` (engine.Builder): the helper files carry uv for its native architecture, and a docker-driver
    builder's own engine is the one the client talks to; else the current context's engine.
    """
    from toolkit import assets as helper_files
    from toolkit import engine
    from toolkit.assets import docker_arch
    from toolkit.base import resolve_bases
    from toolkit.config import load_config
    from toolkit.plan import make_plan
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref, python=python, base=base, health_path=health_path, demo=demo)
    specs = select_servers(server_names, all_servers, config.servers)
    client = engine.connect(builder.docker_context(engine.current_context()) if builder else None)
    bases = resolve_bases(client, config, [spec.name for spec in specs], base, frozen, _notice)
    arch = docker_arch(builder.platforms[0]) if builder else engine.daemon_arch(client)
    assets = helper_files.ensure((arch,))
    plans = [make_plan(config, spec, bases[spec.name], assets, tag, several=len(specs) > 1) for spec in specs]
    # Said once everything is decided, so an error stays the only line.
    if config.origins["app"].startswith("detected"):
        err.print(f"app: {config.app}, {config.origins['app']}", highlight=False, markup=False)
    err.print(f"dependencies: {config.deps.summary}", highlight=False, markup=False)
    if config.project_path != ".":
        err.print(f"context: {config.context} (uv workspace), project {config.project_path}", highlight=False)
    if config.origins["python"].startswith("detected"):
        err.print(f"python: {config.python}, {config.origins['python']}", highlight=False, markup=False)
    if config.django is not None:
        static = "collectstatic in the build" if config.django.static_root else "no STATIC_ROOT, no collectstatic"
        err.print(f"django: settings {config.django.settings}, {static}", highlight=False, markup=False)
    for note in dict.fromkeys(note for plan in plans for note in plan.notes):
        _notice(note)
    return client, plans


@app.command(epilog="Example: imgtool render --server granian -o Dockerfile")
def render(
    server: Annotated[str, typer.Option("--server", "-s", help="Server to render for.")] = "granian",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Print the Dockerfile that `imgtool build` would use; its header names the buildx command that builds it."""
    from toolkit import engine
    from toolkit.render import render_dockerfile

    if output is not None and not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
    _, plans = _plans([server], False, app_ref, context, base, python, demo=demo, health_path=health_path)
    text = render_dockerfile(plans[0], str(output.resolve()) if output else "Dockerfile", engine.resolve_ca_cert(None))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@app.command(
    help="Build a multi-stage image of the project in the current directory for each server.\n\n"
    "On the current Docker context's engine (DOCKER_HOST, DOCKER_CONTEXT, `docker context use`) or any buildx "
    "builder (--builder); --push and a registry cache (--cache-to/--cache-from) take the image and the cache "
    "to other machines.",
    epilog="Examples: cd myproject && imgtool build --server granian · imgtool build --demo --all --json · "
    "imgtool build --push --tag localhost:5000/myapp:{server} --cache-to localhost:5000/myapp-cache:{server}",
)
def build(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
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
    sbom: Annotated[
        Path | None,
        typer.Option(
            "--sbom",
            help="Also write the image's CycloneDX SBOM (it is in every image at /opt/imgtool/sbom.cdx.json) "
            "to FILE; with several servers FILE must contain {server}.",
        ),
    ] = None,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance",
            help="Attach SLSA provenance (mode=max); needs the containerd image store or a non-docker buildx "
            "driver (`imgtool doctor` says how).",
        ),
    ] = False,
    reproducible: Annotated[
        bool,
        typer.Option(
            "--reproducible",
            help="Byte-for-byte reproducible: SOURCE_DATE_EPOCH from the last commit (or the newest file), an OCI "
            "export with rewrite-timestamp, then loaded; prints the image manifest digest.",
        ),
    ] = False,
    builder: Annotated[
        str | None,
        typer.Option(
            "--builder", help="Any buildx builder (`docker buildx ls`); default: the current Docker context's engine."
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push to the registry the tag names (instead of loading into the engine).")
    ] = False,
    cache_to: Annotated[
        list[str] | None,
        typer.Option(
            "--cache-to",
            help="Export the build cache (repeatable): buildx syntax, or a registry ref for "
            "type=registry,mode=max; {server} is replaced.",
        ),
    ] = None,
    cache_from: Annotated[
        list[str] | None,
        typer.Option("--cache-from", help="Import a build cache (repeatable): buildx syntax or a registry ref."),
    ] = None,
    network: NetworkOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a multi-stage image of the project in the current directory for each server (default: granian)."""
    from toolkit import engine
    from toolkit.plan import BuildOptions, check_build_options
    from toolkit.render import render_dockerfile

    ca = engine.resolve_ca_cert(ca_cert)
    if tag is not None:
        from toolkit.config import validate_tag

        validate_tag(tag.replace("{server}", "server"))
    if network is not None and network not in ("default", "host", "none"):
        raise UsageError(f"--network {network!r}: use default, host or none")
    engine.require_buildx()
    chosen = engine.inspect_builder(builder) if builder else None
    options = BuildOptions(
        builder=builder,
        push=push,
        cache_to=tuple(cache_to or ()),
        cache_from=tuple(cache_from or ()),
        network=network,
        no_cache=no_cache,
        docker_context=chosen.docker_context(engine.current_context()) if chosen else None,
        provenance=provenance,
        epoch=0 if reproducible else None,
    )
    check_build_options(options, [], several=False)
    client, plans = _plans(server, all_servers, app_ref, context, base, python, tag, frozen, chosen, demo, health_path)
    check_build_options(options, [plan.tag for plan in plans], several=len(plans) > 1)
    sbom_files = {}
    if sbom is not None:
        from toolkit.sbom import output_path

        sbom_files = {plan.server.name: output_path(sbom, plan.server.name, len(plans) > 1) for plan in plans}
    if (provenance or reproducible) and not builder:
        problem = engine.attestation_problem(client)
        if problem:
            wanted = " and ".join(
                name for name, on in (("--provenance", provenance), ("--reproducible", reproducible)) if on
            )
            raise EnvironmentProblem(f"{wanted}: {problem}")
    if reproducible:
        from toolkit.reproducible import source_date_epoch

        epoch = source_date_epoch(plans[0].config.context)
        options = dataclasses.replace(options, epoch=epoch.seconds)
        if not as_json:
            err.print(f"SOURCE_DATE_EPOCH={epoch.seconds}: {epoch.source}", highlight=False, markup=False)
    options = dataclasses.replace(options, secrets=tuple(_index_secrets(plans[0].config.indexes)))
    results = []
    sboms = {}
    for plan in plans:
        if plan.server.deprecation:
            _notice(plan.server.deprecation)
        if not as_json:
            where = f" with builder {builder}" if builder else ""
            err.print(f"[bold]building[/] {plan.tag} on {plan.base.ref}{where}", highlight=False)
        dockerfile = render_dockerfile(plan, "-", ca, secrets=options.secrets)
        result = engine.build_image(client, plan, dockerfile, ca, options, show_progress=not as_json)
        for warning in result.warnings:
            _notice(warning)
        results.append(result)
        if plan.server.name in sbom_files:
            from toolkit import sbom as sbom_module

            data = sbom_module.read_from_image(client, result.image_id)
            sbom_files[plan.server.name].write_bytes(data)
            sboms[plan.server.name] = {"file": str(sbom_files[plan.server.name]), **sbom_module.summary(data)}
    if as_json:
        _print_json(
            [
                {**asdict(result), **({"sbom": sboms[result.server]} if result.server in sboms else {})}
                for result in results
            ]
        )
        return
    table = Table(title="imgtool build")
    digest_column = "pushed digest" if push else "digest" if reproducible else None
    columns = ["server", "tag", "image id", "size", "time"] + ([digest_column] if digest_column else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for result in results:
        elsewhere = f"- (in {builder or 'the registry'})"
        size = f"{result.size_bytes / 1e6:.0f} MB" if result.size_bytes is not None else elsewhere
        row = [result.server, result.tag, result.image_id.removeprefix("sha256:")[:12], size, f"{result.seconds:.1f} s"]
        table.add_row(*row, *([result.digest or "-"] if digest_column else []))
    out.print(table)
    for server_name, info in sboms.items():
        err.print(
            f"sbom: {info['file']} ({server_name}: {info['components']} components, {info['python']} Python, "
            f"{info['debian']} Debian packages)",
            highlight=False,
            markup=False,
        )


@app.command(
    "test",
    epilog="Examples: cd myproject && imgtool test --server granian --env SECRET_KEY=x · imgtool test --demo --all "
    "--junit report.xml · imgtool test --image myapp:latest --protocol http1 --health-path /healthz",
)
def test_images(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="Test this image instead (repeatable; any image).")
    ] = None,
    protocol: Annotated[
        list[str] | None, typer.Option("--protocol", "-p", help="Protocols to check: http1, h2c, h2-tls, ws.")
    ] = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", "-c", help="Run only these checks (repeatable; default all).")
    ] = None,
    health_path: Annotated[
        str | None,
        typer.Option(
            "--health-path",
            help="Route that must answer 2xx, also what the image's HEALTHCHECK asks (default: the image's label, "
            "else any answer below 500 at /).",
        ),
    ] = None,
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
    from toolkit.containers import current_run_id
    from toolkit.plan import default_tag
    from toolkit.servers import PROTOCOLS, select_servers
    from toolkit.smoke import CHECKS, Report
    from toolkit.smoke import report as render
    from toolkit.smoke.runner import Runner, describe_image

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
    if health_path is not None and not health_path.startswith("/"):
        raise UsageError(f"--health-path {health_path!r} must start with '/': e.g. --health-path /health")
    if image:
        refs = list(image)
    else:
        config = load_config(context=context, app=app_ref, demo=demo)
        refs = [default_tag(config, spec) for spec in select_servers(server, all_servers, config.servers)]
    selected = set(check or CHECKS)
    if protocol:
        selected = (selected - set(PROTOCOLS)) | set(protocol)

    client = engine.connect()
    images = [describe_image(client, ref, health_path, port, protocol, environment) for ref in refs]
    report = Report()
    run_id = current_run_id()
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
    from toolkit.containers import LABEL, SERVER_BASE_LABEL

    client = engine.connect()
    names = [
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.startswith("python:")
        or tag == BOOTSTRAP_IMAGE
        or (image.labels or {}).get(LABEL) == "base"
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
    from toolkit.plan import BuildOptions, make_server_base_plan
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
        results.append(engine.build_image(client, plan, dockerfile, ca, BuildOptions(no_cache=no_cache), not as_json))
    if as_json:
        _print_json([asdict(result) for result in results])
        return
    table = Table(title="imgtool base build")
    for column in ("server", "image", "size", "time"):
        table.add_column(column)
    for result in results:
        size = f"{result.size_bytes / 1e6:.0f} MB" if result.size_bytes is not None else "-"
        table.add_row(result.server, result.tag, size, f"{result.seconds:.1f} s")
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
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
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
    config = load_config(context=context, app=app_ref, python=python, demo=demo)
    specs = select_servers(server, all_servers, config.servers)
    client = engine.connect()
    lock = read_lock(config.project_dir) or Lock()
    rows = []
    for spec in specs:
        ref = server_base_ref(registry, spec.name, config.python)
        digest = lock_digest(client, ref, _notice)
        lock = lock.with_entry(spec.name, config.python, LockEntry(ref, digest))
        rows.append({"server": spec.name, "ref": ref, "digest": digest})
    path = write_lock(config.project_dir, lock)
    if as_json:
        _print_json({"lock": str(path), "bases": rows})
        return
    _digest_table(f"{path}", rows)


@app.command(
    epilog="Examples: imgtool compose --all · imgtool compose -s granian --build -o stack.yaml · "
    "then: docker compose up -d --wait · imgtool compose --swarm --replicas 3 --tag localhost:5000/myapp:{server} "
    "-o stack.yaml, then: docker stack deploy -c stack.yaml myapp"
)
def compose(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
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
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="WEB_CONCURRENCY of every service (default 1; with --swarm: follow the CPU limit)."
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option("--tag", "-t", help="The image to run, as `imgtool build --tag` named it ({server} is replaced)."),
    ] = None,
    start_period: Annotated[
        int, typer.Option("--start-period", help="Seconds the app may take to become healthy.")
    ] = 30,
    swarm: Annotated[
        bool, typer.Option("--swarm", help="A stack file for `docker stack deploy`, with a deploy: section.")
    ] = False,
    replicas: Annotated[
        int | None, typer.Option("--replicas", help="Swarm: tasks per service (implies --swarm).")
    ] = None,
    cpus: Annotated[str, typer.Option("--cpus", help="Swarm: CPU limit per task; the workers follow it.")] = "1",
    memory: Annotated[str, typer.Option("--memory", help="Swarm: memory limit per task, e.g. 512M.")] = "512M",
    endpoint_mode: Annotated[
        str,
        typer.Option("--endpoint-mode", help="Swarm: vip (a virtual IP) or dnsrr (DNS round robin, no IPVS needed)."),
    ] = "vip",
    with_services: WithOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a compose file running the app under each server: healthchecks, 127.0.0.1 ports, restarts."""
    from toolkit import compose as stack
    from toolkit import engine
    from toolkit.servers import select_servers

    output = output.expanduser()
    specs = select_servers(server, all_servers)
    stack.check_output(output)
    stack.check_start_period(start_period)
    swarm_options = None
    if swarm or replicas is not None:
        if build_mode:
            raise UsageError("--swarm runs images from a registry: emit it without --build (push them first)")
        swarm_options = stack.SwarmOptions(
            replicas=stack.DEFAULT_REPLICAS if replicas is None else replicas,
            cpus=cpus,
            memory=memory,
            endpoint_mode=endpoint_mode,
        )
        stack.check_swarm(swarm_options)
    else:
        stack.check_ports(port_base, len(specs))
    if workers is not None:
        stack.check_workers(workers)
    if tag is not None:
        from toolkit.config import validate_tag

        validate_tag(tag.replace("{server}", "server"))
    client, plans = _plans(server, all_servers, app_ref, context, base, python, tag, demo=demo, health_path=health_path)
    extend = _stack_extension(with_services)
    for plan in plans:
        if plan.server.deprecation:
            _notice(plan.server.deprecation)
    ca = engine.resolve_ca_cert(None) if build_mode else None
    if build_mode:
        extend = _with_index_secrets(extend, _index_secrets(plans[0].config.indexes))
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
        start_period=start_period,
        swarm=swarm_options,
        extend=extend,
    )
    if as_json:
        _print_json(asdict(result))
        return
    if swarm_options is not None:
        table = Table(title=f"imgtool compose --swarm: {result.output}")
        for column in ("service", "on the stack's network", "image"):
            table.add_column(column, overflow="fold")
        for service in result.services:
            table.add_row(service.server, service.url, service.image or "-")
        out.print(table)
        err.print(f"wrote {result.output}; deploy it: docker stack deploy --detach=false -c {result.output} STACK")
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
    epilog="Examples: imgtool kube --tag localhost:5000/myapp:{server} · "
    "imgtool kube -s granian --replicas 3 --max-replicas 10 --cpus 2 --memory 1Gi -o k8s/app.yaml · "
    "then: kubectl apply -f k8s.yaml"
)
def kube(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest file to write (validated first).")] = Path(
        "k8s.yaml"
    ),
    tag: Annotated[
        str | None,
        typer.Option("--tag", "-t", help="The image to run, as `imgtool build --tag` named it ({server} is replaced)."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (created, restricted; default: the app's name).")
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Pods per server (the HPA's minimum).")] = 2,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="Add a HorizontalPodAutoscaler up to this many pods.")
    ] = None,
    cpus: Annotated[
        str, typer.Option("--cpus", help="CPU request = limit per pod (e.g. 1, 500m); workers follow.")
    ] = "1",
    memory: Annotated[str, typer.Option("--memory", help="Memory request = limit per pod (e.g. 512Mi).")] = "512Mi",
    kube_version: Annotated[
        str, typer.Option("--kube-version", help="Oldest Kubernetes it must run on; validated against its schema.")
    ] = "1.30",
    start_period: Annotated[
        int, typer.Option("--start-period", help="Seconds the app may take to become healthy (startup probe).")
    ] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Write Kubernetes manifests from the image's contract: Deployment, Service, PodDisruptionBudget, NetworkPolicy."""
    from toolkit import kube as k8s
    from toolkit.compose import check_output, image_refs

    output = output.expanduser()
    check_output(output)
    options = k8s.KubeOptions(
        namespace=namespace,
        replicas=replicas,
        cpus=cpus,
        memory=memory,
        max_replicas=max_replicas,
        kube_version=kube_version,
        start_period=start_period,
    )
    k8s.check_options(options)
    if tag is not None:
        from toolkit.config import validate_tag

        validate_tag(tag.replace("{server}", "server"))
    client, plans = _plans(server, all_servers, app_ref, context, base, python, tag)
    objects = k8s.manifests(plans, image_refs(client, plans, _notice, cluster=True), options)
    checked = k8s.emit(objects, output, kube_version)
    if not checked:
        _notice("not checked against the Kubernetes schemas: pip install 'imgtool[kube]' (kubernetes-validate)")
    kinds = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects]
    if as_json:
        _print_json({"output": str(output), "objects": kinds, "schema_checked": checked, "kube_version": kube_version})
        return
    for kind in kinds:
        out.print(kind, highlight=False, markup=False)
    checked_note = f", valid for Kubernetes {kube_version}" if checked else ""
    err.print(f"wrote {output}{checked_note}; apply it: kubectl apply -f {output}", highlight=False)


@app.command(
    epilog="Examples: imgtool dev · imgtool dev --context ~/src/myproject --with postgres · "
    "imgtool dev --no-up -o compose.dev.yaml, then: docker compose -f compose.dev.yaml up --build --watch"
)
def dev(
    server: Annotated[
        str,
        typer.Option("--server", "-s", help="Server whose reload mode serves the app: uvicorn, granian, hypercorn."),
    ] = "uvicorn",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The dev compose file to write (validated first).")
    ] = Path("compose.dev.yaml"),
    port: Annotated[int, typer.Option("--port", help="Host port on 127.0.0.1.")] = 8000,
    with_services: WithOpt = None,
    network: NetworkOpt = None,
    up: Annotated[
        bool, typer.Option("--up/--no-up", help="--no-up: write the files only (start later with compose).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the app with hot reload: a dev image served by the server's reload mode, under Compose Watch.

    Edits are copied into the running container (no rebuild) and the server reloads; a change to a
    dependency file rebuilds the image. Ctrl-C stops the stack (volumes and the image are kept).
    """
    from toolkit import dev as devmode
    from toolkit import engine
    from toolkit.compose import check_output
    from toolkit.services import parse_with

    devmode.reload_mode(server)
    output = output.expanduser()
    check_output(output)
    devmode.check_port(port)
    selected = tuple(parse_with(with_services))
    ca = engine.resolve_ca_cert(None)
    engine.require_buildx()
    _, plans = _plans([server], False, app_ref, context, base, python)
    options = devmode.DevOptions(
        port=port,
        network=network,
        ca_secret_file=str(ca) if ca else None,
        secrets=_index_secrets(plans[0].config.indexes),
        services=selected,
    )
    result = devmode.emit(plans[0], output, options, ca)
    if as_json:
        _print_json(asdict(result))
    else:
        err.print(
            f"wrote {result.output} and {result.dockerfile}; {result.server} --reload on {result.url}/",
            highlight=False,
            markup=False,
        )
    if not up:
        err.print(f"start it: docker compose -f {result.output} up --build --watch", highlight=False, markup=False)
        return
    code = devmode.run(output, quiet_stdout=as_json)
    if code != 0:
        raise typer.Exit(1)


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
    demo: DemoOpt = False,
    base: BaseOpt = None,
    python: PythonOpt = None,
    health_path: HealthPathOpt = None,
    port: Annotated[int | None, typer.Option("--port", help="Container port.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the settings a build would use: defaults < \\[tool.imgtool] < flags, and where each came from."""
    from rich.markup import escape

    from toolkit.config import describe_config, load_config
    from toolkit.servers import select_servers

    config = load_config(context, app_ref, python, base, health_path, port, demo=demo)
    servers = tuple(spec.name for spec in select_servers(server, False, config.servers))
    origin = "flag" if server else config.origins.get("servers", "default")
    rows = describe_config(config, servers, origin)
    if as_json:
        settings = {key: {"value": value, "from": origin} for key, value, origin in rows}
        _print_json({"context": str(config.project_dir), "settings": settings})
        return
    table = Table(title=f"imgtool config: {config.project_dir}")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for key, value, source in rows:
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(escape(key), escape(shown), escape(source))
    out.print(table)


@app.command(epilog="Examples: imgtool init · imgtool init --context ~/src/myproject --server uvicorn --force")
def init(
    context: ContextOpt = None,
    server: ServerOpt = None,
    app_ref: AppOpt = None,
    health_path: HealthPathOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing \\[tool.imgtool] and .dockerignore.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write \\[tool.imgtool] into pyproject.toml and a Python .dockerignore; never overwrite without --force."""
    from toolkit import scaffold
    from toolkit.config import load_config
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref, health_path=health_path)
    servers = [spec.name for spec in select_servers(server, False, config.servers)]
    table = scaffold.tool_table(config.app, servers, config.health_path, config.port)
    changes = scaffold.plan_init(config.project_dir, table, force)
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
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Bake file to write.")] = Path("docker-bake.hcl"),
    as_json: JsonOpt = False,
) -> None:
    """Write a docker-bake.hcl with a target per server (Dockerfiles beside it under .imgtool/)."""
    from toolkit import engine, scaffold
    from toolkit.assets import copy_beside
    from toolkit.buildfiles import assets_dir
    from toolkit.compose import check_output

    output = output.expanduser()
    check_output(output)
    _, plans = _plans(server, all_servers, app_ref, context, base, python, demo=demo, health_path=health_path)
    text, dockerfiles = scaffold.bake_file(plans, output, engine.resolve_ca_cert(None))
    for path, dockerfile in dockerfiles.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dockerfile)
    copy_beside(plans[0].assets_context, assets_dir(output))
    output.write_text(text)
    if as_json:
        _print_json({"output": str(output), "targets": [plan.server.name for plan in plans]})
        return
    command = next(line for line in text.splitlines() if line.startswith("#   docker buildx bake"))
    err.print(f"wrote {output}; build it from {output.parent}: {command.removeprefix('#   ')}", highlight=False)


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
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
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
    from toolkit.containers import current_run_id
    from toolkit.plan import default_tag
    from toolkit.servers import select_servers

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
        config = load_config(context=context, app=app_ref, demo=demo)
        refs = [default_tag(config, spec) for spec in select_servers(server, all_servers, config.servers)]
    client = engine.connect()
    if health_path is not None and not health_path.startswith("/"):
        raise UsageError(f"--health-path {health_path!r} must start with '/': e.g. --health-path /health")
    subjects = [b.subject_for(client, ref, health_path) for ref in refs]
    cpus = b.load_cpus()
    report = b.BenchReport(
        duration_seconds=seconds,
        connections=connections,
        path=path,
        generators={k: v for k, v in generators.items() if k == "http1" or any(s.h2c for s in subjects)},
        server_cpus=b.SERVER_CPUS,
        load_cpus=",".join(map(str, sorted(cpus))) if cpus else "any",
        run_id=current_run_id(),
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


KeyOpt = Annotated[str, typer.Option("--key", help="cosign key: a file from `cosign generate-key-pair`, or a KMS URI.")]
TlogOpt = Annotated[
    bool,
    typer.Option(
        "--tlog/--no-tlog",
        help="Use Sigstore's transparency log (cosign's default); --no-tlog: the key's signature alone, offline.",
    ),
]


@app.command(
    epilog="Examples: COSIGN_PASSWORD=... imgtool sign localhost:5000/app:granian --key cosign.key --no-tlog · "
    "imgtool sign REF --key cosign.key --sbom sbom.cdx.json"
)
def sign(
    image: Annotated[str, typer.Argument(help="Image in a registry (a tag is resolved to its digest first).")],
    key: KeyOpt,
    sbom: Annotated[
        Path | None,
        typer.Option("--sbom", help="Also attach this CycloneDX SBOM (from `imgtool build --sbom`), signed."),
    ] = None,
    tlog: TlogOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Sign an image in a registry by digest with cosign (the key's password from COSIGN_PASSWORD)."""
    from toolkit.signing import sign as cosign_sign

    signed = cosign_sign(image, key, sbom, tlog)
    if as_json:
        _print_json(asdict(signed))
        return
    extra = " and its SBOM attestation" if signed.sbom_attached else ""
    log = "" if signed.tlog else " (no transparency log)"
    out.print(f"signed {signed.image}{extra}{log}", highlight=False, markup=False)


@app.command(
    epilog="Examples: imgtool verify localhost:5000/app:granian --key cosign.pub --no-tlog · "
    "imgtool verify REF --key cosign.pub --sbom --json"
)
def verify(
    image: Annotated[str, typer.Argument(help="Image in a registry, by tag or digest.")],
    key: KeyOpt,
    sbom: Annotated[
        bool, typer.Option("--sbom", help="Also require a CycloneDX SBOM attestation signed by the same key.")
    ] = False,
    tlog: TlogOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Check an image's cosign signature against a public key: exit 0 verified, 1 not."""
    from rich.markup import escape

    from toolkit.signing import verify as cosign_verify

    result = cosign_verify(image, key, sbom, tlog)
    if as_json:
        _print_json(asdict(result))
    elif result.verified:
        what = "signature and SBOM attestation" if result.sbom_verified else "signature"
        out.print(f"verified {result.image} ({what}, {result.digest})", highlight=False, markup=False)
    if not result.verified:
        err.print(f"[red]imgtool: error:[/] {escape(image)} does not verify: {escape(result.reason)}", highlight=False)
        raise typer.Exit(1)


def _interrupt(signum, frame) -> None:
    raise Interrupted()


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    from rich.markup import escape
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError

    try:
        code = app(standalone_mode=False, prog_name="imgtool")
    except NoArgsIsHelpError:
        code = 2  # the help is printed already
    except ClickUsageError as exc:
        # One line, like every other error: what was wrong, and where the help is.
        command = exc.ctx.command_path if exc.ctx is not None else "imgtool"
        message = exc.format_message().replace("\n", " ").strip().rstrip(".")
        err.print(f"[red]imgtool: error:[/] {escape(message)}: see `{escape(command)} --help`", highlight=False)
        code = 2
    except ClickException as exc:
        err.print(f"[red]imgtool: error:[/] {escape(exc.format_message())}", highlight=False)
        code = exc.exit_code
    except ImgtoolError as exc:
        # Messages carry user input (paths, names, `host[:port][/path]`): never read them as markup.
        err.print(f"[red]imgtool: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
