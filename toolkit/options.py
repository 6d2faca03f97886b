"""The CLI's options: each one's type, help and check, declared once and shared by every command.

A value is checked where it enters — a typer callback at parse time, before any container, image or
file exists — with the functions of `toolkit.validate`. A bad one becomes click's "Invalid value for
'--option': what is wrong: the fix", which `cli.main` prints as one line with exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit import validate
from toolkit.errors import UsageError


def checked(check: Callable[..., Any], *args: Any) -> Callable[[Any], Any]:
    """A typer callback applying `check` to a value (or each value of a repeated option)."""

    def callback(value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, list):
                return [check(item, *args) for item in value]
            return check(value, *args)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from None

    return callback


class PathParser:
    """Turns the path as typed into a checked Path; `role` says what kind of path the option takes."""

    def __init__(self, role: str, check: Callable[[Path], Path]):
        self.role = role  # "dir" (an existing directory), "file" (an existing file) or "output"
        self.check = check
        self.__name__ = f"{role}_path"

    def __call__(self, raw: str | Path) -> Path:
        try:
            return self.check(validate.path_text(str(raw)) if not isinstance(raw, Path) else raw)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from None


DIRECTORY = PathParser("dir", validate.existing_dir)
PEM_FILE = PathParser("file", validate.pem_bundle)
OUTPUT_FILE = PathParser("output", validate.output_file)


def server_name(name: str) -> str:
    from toolkit.servers import get_server

    return get_server(name).name


def tag_template(tag: str) -> str:
    """An image tag that may hold `{server}` (filled in per server)."""
    validate.image_tag(tag.replace("{server}", "server"))
    return tag


def seconds(value: float) -> float:
    return validate.positive_seconds(value)


def worker_count(value: int) -> int:
    return validate.count(value, 1024, "worker count")


class Via(StrEnum):
    bridge = "bridge"
    published = "published"


class Generator(StrEnum):
    auto = "auto"
    wrk = "wrk"
    httpx = "httpx"


ServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--server",
        "-s",
        help="Server to act on (repeatable); `imgtool servers` lists them.",
        callback=checked(server_name),
    ),
]
OneServerOpt = Annotated[
    str, typer.Option("--server", "-s", help="Server to render for.", callback=checked(server_name))
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
    typer.Option("--context", help="Build context holding the app (default: the bundled app).", parser=DIRECTORY),
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
        help="Image tag; with several servers it must contain {server}.",
        callback=checked(tag_template),
    ),
]
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert", help="CA bundle for the build's HTTPS (default: the system bundle, as a secret).", parser=PEM_FILE
    ),
]
ImageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--image", help="Use this image instead (repeatable; any image).", callback=checked(validate.image_reference)
    ),
]
HealthPathOpt = Annotated[
    str | None,
    typer.Option("--health-path", help="Health route (default: label).", callback=checked(validate.url_path)),
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="Container port (default: label or 8000).", callback=checked(validate.port))
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="KEY=VALUE for the containers (repeatable).", callback=checked(validate.env_pair)),
]
