"""Requirements files: which file is the project's, and every file its `-r`/`-c` lines pull in.

Only the files the chain names are copied into the build (the install layer then changes only when one of them
does); each must lie inside the build context. Paths in a `-r`/`-c` line are relative to the file that has it,
as pip and uv read them. Files are read, never executed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from toolkit.errors import UsageError

# The project's requirements file when [tool.imgtool] requirements names none, in order of preference.
MAIN_REQUIREMENTS = (
    "requirements.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements/base.txt",
)
# `-r FILE`, `-rFILE`, `--requirement FILE`, `--requirement=FILE`; the same for constraints.
_INCLUDE = re.compile(r"^(?:(?:-r|-c)\s*|(?:--requirement|--constraint)(?:\s*=\s*|\s+))(?P<path>\S+)")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line): backslash continuations joined, comments (` #`, or `#` first) dropped."""
    found, pending, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            found.append((start, line))
    return found


def _relative(context: Path, path: Path) -> str:
    return path.relative_to(context).as_posix()


def chain(context: Path, start: str) -> tuple[str, ...]:
    """`start` and every file it includes with -r/-c, transitively: context-relative POSIX paths, `start` first.

    A file that is missing, or outside the context, is one line naming the file and the line that includes it.
    """
    context = context.resolve()
    found: list[str] = []
    pending = [(context / start, None)]
    while pending:
        path, included_by = pending.pop(0)
        resolved = path.resolve()
        where = f" (included by {included_by})" if included_by else ""
        if not resolved.is_relative_to(context):
            raise UsageError(
                f"{path}{where} is outside the build context {context}: keep every requirements file in the project"
            )
        relative = _relative(context, resolved)
        if relative in found:
            continue
        if not resolved.is_file():
            raise UsageError(f"requirements file {relative}{where} does not exist: fix the name or add the file")
        found.append(relative)
        for number, line in _lines(resolved.read_text(errors="replace")):
            match = _INCLUDE.match(line)
            if match and not _URL.match(match.group("path")):
                pending.append((resolved.parent / match.group("path"), f"{relative}:{number}"))
    return tuple(found)


def named(context: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """`[tool.imgtool] requirements`: each a file inside the context (any name), with its whole chain."""
    files: list[str] = []
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise UsageError(
                f"[tool.imgtool] requirements entry {name!r} must be a path inside the project, e.g. requirements/app"
            )
        if (context / name).is_dir():
            raise UsageError(
                f"[tool.imgtool] requirements entry {name!r} is a directory: name the file in it, e.g. {name}/prod.txt"
            )
        files += [file for file in chain(context, name) if file not in files]
    return tuple(files)


def uncompiled(context: Path) -> str | None:
    """A pip-tools input (`requirements.in`, ...) whose compiled `.txt` is missing: the one-line fix, else None."""
    for main in MAIN_REQUIREMENTS:
        source = main.removesuffix(".txt") + ".in"
        if (context / source).is_file() and not (context / main).is_file():
            return (
                f"{source} has no compiled {main} beside it: run `uv pip compile {source} -o {main}` "
                f"(or `pip-compile {source}`), commit {main}, then build again"
            )
    return None
