"""Value checks at the edge, one function per kind of value.

Each takes the raw value and returns it (normalised) or raises `Invalid` with "what is wrong: the
fix", without naming where the value came from: the CLI says "--python", the workflow writer says
which setting. Nothing here touches Docker, the network or a file.
"""

from __future__ import annotations

import re

from toolkit.errors import UsageError


class Invalid(UsageError):
    """A value that cannot be used; str() is "what is wrong: the fix"."""


_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")


def python_version(value: str) -> str:
    if not _PYTHON_RE.match(value or ""):
        raise Invalid(f"{value[:40]!r} is not a Python version X.Y: e.g. 3.12")
    return value
