"""The `imgtool` command line: parse, call, print. Exit codes: 0 ok, 1 check/build failed, 2 usage or environment.

Each module registers one family of commands on `apps.app`; what they check and do lives in the
modules they call.
"""

from __future__ import annotations

import signal
import sys

from toolkit.cli import bases, images, measure, project, stacks, supply  # noqa: F401  (they register the commands)
from toolkit.cli.apps import app
from toolkit.cli.output import error
from toolkit.errors import ImgtoolError, Interrupted

__all__ = ["app", "main"]


def _interrupt(signum, frame) -> None:
    raise Interrupted()


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError

    try:
        code = app(standalone_mode=False, prog_name="imgtool")
    except NoArgsIsHelpError:
        code = 2  # the help is printed already
    except ClickUsageError as exc:
        # One line, like every other error: what was wrong, and where the help is.
        command = exc.ctx.command_path if exc.ctx is not None else "imgtool"
        # typer words a bad choice through pydantic ("Value error, 'x' is not one of ..."): the rest says it.
        message = exc.format_message().replace("\n", " ").replace("Value error, ", "").strip().rstrip(".")
        error(f"{message}: see `{command} --help`")
        code = 2
    except ClickException as exc:
        error(exc.format_message())
        code = exc.exit_code
    except ImgtoolError as exc:
        # Messages carry user input (paths, names, `host[:port][/path]`): never read them as markup.
        error(str(exc))
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
