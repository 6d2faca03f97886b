"""The typer apps the commands register on: `imgtool` and its `base` group."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

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
