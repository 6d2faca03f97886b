"""Value checks at the edge, one function per kind of value, with the limits the engine and the OS enforce.

Each takes the raw value and returns it (normalised) or raises `Invalid` with "what is wrong: the
fix", without naming where the value came from: the CLI says "--port", the config reader says
"[tool.imgtool] port". Nothing here touches Docker, the network or a file's contents.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from toolkit.errors import UsageError


class Invalid(UsageError):
    """A value that cannot be used; str() is "what is wrong: the fix"."""


# module:attr, or module:factory() for an app factory (called with no arguments at start-up).
APP_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\(\))?$")
PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
# The distribution reference grammar (docker/distribution reference): [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d{1,5})?/)"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REFERENCE_RE = re.compile(rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")
_TAG_RE = re.compile(rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A URL path: printable ASCII without spaces, quotes or a fragment.
_URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
_SHELL_META = set(";|&$`<>\\\"'\n\r\t*?[]{}()!#~")
MAX_REFERENCE = 255


def _printable(value: str, what: str) -> str:
    if not value or not value.strip():
        raise Invalid(f"{what} is empty: give a value")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise Invalid(f"{what} contains control characters: type it without them")
    return value


def app_ref(value: str) -> str:
    _printable(value, "the app")
    if not APP_RE.match(value):
        raise Invalid(f"{value[:80]!r} is not module:attribute: e.g. myproject.main:app or main:create_app()")
    return value


def python_version(value: str) -> str:
    if not PYTHON_RE.match(value or ""):
        raise Invalid(f"{value[:40]!r} is not a Python version X.Y: e.g. 3.12")
    return value


def image_reference(value: str) -> str:
    """Any image reference Docker accepts: `name`, `name:tag`, `host:port/name@sha256:...`."""
    _printable(value, "the image reference")
    if len(value) > MAX_REFERENCE or not _REFERENCE_RE.match(value):
        raise Invalid(f"{value[:80]!r} is not an image reference: use lowercase name[:tag], e.g. myapp:granian")
    return value


def image_tag(value: str) -> str:
    """A name to tag a build with: `[host[:port]/]name[:tag]` (no digest), at most 255 characters."""
    _printable(value, "the tag")
    if len(value) > MAX_REFERENCE or not _TAG_RE.match(value):
        raise Invalid(f"{value[:80]!r} is not an image name: use lowercase name[:tag], e.g. myapp:granian")
    return value


def url_path(value: str) -> str:
    """An HTTP path such as /health: starts with '/', no spaces or control characters."""
    _printable(value, "the path")
    if len(value) > 2048 or not _URL_PATH_RE.match(value):
        raise Invalid(f"{value[:80]!r} is not a URL path: start with '/' and use no spaces, e.g. /health")
    return value


def env_pair(value: str) -> tuple[str, str]:
    """KEY=VALUE for a container's environment."""
    key, sep, setting = value.partition("=")
    if not sep or not _ENV_NAME_RE.match(key):
        raise Invalid(f"{value[:80]!r} is not KEY=VALUE: e.g. DATABASE_URL=sqlite:///tmp/db")
    if any(ord(char) < 32 and char != "\t" for char in setting):
        raise Invalid(f"the value of {key} contains control characters: pass it on one line")
    return key, setting


def port(value: int, low: int = 1) -> int:
    if not low <= value <= 65535:
        raise Invalid(f"{value} is not a TCP port: use {low} to 65535")
    return value


def positive_seconds(value: float, most: float = 3600) -> float:
    if math.isnan(value) or not 0 < value <= most:
        raise Invalid(f"{value} seconds is out of range: use more than 0 and at most {most:g}")
    return value


def count(value: int, most: int = 1024, what: str = "count") -> int:
    if not 1 <= value <= most:
        raise Invalid(f"{value} is not a {what}: use 1 to {most}")
    return value


def safe_words(value: str, what: str, most: int = 500) -> str:
    """Free text that lands in a generated file or a command line: no shell metacharacters."""
    _printable(value, what)
    bad = sorted(set(value) & _SHELL_META)
    if bad or len(value) > most:
        raise Invalid(f"{what} {value[:60]!r} has shell metacharacters or is too long: use plain words")
    return value


