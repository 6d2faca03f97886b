"""`[tool.imgtool]` values that are more than a string: each read from the table and checked, or one line why not."""

from __future__ import annotations

import re
from enum import StrEnum

from toolkit.errors import UsageError

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_APT_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")


# The runtime stage. "distroless": the interpreter, its standard library and the C libraries the app's wheels
# link, assembled from the base's Debian packages into an empty image (no shell, apt, dpkg or perl).
# "debian": the base image itself, with a shell and apt, for apps that run shell commands or need packages'
# maintainer scripts. With apt-packages and no runtime set, "debian" (those packages may need their scripts).
class Runtime(StrEnum):
    distroless = "distroless"
    debian = "debian"


DEFAULT_RUNTIME = Runtime.distroless


def string_table(settings: dict, key: str, reserved: set[str] = frozenset()) -> dict[str, str]:
    table = settings.get(key, {})
    if not isinstance(table, dict):
        raise UsageError(f'[tool.imgtool] {key} must be a table, e.g. {key} = {{ NAME = "value" }}')
    result = {}
    for name, value in table.items():
        if not _NAME_RE.match(name) or name in reserved or name.startswith("IMGTOOL_"):
            raise UsageError(f"[tool.imgtool] {key} name {name!r} is not allowed: use a NAME imgtool does not set")
        if not isinstance(value, str | int | float | bool) or any(ord(c) < 32 for c in str(value)):
            raise UsageError(f"[tool.imgtool] {key}.{name} must be a one-line string or number")
        result[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return result


def servers(settings: dict) -> tuple[str, ...]:
    from toolkit.servers import get_server

    if "server" in settings and "servers" in settings:
        raise UsageError("[tool.imgtool] has both server and servers: keep one")
    value = settings.get("servers", settings.get("server", []))
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UsageError('[tool.imgtool] servers must be a list of names, e.g. servers = ["granian", "uvicorn"]')
    return tuple(get_server(name).name for name in dict.fromkeys(names))


def workers(settings: dict) -> int | None:
    workers = settings.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise UsageError(f"[tool.imgtool] workers = {workers!r} is not a positive number: e.g. workers = 2")
    return workers


def runtime(settings: dict, origins: dict[str, str]) -> Runtime:
    runtime = settings.get("runtime")
    if runtime is None:
        if settings.get("apt-packages"):
            origins["runtime"] = "default (debian: apt-packages are installed with their maintainer scripts)"
            return Runtime.debian
        return DEFAULT_RUNTIME
    if runtime not in tuple(Runtime):
        raise UsageError(
            f'[tool.imgtool] runtime = {runtime!r} is not one of {", ".join(Runtime)}: e.g. runtime = "debian"'
        )
    return Runtime(runtime)


def apt_packages(settings: dict) -> tuple[str, ...]:
    packages = settings.get("apt-packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and _APT_RE.match(p) for p in packages):
        raise UsageError(
            f'[tool.imgtool] apt-packages = {packages!r} is not a list of Debian package names: e.g. ["libpq5"]'
        )
    return tuple(dict.fromkeys(packages))


def exclude(settings: dict) -> tuple[str, ...]:
    names = settings.get("exclude", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _PACKAGE_RE.match(n) for n in names):
        raise UsageError(f'[tool.imgtool] exclude = {names!r} is not a list of package names: e.g. ["faker"]')
    return tuple(dict.fromkeys(names))


def names(settings: dict, key: str, example: str) -> tuple[str, ...]:
    """`extras` / `groups`: a list of names (PEP 508 / PEP 735 spelling), in the order given, without repeats."""
    value = settings.get(key, [])
    if not isinstance(value, list) or not all(isinstance(n, str) and _PACKAGE_RE.match(n) for n in value):
        raise UsageError(f"[tool.imgtool] {key} = {value!r} is not a list of names: e.g. {key} = [{example!r}]")
    return tuple(dict.fromkeys(value))


def requirement_files(settings: dict) -> tuple[str, ...]:
    """`requirements`: the project's requirements files, context-relative, any names."""
    value = settings.get("requirements", [])
    value = [value] if isinstance(value, str) else value
    files = value if isinstance(value, list) else []
    usable = all(isinstance(n, str) and n.strip() and not any(ord(c) < 32 for c in n) for n in files)
    if not isinstance(value, list) or not usable or ("requirements" in settings and not files):
        raise UsageError(
            f'[tool.imgtool] requirements = {value!r} is not a list of files: e.g. requirements = ["requirements/app"]'
        )
    return tuple(dict.fromkeys(files))
