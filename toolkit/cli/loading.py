"""What commands load before they act: the build plans of the selected servers, package-index secrets."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.cli.output import notice, say


def index_secrets(indexes):
    """Package-index credentials as build secrets: from this environment and the netrc file (toolkit/indexes.py)."""
    from toolkit.indexes import build_secrets, check_credentials, netrc_file

    check_credentials(indexes, os.environ)
    return build_secrets(indexes, netrc_file(os.environ, Path.home()))


def stack_extension(values: list[str] | None):
    """`--with` services as a function that adds them to a compose model (validated now, applied later)."""
    from toolkit.services import parse_with, with_services

    selected = parse_with(values)
    return (lambda model: with_services(model, selected)) if selected else None


def with_index_secrets(extend, secrets):
    from toolkit.indexes import with_build_secrets

    if not secrets:
        return extend
    return lambda model: with_build_secrets(extend(model) if extend else model, secrets)


def load_plans(
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
    interface=None,
):
    """Config, Docker client and one BuildPlan per selected server (on imgtool.lock's bases when it has them).

    `builder` (engine.Builder): the helper files carry uv for its native architecture, and a docker-driver
    builder's own engine is the one the client talks to; else the current context's engine.
    """
    from toolkit import assets as helper_files
    from toolkit import engine
    from toolkit.assets import docker_arch
    from toolkit.config import load_config
    from toolkit.plan import make_plan
    from toolkit.registry import resolve_bases
    from toolkit.servers import select_servers

    config = load_config(
        context=context, app=app_ref, python=python, base=base, health_path=health_path, demo=demo, interface=interface
    )
    specs = select_servers(server_names, all_servers, config.servers, interface=config.interface)
    client = engine.connect(builder.docker_context(engine.current_context()) if builder else None)
    bases = resolve_bases(client, config, [spec.name for spec in specs], base, frozen, notice)
    arch = docker_arch(builder.platforms[0]) if builder else engine.daemon_arch(client)
    assets = helper_files.ensure((arch,))
    plans = [make_plan(config, spec, bases[spec.name], assets, tag, several=len(specs) > 1) for spec in specs]
    # Said once everything is decided, so an error stays the only line.
    if config.origins["app"].startswith("detected"):
        say(f"app: {config.app} ({config.interface.upper()}), {config.origins['app']}")
    elif config.interface != "asgi":
        say(f"app: {config.app} ({config.interface.upper()}), interface {config.origins.get('interface', '')}")
    say(f"dependencies: {config.deps.summary}")
    if config.project_path != ".":
        say(f"context: {config.context} (uv workspace), project {config.project_path}")
    if config.origins["python"].startswith("detected"):
        say(f"python: {config.python}, {config.origins['python']}")
    if config.django is not None:
        static = "collectstatic in the build" if config.django.static_root else "no STATIC_ROOT, no collectstatic"
        say(f"django: settings {config.django.settings}, {static}")
    for note in dict.fromkeys(note for plan in plans for note in plan.notes):
        notice(note)
    return client, plans


def images_to_run(images, server_names, all_servers, context, app_ref, demo) -> list[str]:
    """The images a command runs: those named by `--image`, else the project's, one per selected server."""
    from toolkit.config import load_config
    from toolkit.errors import UsageError
    from toolkit.plan import default_tag
    from toolkit.servers import select_servers

    if images and (server_names or all_servers):
        raise UsageError("--image and --server/--all exclude each other: pass one of them")
    if images:
        return list(images)
    config = load_config(context=context, app=app_ref, demo=demo)
    specs = select_servers(server_names, all_servers, config.servers, interface=config.interface)
    return [default_tag(config, spec) for spec in specs]
