"""Which Python a build uses: what the project asks for, and what imgtool can build on where no registry answers.

The project's word: `.python-version`, `.tool-versions` (asdf), `mise.toml`, `runtime.txt` (an exact X.Y), then
`requires-python` (uv.lock, pyproject.toml), Poetry's `python`, Pipfile's `python_version`; files are read,
never executed. The offline bases: Debian's own CPython, one base each, as data (no engine), so the pick can
prefer a version that has one and the same project builds with or without a registry. What the suites
ship was read from this machine's Debian mirror (each suite's main/binary-amd64 Packages, 2026-12):
bookworm has python3.11, trixie python3.13, forky python3.14 (its python3) and python3.15 (beside it, not yet
python3). 3.12 is in no suite reachable here (trixie dropped it before its release). sid has what forky has,
newer: forky is testing, so it is the suite chosen; `imgtool base bootstrap --suite sid` builds on sid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit import lockfiles
from toolkit.detect import read_toml
from toolkit.errors import UsageError

OFFLINE_REPOSITORY = "imgtool/python"
# debootstrap's suite scripts: bookworm's debootstrap 1.0.128 stops at trixie; newer suites work with sid's.
NEWEST_SCRIPT_FALLBACK = "sid"
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


@dataclass(frozen=True)
class OfflinePython:
    """One offline base: Debian `suite` with its CPython `python` (X.Y) from Debian's own packages."""

    python: str
    suite: str
    # The suite's own python3 (python3-minimal owns /usr/bin/python3); otherwise the versioned interpreter is
    # installed beside none, and the base gets a /usr/local/bin/python3 link to it.
    default: bool = True

    @property
    def image(self) -> str:
        return f"{OFFLINE_REPOSITORY}:{self.python}-{self.suite}"

    @property
    def packages(self) -> tuple[str, ...]:
        names = ("python3-minimal", "python3-venv") if self.default else (f"python{self.python}-minimal",
                                                                          f"python{self.python}-venv")  # fmt: skip
        return (*names, "ca-certificates")

    @property
    def label(self) -> str:
        return f"{self.python} ({self.suite})"


OFFLINE_PYTHONS = (
    OfflinePython("3.11", "bookworm"),
    OfflinePython("3.13", "trixie"),
    OfflinePython("3.14", "forky"),
    OfflinePython("3.15", "forky", default=False),
)
# Each known suite's python3, so `--suite S` alone picks it (sid follows forky).
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13", "forky": "3.14", "sid": "3.14"}
OFFLINE_VERSIONS = tuple(o.python for o in OFFLINE_PYTHONS)


def available() -> str:
    """`3.11 (bookworm), 3.13 (trixie), ...`: the offline Pythons, for error messages."""
    return ", ".join(o.label for o in OFFLINE_PYTHONS)


def offline_python(python: str) -> OfflinePython | None:
    """The offline base for X.Y, or None when no Debian suite reachable here ships it."""
    return next((o for o in OFFLINE_PYTHONS if o.python == python), None)


def choose(python: str | None, suite: str | None) -> OfflinePython:
    """What `imgtool base bootstrap [--python X.Y] [--suite S]` builds; one line naming the choices when none fits."""
    if suite is not None and not SUITE_RE.match(suite):
        raise UsageError(f"--suite {suite[:40]!r} is not a Debian suite name: e.g. trixie")
    if suite is None:
        python = python or OFFLINE_PYTHONS[0].python
        found = offline_python(python)
        if found is None:
            raise UsageError(
                f"no Debian suite reachable here ships Python {python}: offline bases are {available()}; "
                "pick one with --python, or pull a published Python image where a registry answers"
            )
        return found
    if python is None:
        python = SUITE_PYTHON.get(suite)
        if python is None:
            raise UsageError(f"imgtool does not know Debian {suite}'s Python: name it with --python X.Y")
    known = next((o for o in OFFLINE_PYTHONS if o.python == python and o.suite == suite), None)
    return known or OfflinePython(python, suite, default=SUITE_PYTHON.get(suite) == python)


# ---- what the project asks for ----

_VERSION_RE = re.compile(r"(\d+)\.(\d+)")
# A tool-version pin: `3.12`, `3.12.1`, `cpython-3.12`; `system`/`latest` say nothing about the version.
_PIN_RE = re.compile(r"^(?:cpython-|python-)?(\d+)\.(\d+)(?:[.\w+-]*)$")
_NO_PIN = ("system", "latest", "ref:", "path:", "prefix:")
KNOWN_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15")


@dataclass(frozen=True)
class PythonRequirement:
    """What the project says about its Python: an exact X.Y (.python-version) or a specifier set."""

    where: str  # ".python-version", "requires-python in pyproject.toml", ...
    exact: str | None = None  # "3.12"
    specifier: str | None = None  # ">=3.10,<4.0"

    def allows(self, version: str) -> bool:
        if self.exact is not None:
            return self.exact == version
        return lockfiles.satisfies(version, self.specifier or "")

    def describe(self) -> str:
        return f"Python {self.exact}" if self.exact else f"Python {self.specifier}"


