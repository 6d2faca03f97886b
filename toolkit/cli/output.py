"""Where the commands print: tables and results on stdout, progress and notes on stderr, JSON for machines."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def notice(message: str) -> None:
    err.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


def say(message: str) -> None:
    """A line of plain text on stderr: user input in it is never read as markup."""
    err.print(message, highlight=False, markup=False)


def table(title: str, columns: tuple[str, ...] | list[str], rows, **column_options) -> Table:
    """A rich table with these columns and rows (each row a sequence of strings)."""
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, **column_options)
    for row in rows:
        shown.add_row(*row)
    return shown


def error(message: str) -> None:
    err.print(f"[red]imgtool: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
