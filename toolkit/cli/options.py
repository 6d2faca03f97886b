"""The options every command shares: type, help and check, declared once.

A value is checked where it enters: a typer callback or parser at parse time, before any container,
image or file exists. A bad one becomes click's "Invalid value for '--option': what is wrong: the fix",
which `cli.main` prints as one line with exit code 2. The checks themselves live beside what they
check (`toolkit.validate` for kinds of value, `compose`/`kube`/`services`... for their own settings).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit import validate
from toolkit.errors import UsageError


def checked(check: Callable[[Any], Any]) -> Callable[..., Any]:
    """A typer callback applying `check` to a value (each value of a repeated option); None passes."""

    def callback(param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, list | tuple):
                return [check(item) for item in value]
            return check(value)
        except UsageError as exc:
            # click says "Invalid value for '--port':" already; a message naming it again reads twice.
            message = str(exc)
            for name in param.opts:
                message = message.removeprefix(f"{name} ")
            raise typer.BadParameter(message) from None

    return callback


class PathRole(StrEnum):
    """What kind of path an option takes (the bad-value sweep reads it to pick its values)."""

    directory = "directory"  # an existing directory
    file = "file"  # an existing, readable regular file
    output = "output"  # a file to (re)write, in an existing writable directory
    output_tree = "output-tree"  # a file to (re)write; missing directories are created


class PathParser:
    """Turns a path as typed into a checked Path (typer's `parser=`)."""

    def __init__(self, role: PathRole, check: Callable[[Path], Path]):
        self.role = role
        self.check = check
        self.__name__ = f"{role.value}_path"

    def __call__(self, raw: str | Path) -> Path:
        try:
            return self.check(raw if isinstance(raw, Path) else validate.path_text(raw))
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from None


DIRECTORY = PathParser(PathRole.directory, validate.existing_dir)
READABLE_FILE = PathParser(PathRole.file, validate.existing_file)
PEM_FILE = PathParser(PathRole.file, validate.pem_bundle)
OUTPUT_FILE = PathParser(PathRole.output, validate.output_file)
OUTPUT_TREE = PathParser(PathRole.output_tree, validate.output_tree)
# `--sbom FILE` may hold `{server}`, filled in per server.
OUTPUT_TEMPLATE = PathParser(PathRole.output, validate.output_template)


def lazy(module: str, name: str) -> Callable[[Any], Any]:
    """The check `module.name`, imported when a value arrives: start-up loads none of the modules checks live in."""

    def check(value: Any) -> Any:
        return getattr(importlib.import_module(module), name)(value)

    return check


def server_name(name: str) -> str:
    from toolkit.servers import get_server

    return get_server(name).name


def tag_template(tag: str) -> str:
    """An image tag that may hold `{server}` (filled in per server)."""
    validate.image_tag(tag.replace("{server}", "server"))
    return tag


def with_service(value: str) -> str:
    """One `--with NAME[=IMAGE]`; that each service comes once is checked with all of them."""
    from toolkit.services import parse_with

    parse_with([value])
    return value


def start_period(seconds: int) -> int:
    from toolkit.compose import check_start_period

    check_start_period(seconds)
    return seconds


def builder_name(name: str) -> str:
    return validate.safe_words(name, "the builder name", 100)


# What `docker buildx build --cache-to/--cache-from type=` accepts (buildx 0.29).
CACHE_TYPES = ("registry", "local", "inline", "gha", "s3", "azblob")


def cache_spec(spec: str) -> str:
    """A buildx cache spec (`type=...,key=value`) or a registry reference; `{server}` is filled in per server."""
    text = validate.safe_words(spec.replace("{server}", "server").replace(",", " ").replace("=", " "), "the cache")
    if "=" not in spec:
        validate.image_reference(text)
        return spec
    pairs = [pair.partition("=") for pair in spec.split(",")]
    if not all(sep for _, sep, _ in pairs):
        raise UsageError(f"{spec[:80]!r} is not key=value,...: e.g. type=registry,ref=localhost:5000/cache")
    kind = {key: value for key, _, value in pairs}.get("type", "registry")
    if kind not in CACHE_TYPES:
        raise UsageError(f"cache type {kind[:40]!r} is not one buildx has: use {', '.join(CACHE_TYPES)}")
    return spec


def connection_count(value: int) -> int:
    return validate.count(value, 256, "connection count")


def duration_seconds(text: str) -> float:
    """`--duration`: 10s, 500ms, 1m or plain seconds, 1 s to 10 min (typer's `parser=`)."""
    from toolkit.bench.parse import parse_duration

    try:
        return parse_duration(text) if isinstance(text, str) else float(text)
    except UsageError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--duration ")) from None


def host_port(value: int) -> int:
    """A port to publish on 127.0.0.1: unprivileged, so no engine needs to be root for it."""
    return validate.port(value, low=1024)


# Checks that return the value as given (or normalised), from the modules that own the setting.
registry_address = lazy("toolkit.registry", "validate_registry")
swarm_cpus = lazy("toolkit.swarm", "check_cpus")
swarm_memory = lazy("toolkit.swarm", "check_memory")
kube_cpus = lazy("toolkit.kube", "check_cpu_quantity")
kube_memory = lazy("toolkit.kube", "check_memory_quantity")
kube_namespace = lazy("toolkit.kube", "check_namespace")


def kube_minor(value: str) -> str:
    from toolkit.kube import kube_version_tuple

    kube_version_tuple(value)
    return value


def reload_server(name: str) -> str:
    """A server with a reload mode (`imgtool dev`)."""
    from toolkit.dev import reload_mode

    server_name(name)
    reload_mode(name)
    return name


def worker_count(value: int) -> int:
    return validate.count(value, 1024, "worker count")


def replica_count(value: int) -> int:
    return validate.count(value, 1000, "replica count")


class Network(StrEnum):
    """`--network` of a build: host reaches a package index on this machine's 127.0.0.1."""

    default = "default"
    host = "host"
    none = "none"


ServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--server",
        "-s",
        help="Server to act on (repeatable; `imgtool servers` lists them).",
        callback=checked(server_name),
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Act on every server in the registry.")]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app", help="ASGI app as module:attr (default: \\[tool.imgtool] app).", callback=checked(validate.app_ref)
    ),
]
ContextOpt = Annotated[
    Path | None,
    typer.Option(
        "--context",
        help="The project directory (default: the current directory, or \\[tool.imgtool] context).",
        parser=DIRECTORY,
    ),
]


