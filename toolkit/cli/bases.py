"""`imgtool base ...`: the offline bootstrap, per-server bases in a registry, imgtool.lock."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated

import typer

from toolkit import validate
from toolkit.cli.apps import base_app
from toolkit.cli.options import (
    AllOpt,
    AppOpt,
    CaCertOpt,
    ContextOpt,
    DemoOpt,
    JsonOpt,
    NoCacheOpt,
    PythonOpt,
    ServerOpt,
    checked,
    registry_address,
)
from toolkit.cli.output import err, notice, out, print_json, table


@base_app.command(
    "bootstrap",
    epilog="Examples: imgtool base bootstrap · imgtool base bootstrap --python 3.13 · "
    "imgtool base bootstrap --suite sid",
)
def base_bootstrap(
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="Python X.Y: 3.11 (bookworm, the default), 3.13 (trixie), 3.14 or 3.15 (forky).",
            callback=checked(validate.python_version),
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite", help="Debian suite (default: the one that ships --python).", callback=checked(validate.suite)
        ),
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option("--mirror", help="Debian mirror (default: apt's own).", callback=checked(validate.url)),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the base exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a Debian + Python base image offline (debootstrap + docker import), for hosts with no registry.

    Tagged imgtool/python:X.Y-SUITE; builds pick it by the project's Python when no published image pulls.
    """
    from toolkit import engine
    from toolkit.base import bootstrap
    from toolkit.pythons import choose

    chosen = choose(python, suite)
    client = engine.connect()
    if not as_json:
        err.print(
            f"bootstrapping {chosen.image}: Debian {chosen.suite} with Python {chosen.python} (about a minute)..."
        )
    image = bootstrap(client, chosen.python, mirror, force, suite=chosen.suite)
    if as_json:
        print_json(asdict(image))
    else:
        out.print(f"base ready: {image.name}")


@base_app.command("list", epilog="Example: imgtool base list --json")
def base_list(as_json: JsonOpt = False) -> None:
    """Show the base images present locally that imgtool can build on."""
    from toolkit import engine
    from toolkit.base import local_bases

    bases = local_bases(engine.connect())
    if as_json:
        print_json([asdict(base) for base in bases])
        return
    rows = [(base.name, base.digest or "-", base.kind) for base in bases]
    out.print(table("base images", ("image", "digest", "kind"), rows))


RegistryOpt = Annotated[
    str,
    typer.Option(
        "--registry",
        help="Registry of the per-server bases, host[:port][/path]; plain HTTP only for localhost/127.0.0.1.",
        callback=checked(registry_address),
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
    lines = [(row["server"], row["ref"], row["digest"]) for row in rows]
    out.print(table(title, ("server", "image", "digest"), lines, overflow="fold"))


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
        str | None,
        typer.Option(
            "--base",
            help="Root Python base (default: python:<python>-slim, else offline).",
            callback=checked(validate.image_reference),
        ),
    ] = None,
    no_cache: NoCacheOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build per-server bases <registry>/imgtool-base:<server>-py<X.Y>: Python + a venv with the server."""
    from toolkit import assets as helper_files
    from toolkit import buildx, engine
    from toolkit.base import resolve_base
    from toolkit.config import DEFAULT_PYTHON
    from toolkit.plan import BuildOptions, make_server_base_plan
    from toolkit.render import render_base_dockerfile
    from toolkit.servers import select_servers

    python = python or DEFAULT_PYTHON
    specs = select_servers(server, all_servers)
    ca = engine.resolve_ca_cert(ca_cert)
    engine.require_buildx()
    client = engine.connect()
    root = resolve_base(client, base, python, notice)
    assets = helper_files.ensure((engine.daemon_arch(client),))
    results = []
    for spec in specs:
        plan = make_server_base_plan(spec, root, python, assets, registry)
        if not as_json:
            err.print(f"[bold]building[/] {plan.tag} on {root.ref}", highlight=False)
        dockerfile = render_base_dockerfile(plan, "-", ca)
        results.append(buildx.build_image(client, plan, dockerfile, ca, BuildOptions(no_cache=no_cache), not as_json))
    if as_json:
        print_json([asdict(result) for result in results])
        return
    rows = [
        (
            result.server,
            result.tag,
            f"{result.size_bytes / 1e6:.0f} MB" if result.size_bytes is not None else "-",
            f"{result.seconds:.1f} s",
        )
        for result in results
    ]
    out.print(table("imgtool base build", ("server", "image", "size", "time"), rows))


def _transfer_bases(title: str, transfer, server, all_servers, python, registry, as_json) -> None:
    """Push or pull each selected per-server base with progress; print the digests."""
    from toolkit import engine
    from toolkit.config import DEFAULT_PYTHON
    from toolkit.plan import server_base_ref
    from toolkit.servers import select_servers

    python = python or DEFAULT_PYTHON
    specs = select_servers(server, all_servers)
    client = engine.connect()
    rows = []
    for spec in specs:
        ref = server_base_ref(registry, spec.name, python)
        with _registry_progress(not as_json) as progress:
            digest = transfer(client, ref, spec.name, python, progress)
        rows.append({"server": spec.name, "ref": ref, "digest": digest})
    if as_json:
        print_json(rows)
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
    from toolkit.registry import push

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
    from toolkit.registry import pull_server_base

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
    from toolkit.config import load_config
    from toolkit.registry import lock_bases
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref, python=python, demo=demo)
    specs = select_servers(server, all_servers, config.servers)
    path, rows = lock_bases(engine.connect(), config, specs, registry, notice)
    if as_json:
        print_json({"lock": str(path), "bases": rows})
        return
    _digest_table(f"{path}", rows)