def relative_path(value: str) -> str:
    """A path inside a repository, as written into a generated file: relative, no `..`, plain characters."""
    _printable(value, "the path")
    parts = value.split("/")
    plain = re.match(r"^[A-Za-z0-9._/-]+$", value) and len(value) <= 1024 and max(map(len, parts)) <= 255
    if value.startswith("/") or ".." in parts or not plain:
        raise Invalid(f"{value[:80]!r} is not a plain path inside the repository: e.g. . or services/api")
    return value


def pip_arguments(value: str) -> str:
    """What a generated workflow passes to `pip install` unquoted: requirement specifiers and options only."""
    _printable(value, "the pip arguments")
    if len(value) > 500 or not re.match(r"^[A-Za-z0-9 ._=!~,@:/+\[\]-]+$", value):
        raise Invalid(
            f"{value[:80]!r} is not plain pip arguments (no quotes, <, >, ;, | or $): e.g. 'imgtool-asgi==0.2.0'"
        )
    return value


def url(value: str) -> str:
    _printable(value, "the URL")
    if not re.match(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?(/[A-Za-z0-9._~%/+-]*)?$", value):
        raise Invalid(f"{value[:80]!r} is not an http(s) URL: e.g. http://mirror.example/debian")
    return value


def suite(value: str) -> str:
    """A Debian suite (codename) name: trixie, forky, sid."""
    from toolkit.pythons import SUITE_RE

    if not SUITE_RE.match(value or ""):
        raise Invalid(f"{value[:40]!r} is not a Debian suite name: e.g. trixie")
    return value


# ---- paths ----


def path_text(raw: str) -> Path:
    """A path as typed: empty or blank is refused here (Path("") would silently mean the current directory)."""
    _printable(raw, "the path")
    return Path(raw).expanduser()


def existing_dir(value: Path) -> Path:
    path = value.expanduser()
    if not path.is_dir():
        raise Invalid(f"{path} is not a directory: pass an existing directory")
    if _system(path):
        raise Invalid(f"{path} is a system directory: pass your project's directory")
    return path


def existing_file(value: Path) -> Path:
    path = value.expanduser()
    if not path.is_file():
        raise Invalid(f"{path} is not a regular file: pass an existing file")
    if not os.access(path, os.R_OK):
        raise Invalid(f"{path} cannot be read: fix its permissions")
    return path


def pem_bundle(value: Path) -> Path:
    path = existing_file(value)
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise Invalid(f"{path} holds no PEM certificate: pass a CA bundle, e.g. /etc/ssl/certs/ca-certificates.crt")
    return path


_SYSTEM_DIRS = ("/proc", "/sys", "/dev")


def _system(path: Path) -> bool:
    resolved = str(path.resolve())
    return any(resolved == top or resolved.startswith(top + "/") for top in _SYSTEM_DIRS)


def _writable(path: Path, directory: Path) -> Path:
    if _system(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise Invalid(f"directory {directory} is not writable: pick another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise Invalid(f"{path} is not writable: fix its permissions or pick another path")
    return path


def _replaceable(value: Path) -> Path:
    """A path that names a regular file or nothing yet: what imgtool may (re)write."""
    path = value.expanduser()
    if path.is_dir():
        raise Invalid(f"{path} is a directory: pass a file name, e.g. {path / 'out.yaml'}")
    if path.exists() and not path.is_file():
        raise Invalid(f"{path} exists and is not a regular file: pass a file name")
    return path


def output_file(value: Path) -> Path:
    """A file imgtool may (re)write: a regular file or a new name, in a writable directory."""
    path = _replaceable(value)
    if not path.parent.is_dir():
        raise Invalid(f"directory {path.parent} does not exist: create it or pick another path")
    return _writable(path, path.parent)


def output_tree(value: Path) -> Path:
    """A file imgtool may (re)write, creating missing directories: the nearest existing one must be writable."""
    path = _replaceable(value)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise Invalid(f"{ancestor} is not a directory: pick another path")
    return _writable(path, ancestor)


def output_template(value: Path) -> Path:
    """An output file whose name may hold `{server}` (filled in per server): checked as one such file."""
    output_file(Path(str(value).replace("{server}", "server")))
    return value.expanduser()
