"""Writing the files imgtool leaves for people (compose, bake, workflow, pyproject, lock): whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from toolkit.errors import EnvironmentProblem, UsageError


def _mode(path: Path) -> int:
    """An existing file keeps its permissions; a new one gets what the umask gives any file the user writes."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_problem(path: Path, exc: OSError) -> Exception:
    """The one-line error for a failed write of `path`: a usage error where the user can pick another path."""
    directory = path.parent
    if isinstance(exc, FileNotFoundError) and not directory.is_dir():
        return UsageError(f"cannot write {path}: directory {directory} does not exist: create it or pick another path")
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return UsageError(f"cannot write {path}: it is a directory: pass a file name")
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return UsageError(
            f"cannot write {path}: directory {directory} is not writable ({exc.strerror}): "
            "fix its permissions or pick another path"
        )
    return EnvironmentProblem(f"cannot write {path} ({exc.strerror or exc}): free some space or pick another path")


def write_text_atomic(
    path: Path, text: str, before_replace: Callable[[Path], None] | None = None, parents: bool = False
) -> Path:
    """`write_atomic` for text (UTF-8)."""
    return write_atomic(path, text.encode(), before_replace, parents)


def write_atomic(
    path: Path, data: bytes, before_replace: Callable[[Path], None] | None = None, parents: bool = False
) -> Path:
    """Write `data` to `path` whole: a temporary file beside it, flushed to disk, then renamed over it.

    A reader never sees half a file, and on any failure the old file (if any) stays as it was and the
    temporary file is removed. `before_replace(temporary)` runs on the complete temporary file just
    before the rename (a check, or other files that must exist first); if it raises, nothing is replaced.
    A directory that is missing (unless `parents`: then it is made) or not writable is a UsageError naming
    the path and the fix.
    """
    path = Path(path)
    if parents:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_problem(path, exc) from None
    # A symlink stays one: what it points to is replaced.
    target = path.resolve() if path.is_symlink() else path
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise write_problem(path, exc) from None
    temporary = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), _mode(target))
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_problem(path, exc) from None
        if before_replace is not None:
            before_replace(temporary)
        try:
            os.replace(temporary, target)
        except OSError as exc:
            raise write_problem(path, exc) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