def _pin(value: object, where: str) -> PythonRequirement | None:
    """One tool's Python pin as an exact X.Y; None for `system`/`latest`; a CPython it is not is an error."""
    text = str(value).strip()
    if not text or text.startswith(_NO_PIN):
        return None
    match = _PIN_RE.match(text)
    if match is None:
        raise UsageError(f"{where} names Python {text[:40]!r}, not a CPython version X.Y: pin e.g. 3.13 there")
    return PythonRequirement(where, exact=f"{match.group(1)}.{match.group(2)}")


def _python_version_file(directory: Path) -> PythonRequirement | None:
    pinned = directory / ".python-version"
    if pinned.is_file():
        for line in pinned.read_text().splitlines():
            match = _VERSION_RE.search(line.split("#", 1)[0])
            if match:
                return PythonRequirement(f"{pinned.name} in {directory.name or directory}", exact=match.group(0))
    return None


def _tool_versions(directory: Path) -> PythonRequirement | None:
    """asdf's `.tool-versions`: `python 3.12.1 3.11.9` (the first is the one asdf runs)."""
    path = directory / ".tool-versions"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields[:1] == ["python"]:
            if len(fields) < 2:
                raise UsageError(f"{path} has a python line with no version: add one, e.g. python 3.13.1")
            return _pin(fields[1], f".tool-versions in {directory.name or directory}")
    return None


def _mise(directory: Path) -> PythonRequirement | None:
    """mise's `[tools] python = "3.12"` (also a list, first wins, or `{ version = "3.12" }`)."""
    for name in ("mise.toml", ".mise.toml"):
        path = directory / name
        value = read_toml(path).get("tools", {}).get("python")
        if value is None:
            continue
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, dict):
            first = first.get("version", "")
        return _pin(first, f"[tools] python in {name}")
    return None


def _runtime_txt(directory: Path) -> PythonRequirement | None:
    """Heroku's `runtime.txt`: `python-3.12.1`."""
    path = directory / "runtime.txt"
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if not text.startswith("python-"):
        raise UsageError(f"{path} says {text[:40]!r}: write python-X.Y (e.g. python-3.13), or remove the file")
    return _pin(text, "runtime.txt")


_PINS = (_python_version_file, _tool_versions, _mise, _runtime_txt)


def python_requirement(project: Path, root: Path | None = None) -> PythonRequirement | None:
    """The first of: an exact pin (.python-version, .tool-versions, mise.toml, runtime.txt) in the project, then
    its workspace root; requires-python in uv.lock, then pyproject.toml; Poetry's python; Pipfile's."""
    roots = [project] + ([root] if root is not None and root != project else [])
    for directory in roots:
        for reader in _PINS:
            found = reader(directory)
            if found is not None:
                return found
    for directory in roots:
        lock = directory / "uv.lock"
        if lock.is_file():
            spec = read_toml(lock).get("requires-python")
            if spec:
                return PythonRequirement("requires-python in uv.lock", specifier=spec.replace(" ", ""))
    pyproject = read_toml(project / "pyproject.toml")
    spec = pyproject.get("project", {}).get("requires-python")
    if spec:
        return PythonRequirement("requires-python in pyproject.toml", specifier=spec.replace(" ", ""))
    poetry = pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    if isinstance(poetry, str) and poetry.strip() not in ("", "*"):
        return PythonRequirement(
            "[tool.poetry.dependencies] python in pyproject.toml", specifier=lockfiles.to_pep440(poetry)
        )
    pipfile = read_toml(project / "Pipfile").get("requires", {})
    wanted = pipfile.get("python_version") or pipfile.get("python_full_version")
    if wanted:
        match = _VERSION_RE.search(str(wanted))
        if match:
            return PythonRequirement("[requires] python_version in Pipfile", exact=match.group(0))
    return None


def pick_python(requirement: PythonRequirement, preferred: str) -> str | None:
    """The X.Y to build with: the exact one; else `preferred` when allowed; else the nearest allowed one that
    has an offline base (so a project builds on the same Python with or without a registry); else the nearest
    allowed one."""
    if requirement.exact is not None:
        return requirement.exact

    def distance(version: str) -> tuple[int, int]:
        gap = int(version.split(".")[1]) - int(preferred.split(".")[1])
        return (abs(gap), -gap)  # nearest; on a tie the newer

    allowed = [version for version in KNOWN_PYTHONS if requirement.allows(version)]
    offline = [version for version in allowed if version in OFFLINE_VERSIONS]
    return min(offline or allowed, key=distance) if allowed else None