class Interface(StrEnum):
    asgi = "asgi"
    wsgi = "wsgi"


InterfaceOpt = Annotated[
    Interface | None,
    typer.Option(
        "--interface",
        help="How the server calls the app: asgi or wsgi (default: \\[tool.imgtool] interface, else what the "
        "app is made by, else asgi).",
    ),
]
DemoOpt = Annotated[bool, typer.Option("--demo", help="Act on imgtool's bundled reference app instead of a project.")]
HealthPathOpt = Annotated[
    str | None,
    typer.Option(
        "--health-path",
        help="Route that must answer 2xx (default: \\[tool.imgtool] health-path, else any answer below 500 at /).",
        callback=checked(validate.url_path),
    ),
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base", help="Base image (default: python:<python>-slim).", callback=checked(validate.image_reference)
    ),
]
PythonOpt = Annotated[
    str | None,
    typer.Option("--python", help="Python version X.Y of the default base.", callback=checked(validate.python_version)),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")]
TagOpt = Annotated[
    str | None,
    typer.Option(
        "--tag",
        "-t",
        help="The image, as `imgtool build --tag` named it ({server} is replaced).",
        callback=checked(tag_template),
    ),
]
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert", help="CA bundle for the build's HTTPS (default: the system bundle, as a secret).", parser=PEM_FILE
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Build without BuildKit's layer cache.")]
ImageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--image", help="Use this image instead (repeatable; any image).", callback=checked(validate.image_reference)
    ),
]
NetworkOpt = Annotated[
    Network | None,
    typer.Option(
        "--network",
        help="The build's network: host reaches a package index on this machine's 127.0.0.1 (default: default).",
    ),
]
WithOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        help="Add a backing service (repeatable): postgres, redis; NAME=IMAGE for another image. The app gets "
        "its connection settings (DATABASE_URL, REDIS_URL, POSTGRES_*) and starts once it is healthy.",
        callback=checked(with_service),
    ),
]
StartPeriodOpt = Annotated[
    int,
    typer.Option(
        "--start-period",
        help="Seconds the app may take to become healthy (1 to 600).",
        callback=checked(start_period),
    ),
]
