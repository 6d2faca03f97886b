"""Foreign lock files (poetry.lock, pdm.lock, Pipfile.lock) → a pinned requirements file: exactly the main
group's packages, each `name==version` with its environment marker and every hash the lock records.

STDLIB ONLY: this module also runs inside the image's builder stage (staged into the `imgtool-assets`
context as `lock_export.py`): `python lock_export.py FORMAT LOCK PYPROJECT OUT`. imgtool runs the same
code at plan time, so a lock it cannot read is a one-line error before any build starts.

Why not `poetry export` / `pdm export`: they need the tool (and its own dependencies) from the index in
every build, and Poetry resolves through the index's JSON API, which not every index serves. A lock
file already holds the resolution; reading it needs no network.

What is selected:
- Poetry lock-version >= 2.1 (Poetry 2.x): packages whose `groups` include "main", with the
  main group's `markers`.
- Poetry lock-version < 2.1 (Poetry 1.x) and PDM locks without per-package groups: a walk of the
  dependency graph from the project's main dependencies (`[tool.poetry.dependencies]`,
  `[project] dependencies`), activating extras as requested, carrying each edge's marker; a package
  reached along several paths gets the OR of the paths' markers.
- PDM locks with per-package `groups` (inherit_metadata): packages in the "default" group.
- Pipfile.lock: the "default" section (it is flat already).
Extras and dependency groups (`[tool.imgtool] extras`, `groups`) add to the main selection: Poetry's groups
(`[tool.poetry.group.G]`, the legacy dev-dependencies, PEP 735 `[dependency-groups]`) and extras
(`[tool.poetry.extras]`, `[project.optional-dependencies]`); PDM's dev-dependency groups, PEP 735 groups and
optional dependencies (each a group of its lock); Pipfile.lock's other sections ("dev" is its "develop"). A
name the project or the lock does not have is an error listing those it has.
Markers are kept, not evaluated here: the installer evaluates them on the target platform.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field

FORMATS = {"poetry.lock": "poetry", "pdm.lock": "pdm", "Pipfile.lock": "pipenv"}


class LockError(ValueError):
    """The lock cannot be exported; str() names the problem and the fix."""


def normalize(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- markers: a marker is a set of alternatives, each a frozenset of clauses that must all hold ----

Conjunction = frozenset  # of clause strings; empty = always true

_EXTRA_CLAUSE = re.compile(r"""^\(?\s*extra\s*==\s*["'][^"']*["']\s*\)?$""")


def _split_top(text: str, word: str) -> list[str]:
    """Split on ` word ` outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    token = f" {word} "
    while i < len(text):
        char = text[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            parts.append(text[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _unwrap(text: str) -> str:
    """Drop parentheses that enclose the whole expression."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for index, char in enumerate(text):
            depth += (char == "(") - (char == ")")
            if depth == 0 and index < len(text) - 1:
                return text  # the first parenthesis closes before the end: `(a) and (b)`
        text = text[1:-1].strip()
    return text


def marker_clauses(marker: str | None) -> Conjunction:
    """A marker as a conjunction of clauses, with `extra == ...` clauses removed (the caller decided extras).

    A marker that is an OR of alternatives stays one clause; one whose alternatives are all `extra`
    tests holds once the extra is active, so it adds nothing.
    """
    if not marker or not marker.strip():
        return Conjunction()
    clauses = set()
    for part in _split_top(_unwrap(marker), "and"):
        part = _unwrap(part)
        if len(_split_top(part, "and")) > 1:  # `(a and b) and c`: the same conjunction, flattened
            clauses |= marker_clauses(part)
            continue
        alternatives = _split_top(part, "or")
        if len(alternatives) > 1:
            kept = [alt for alt in alternatives if not _EXTRA_CLAUSE.match(_unwrap(alt))]
            if len(kept) < len(alternatives):
                continue  # one alternative is an extra test, true under the extra being walked
            clauses.add(f"({part})")
        elif not _EXTRA_CLAUSE.match(part):
            clauses.add(part)
    return Conjunction(clauses)


def render_marker(alternatives: set[Conjunction] | None) -> str | None:
    """The OR of the alternatives (absorbed: an alternative implied by a weaker one is dropped)."""
    if not alternatives or Conjunction() in alternatives:
        return None
    kept = [alt for alt in alternatives if not any(other < alt for other in alternatives)]
    rendered = sorted(" and ".join(sorted(alt)) for alt in kept)
    if len(rendered) == 1:
        return rendered[0]
    return " or ".join(f"({text})" if " and " in text else text for text in rendered)


# ---- versions and constraints (Poetry's ^ and ~, PEP 440 operators), enough to pick among duplicates ----


def _release(version: str) -> tuple[int, ...]:
    numbers = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(n) for n in numbers.group(1).split(".")) if numbers else (0,)


def _bump(release: tuple[int, ...], index: int) -> str:
    head = list(release[: index + 1]) + [0] * max(0, index + 1 - len(release))
    head[index] += 1
    return ".".join(map(str, head))


def constraint_specifiers(constraint: str) -> list[list[tuple[str, str]]]:
    """A Poetry or PEP 440 constraint as OR-ed lists of AND-ed (operator, version) pairs."""
    alternatives = []
    for alternative in re.split(r"\|\|?", constraint or "*"):
        pairs: list[tuple[str, str]] = []
        for part in re.split(r",|\s+(?=[<>=!~^])", alternative.strip()):
            part = part.strip()
            if not part or part == "*":
                continue
            match = re.match(r"^(\^|~=|~|===|==|!=|>=|<=|>|<)?\s*(.+)$", part)
            if not match:
                raise LockError(f"cannot read the version constraint {constraint!r}")
            op, version = match.group(1) or "==", match.group(2).strip()
            release = _release(version)
            if op == "^":
                first = next((i for i, n in enumerate(release) if n != 0), len(release) - 1)
                pairs += [(">=", version), ("<", _bump(release, first))]
            elif op == "~":
                pairs += [(">=", version), ("<", _bump(release, min(1, len(release) - 1)))]
            elif op == "~=":
                pairs += [(">=", version), ("<", _bump(release, max(0, len(release) - 2)))]
            elif op in ("==", "===") and version.endswith(".*"):
                prefix = _release(version[:-2])
                pairs += [(">=", ".".join(map(str, prefix))), ("<", _bump(prefix, len(prefix) - 1))]
            elif op == "!=" and version.endswith(".*"):
                pairs.append(("!=*", version[:-2]))
            else:
                pairs.append((op.replace("===", "=="), version))
        alternatives.append(pairs)
    return alternatives


def _compare(left: tuple[int, ...], right: tuple[int, ...]) -> int:
    width = max(len(left), len(right))
    a, b = left + (0,) * (width - len(left)), right + (0,) * (width - len(right))
    return (a > b) - (a < b)


def satisfies(version: str, constraint: str) -> bool:
    """Whether a release (compared by its numbers only) meets a Poetry/PEP 440 constraint."""
    release = _release(version)
    for pairs in constraint_specifiers(constraint):
        ok = True
        for op, bound in pairs:
            if op == "!=*":
                prefix = _release(bound)
                ok = release[: len(prefix)] != prefix
            else:
                c = _compare(release, _release(bound))
                ok = {">=": c >= 0, ">": c > 0, "<=": c <= 0, "<": c < 0, "==": c == 0, "!=": c != 0}[op]
            if not ok:
                break
        if ok:
            return True
    return False


def python_marker(constraint: str | None) -> str | None:
    """A Poetry `python = "..."` constraint as a PEP 508 marker (None: any Python)."""
    if not constraint or constraint.strip() == "*":
        return None
    alternatives = []
    for pairs in constraint_specifiers(constraint):
        clauses = []
        for op, version in pairs:
            variable = "python_full_version" if len(_release(version)) > 2 else "python_version"
            if op == "!=*":
                clauses.append(f'python_version != "{version}"')
            else:
                clauses.append(f'{variable} {op} "{version}"')
        if not clauses:
            return None
        alternatives.append(" and ".join(clauses))
    return alternatives[0] if len(alternatives) == 1 else " or ".join(f"({a})" for a in alternatives)


def to_pep440(constraint: str) -> str:
    """A Poetry constraint (`^3.10`, `~3.11`, `>=3.9 || <3`) as a PEP 440 specifier set (its first alternative)."""
    alternatives = constraint_specifiers(constraint)
    return ",".join(f"{op}{v}" if op != "!=*" else f"!={v}.*" for op, v in alternatives[0])


# ---- PEP 508 requirement strings ----

_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?P<rest>[^;]*?)\s*(?:;\s*(?P<marker>.*))?$"
)


@dataclass(frozen=True)
class Requirement:
    name: str
    extras: frozenset[str]
    spec: str
    marker: str | None
    url: str | None = None


def parse_requirement(text: str) -> Requirement:
    """`name[extras] (spec) ; marker`, `name[extras]>=1; marker` or `name @ url ; marker`."""
    match = _REQUIREMENT.match(text)
    if not match:
        raise LockError(f"cannot read the requirement {text!r}")
    rest = match.group("rest").strip()
    url = rest[1:].strip() if rest.startswith("@") else None
    spec = "" if url else rest.strip("() ")
    extras = frozenset(normalize(e) for e in (match.group("extras") or "").split(",") if e.strip())
    return Requirement(normalize(match.group("name")), extras, spec, match.group("marker"), url)


# ---- extras and dependency groups: what the project declares ----


def dependency_groups(pyproject: dict) -> dict[str, list]:
    """PEP 735 `[dependency-groups]`, by normalized name (entries: requirement strings, {include-group})."""
    return {normalize(name): list(items) for name, items in pyproject.get("dependency-groups", {}).items()}


def group_requirements(pyproject: dict, name: str, trail: tuple[str, ...] = ()) -> list[str]:
    """A PEP 735 group's requirement strings, `{include-group = ...}` expanded; a cycle is an error."""
    groups = dependency_groups(pyproject)
    key = normalize(name)
    if key in trail:
        raise LockError(f"[dependency-groups] {' -> '.join((*trail, key))} includes itself: break the cycle")
    if key not in groups:
        raise LockError(f"[dependency-groups] has no group {name!r} (groups: {', '.join(sorted(groups)) or 'none'})")
    found = []
    for item in groups[key]:
        if isinstance(item, dict) and "include-group" in item:
            found += group_requirements(pyproject, item["include-group"], (*trail, key))
        elif isinstance(item, str):
            found.append(item)
        else:
            raise LockError(f"[dependency-groups] {name}: {item!r} is neither a requirement nor an include-group")
    return found


def unknown(kind: str, asked: tuple[str, ...], declared, where: str) -> LockError | None:
    """The error for names in `asked` that `declared` lacks (both compared normalized), or None."""
    have = {normalize(name) for name in declared}
    missing = [name for name in asked if normalize(name) not in have]
    if not missing:
        return None
    return LockError(
        f"{where} declares no {kind} {', '.join(map(repr, missing))} ({kind}s: {', '.join(sorted(have)) or 'none'}): "
        f"fix [tool.imgtool] {kind}s"
    )


# ---- what the exporter produces ----


@dataclass
class Pin:
    name: str
    version: str | None
    hashes: tuple[str, ...] = ()
    url: str | None = None
    alternatives: set[Conjunction] | None = None  # None: always installed
    indexes: tuple[str, ...] = ()

    @property
    def marker(self) -> str | None:
        return render_marker(self.alternatives)

    def line(self) -> str:
        head = f"{self.name} @ {self.url}" if self.url else f"{self.name}=={self.version}"
        marker = self.marker
        if marker:
            head += f" ; {marker}"
        return " \\\n    ".join([head, *(f"--hash={h}" for h in self.hashes)])


@dataclass
class Export:
    source: str  # "poetry.lock (lock-version 2.0, main group by dependency walk)"
    pins: list[Pin] = field(default_factory=list)

    @property
    def hashed(self) -> bool:
        """Every pin carries hashes: the install can require them."""
        return bool(self.pins) and all(pin.hashes for pin in self.pins)

    def text(self) -> str:
        indexes = dict.fromkeys(url for pin in self.pins for url in pin.indexes)
        lines = [f"# Exported by imgtool from {self.source}: {len(self.pins)} packages."]
        lines += [f"--extra-index-url {url}" for url in indexes]
        lines += [pin.line() for pin in sorted(self.pins, key=lambda p: (p.name, p.version or ""))]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Edge:
    name: str
    extras: frozenset[str]
    clauses: Conjunction
    constraint: str = ""


class _Collector:
    """Walks a lock's dependency graph from the root edges; records each reached entry's markers."""

    def __init__(self, entries_for, edges_of, pin_of):
        self.entries_for, self.edges_of, self.pin_of = entries_for, edges_of, pin_of
        self.pins: dict[tuple[str, str], Pin] = {}
        self.visited: dict[tuple[str, frozenset[str]], list[Conjunction]] = defaultdict(list)

    def walk(self, roots: list[Edge]) -> list[Pin]:
        stack = [(edge, Conjunction()) for edge in roots]
        while stack:
            edge, parent = stack.pop()
            clauses = parent | edge.clauses
            seen = self.visited[(edge.name, edge.extras)]
            if any(previous <= clauses for previous in seen):
                continue  # reached before under a weaker (or the same) condition: nothing new below
            seen.append(clauses)
            for entry in self.entries_for(edge):
                pin = self.pin_of(entry)
                key = (pin.name, pin.version or pin.url or "")
                recorded = self.pins.setdefault(key, pin)
                if recorded.alternatives is None:
                    recorded.alternatives = set()
                recorded.alternatives.add(clauses)
                stack += [(child, clauses) for child in self.edges_of(entry, edge.extras)]
        return list(self.pins.values())


def _missing(kind: str, name: str, fix: str) -> LockError:
    return LockError(f"{kind} has no package {name!r}, which the project depends on: the lock is out of date, {fix}")


# ---- Poetry ----


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(text))) or (0,)


def _poetry_hashes(entry: dict, legacy_files: dict) -> tuple[str, ...]:
    files = entry.get("files")
    if files is None:
        files = legacy_files.get(entry["name"], legacy_files.get(normalize(entry["name"]), []))
    return tuple(dict.fromkeys(f["hash"] for f in files if f.get("hash")))


def _poetry_pin(entry: dict, legacy_files: dict) -> Pin:
    name = normalize(entry["name"])
    source = entry.get("source") or {}
    kind = source.get("type")
    if kind == "git":
        reference = source.get("resolved_reference") or source.get("reference") or ""
        url = f"git+{source['url']}" + (f"@{reference}" if reference else "")
        if source.get("subdirectory"):
            url += f"#subdirectory={source['subdirectory']}"
        return Pin(name, entry.get("version"), url=url)
    if kind == "url":
        return Pin(name, entry.get("version"), _poetry_hashes(entry, legacy_files), url=source["url"])
    if kind in ("file", "directory"):
        raise LockError(
            f"poetry.lock: {name} is a local {kind} dependency ({source.get('url')}): imgtool installs index, "
            "git and URL packages from a lock; publish it or vendor it into the app"
        )
    indexes = (source["url"],) if kind == "legacy" and source.get("url") else ()
    return Pin(name, entry["version"], _poetry_hashes(entry, legacy_files), indexes=indexes)


def _poetry_edge(name: str, item) -> Edge:
    table = item if isinstance(item, dict) else {"version": item}
    clauses = set(marker_clauses(table.get("markers")))
    python = python_marker(table.get("python"))
    if python:
        clauses.add(f"({python})" if " or " in python else python)
    if table.get("platform"):
        clauses.add(f'sys_platform == "{table["platform"]}"')
    extras = frozenset(normalize(e) for e in table.get("extras", []))
    return Edge(normalize(name), extras, Conjunction(clauses), str(table.get("version", "")))


def _poetry_items(table: dict) -> list[tuple[str, object]]:
    """(name, item) for each entry of a Poetry dependency table, a list of constraints split into its items."""
    return [
        (name, item)
        for name, spec in table.items()
        if normalize(name) != "python"
        for item in (spec if isinstance(spec, list) else [spec])
    ]


def _poetry_groups(pyproject: dict) -> dict[str, list[Edge]]:
    """Each dependency group a Poetry project declares, as root edges: [tool.poetry.group.G.dependencies], the
    legacy [tool.poetry.dev-dependencies] ("dev"), PEP 735 [dependency-groups]."""
    poetry = pyproject.get("tool", {}).get("poetry", {})
    groups: dict[str, list[Edge]] = {}
    for name, table in poetry.get("group", {}).items():
        groups[normalize(name)] = [_poetry_edge(n, item) for n, item in _poetry_items(table.get("dependencies", {}))]
    if "dev-dependencies" in poetry:
        groups.setdefault("dev", []).extend(
            _poetry_edge(n, item) for n, item in _poetry_items(poetry["dev-dependencies"])
        )
    for name in dependency_groups(pyproject):
        groups.setdefault(name, []).extend(_pep508_roots(group_requirements(pyproject, name)))
    return groups


def _poetry_extras(pyproject: dict) -> dict[str, list[Edge]]:
    """Each extra as root edges: Poetry 1's [tool.poetry.extras] names optional dependencies of the main table;
    Poetry 2 also reads [project.optional-dependencies] (PEP 508 strings)."""
    poetry = pyproject.get("tool", {}).get("poetry", {})
    optional = {normalize(n): (n, item) for n, item in _poetry_items(poetry.get("dependencies", {}))}
    extras: dict[str, list[Edge]] = {}
    for extra, names in poetry.get("extras", {}).items():
        edges = [_poetry_edge(*optional[normalize(n)]) for n in names if normalize(n) in optional]
        extras.setdefault(normalize(extra), []).extend(edges)
    for extra, requirements in pyproject.get("project", {}).get("optional-dependencies", {}).items():
        extras.setdefault(normalize(extra), []).extend(_pep508_roots(requirements))
    return extras


def _poetry_roots(pyproject: dict, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> list[Edge]:
    roots = []
    for name, item in _poetry_items(pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {})):
        if isinstance(item, dict) and item.get("optional"):
            continue  # only an extra of the project pulls it in: added below when that extra is asked for
        roots.append(_poetry_edge(name, item))
    roots += _pep508_roots(pyproject.get("project", {}).get("dependencies", []))
    declared_extras, declared_groups = _poetry_extras(pyproject), _poetry_groups(pyproject)
    for kind, asked, declared in (("extra", extras, declared_extras), ("group", groups, declared_groups)):
        problem = unknown(kind, asked, declared, "pyproject.toml")
        if problem:
            raise problem
        for name in asked:
            roots += declared[normalize(name)]
    return roots


def _pep508_roots(requirements: list[str]) -> list[Edge]:
    roots = []
    for text in requirements:
        requirement = parse_requirement(text)
        roots.append(Edge(requirement.name, requirement.extras, marker_clauses(requirement.marker), requirement.spec))
    return roots


def _selected(extras: tuple[str, ...], groups: tuple[str, ...]) -> str:
    parts = [f"extras {', '.join(extras)}" if extras else "", f"groups {', '.join(groups)}" if groups else ""]
    return "".join(f" + {part}" for part in parts if part)


def export_poetry(lock: dict, pyproject: dict, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Export:
    metadata = lock.get("metadata", {})
    lock_version = str(metadata.get("lock-version", "1.0"))
    legacy_files = metadata.get("files", {})
    packages = lock.get("package", [])
    roots = _poetry_roots(pyproject, extras, groups)  # checks the names asked for
    # Poetry 2.x records each package's groups (and per-group markers); an extra's packages are `optional` there
    # with no record of which extra needs them, so asking for extras walks the graph instead.
    if _version_tuple(lock_version) >= (2, 1) and all("groups" in entry for entry in packages) and not extras:
        wanted = {"main", *(normalize(g) for g in groups)}
        pins = []
        for entry in packages:
            chosen = [
                g for g in entry["groups"] if normalize(g) in wanted and (g != "main" or not entry.get("optional"))
            ]
            if not chosen:
                continue
            markers = entry.get("markers")
            pin = _poetry_pin(entry, legacy_files)
            pin.alternatives = {
                marker_clauses(markers.get(g) if isinstance(markers, dict) else markers) for g in chosen
            }
            pins.append(pin)
        return Export(f"poetry.lock (lock-version {lock_version}, main group{_selected(extras, groups)})", pins)

    by_name: dict[str, list[dict]] = defaultdict(list)
    for entry in packages:
        by_name[normalize(entry["name"])].append(entry)

    def entries_for(edge: Edge) -> list[dict]:
        found = by_name.get(edge.name)
        if not found:
            raise _missing("poetry.lock", edge.name, "run `poetry lock` and commit it")
        if len(found) > 1 and edge.constraint:
            matching = [e for e in found if satisfies(e["version"], edge.constraint)]
            return matching or found
        return found

    def edges_of(entry: dict, extras: frozenset[str]) -> list[Edge]:
        wanted = set()
        for extra, requirements in entry.get("extras", {}).items():
            if normalize(extra) in extras:
                wanted |= {parse_requirement(text).name for text in requirements}
        edges = []
        for name, spec in entry.get("dependencies", {}).items():
            for item in spec if isinstance(spec, list) else [spec]:
                if isinstance(item, dict) and item.get("optional") and normalize(name) not in wanted:
                    continue
                edges.append(_poetry_edge(name, item))
        return edges

    collector = _Collector(entries_for, edges_of, lambda entry: _poetry_pin(entry, legacy_files))
    pins = collector.walk(roots)
    return Export(
        f"poetry.lock (lock-version {lock_version}, main dependencies{_selected(extras, groups)} and what they need)",
        pins,
    )


# ---- PDM ----


def _pdm_pin(entry: dict) -> Pin:
    name = normalize(entry["name"])
    hashes = tuple(dict.fromkeys(f["hash"] for f in entry.get("files", []) if f.get("hash")))
    if entry.get("git"):
        reference = entry.get("revision") or entry.get("ref") or ""
        url = f"git+{entry['git']}" + (f"@{reference}" if reference else "")
        if entry.get("subdirectory"):
            url += f"#subdirectory={entry['subdirectory']}"
        return Pin(name, entry.get("version"), url=url)
    if entry.get("url"):
        return Pin(name, entry.get("version"), hashes, url=entry["url"])
    if entry.get("path"):
        raise LockError(
            f"pdm.lock: {name} is a local path dependency ({entry['path']}): imgtool installs index, git and "
            "URL packages from a lock; publish it or vendor it into the app"
        )
    return Pin(name, entry["version"], hashes)


def _pdm_selection(lock: dict, pyproject: dict, extras: tuple[str, ...], groups: tuple[str, ...]) -> dict[str, list]:
    """The groups asked for (PDM locks optional dependencies as groups too), as requirement strings; each must be
    declared by the project and locked (`metadata.groups`)."""
    project = pyproject.get("project", {})
    optional = {normalize(k): v for k, v in project.get("optional-dependencies", {}).items()}
    dev = {normalize(k): v for k, v in pyproject.get("tool", {}).get("pdm", {}).get("dev-dependencies", {}).items()}
    declared_groups = {**dev, **{name: None for name in dependency_groups(pyproject)}}
    for kind, asked, declared in (("extra", extras, optional), ("group", groups, declared_groups)):
        problem = unknown(kind, asked, declared, "pyproject.toml")
        if problem:
            raise problem
    locked = {normalize(g) for g in lock.get("metadata", {}).get("groups", ["default"])}
    missing = [name for name in (*extras, *groups) if normalize(name) not in locked]
    if missing:
        raise LockError(
            f"pdm.lock was locked without {', '.join(map(repr, missing))}: run `pdm lock "
            + " ".join(f"-G {name}" for name in missing)
            + "` and commit it"
        )
    selected = {name: optional[normalize(name)] for name in extras}
    for name in groups:
        key = normalize(name)
        selected[name] = dev[key] if key in dev else group_requirements(pyproject, name)
    return selected


def export_pdm(lock: dict, pyproject: dict, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Export:
    metadata = lock.get("metadata", {})
    lock_version = metadata.get("lock_version", "?")
    packages = lock.get("package", [])
    selected = _pdm_selection(lock, pyproject, extras, groups)
    if packages and all("groups" in entry for entry in packages):
        wanted = {"default", *(normalize(name) for name in selected)}
        merged: dict[tuple[str, str], Pin] = {}
        for entry in packages:
            if not wanted & {normalize(g) for g in entry["groups"]}:
                continue
            pin = _pdm_pin(entry)
            recorded = merged.setdefault((pin.name, pin.version or pin.url or ""), pin)
            recorded.alternatives = (recorded.alternatives or set()) | {marker_clauses(entry.get("marker"))}
        return Export(
            f"pdm.lock (lock_version {lock_version}, default group{_selected(extras, groups)})", list(merged.values())
        )

    by_name: dict[str, list[dict]] = defaultdict(list)
    for entry in packages:
        by_name[normalize(entry["name"])].append(entry)

    def entries_for(edge: Edge) -> list[dict]:
        found = by_name.get(edge.name)
        if not found:
            raise _missing("pdm.lock", edge.name, "run `pdm lock` and commit it")
        plain = [e for e in found if not e.get("extras")]
        with_extras = [e for e in found if e.get("extras") and {normalize(x) for x in e["extras"]} <= edge.extras]
        if len(plain) > 1 and edge.constraint:
            plain = [e for e in plain if satisfies(e["version"], edge.constraint)] or plain
        return plain + with_extras

    def edges_of(entry: dict, extras: frozenset[str]) -> list[Edge]:
        edges = []
        for text in entry.get("dependencies", []):
            requirement = parse_requirement(text)
            edges.append(
                Edge(requirement.name, requirement.extras, marker_clauses(requirement.marker), requirement.spec)
            )
        return edges

    collector = _Collector(entries_for, edges_of, _pdm_pin)
    requirements = [*pyproject.get("project", {}).get("dependencies", []), *(r for rs in selected.values() for r in rs)]
    pins = collector.walk(_pep508_roots(requirements))
    return Export(
        f"pdm.lock (lock_version {lock_version}, default dependencies{_selected(extras, groups)} and what they need)",
        pins,
    )


# ---- Pipenv ----


def export_pipenv(lock: dict, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Export:
    """The "default" section, and one more per group asked for ("dev" is Pipenv's "develop" section)."""
    if extras:
        raise LockError(
            "Pipfile.lock has no extras (Pipenv installs none of the project's): drop [tool.imgtool] extras"
        )
    default = lock.get("default")
    if not isinstance(default, dict):
        raise LockError('Pipfile.lock has no "default" section: run `pipenv lock` and commit it')
    sections = [name for name, value in lock.items() if name != "_meta" and isinstance(value, dict)]
    chosen = ["default"]
    for group in groups:
        section = "develop" if normalize(group) == "dev" else group
        if section not in sections:
            raise LockError(
                f"Pipfile.lock has no section {group!r} (sections: {', '.join(sorted(sections))}): fix [tool.imgtool] "
                "groups, or run `pipenv lock` if the Pipfile has that category"
            )
        chosen.append(section)
    sources = {s.get("name"): s.get("url") for s in lock.get("_meta", {}).get("sources", []) if isinstance(s, dict)}
    pins: dict[str, Pin] = {}
    for section in chosen:
        for raw_name, entry in lock[section].items():
            name = normalize(raw_name)
            if name not in pins:  # a package in several sections: Pipenv locks one version for them all
                pin = _pipenv_pin(name, entry, sources)
                if pin is not None:
                    pins[name] = pin
    shown = " and ".join(f'"{name}"' for name in chosen)
    return Export(f"Pipfile.lock ({shown} section{'s' if len(chosen) > 1 else ''})", list(pins.values()))


def _pipenv_pin(name: str, entry: dict, sources: dict) -> Pin | None:
    if entry.get("path") is not None or entry.get("file", "").startswith("file:"):
        if entry.get("path") in (".", "./"):
            return None  # the project itself: imgtool ships its code as the app
        raise LockError(
            f"Pipfile.lock: {name} is a local path dependency ({entry.get('path') or entry.get('file')}): "
            "imgtool installs index, git and URL packages from a lock; publish it or vendor it into the app"
        )
    hashes = tuple(entry.get("hashes", ()))
    clauses = {marker_clauses(entry.get("markers"))}
    if entry.get("git"):
        reference = entry.get("ref") or ""
        url = f"git+{entry['git']}" + (f"@{reference}" if reference else "")
        return Pin(name, None, url=url, alternatives=clauses)
    if entry.get("file"):
        return Pin(name, None, hashes, url=entry["file"], alternatives=clauses)
    version = str(entry.get("version", "")).removeprefix("==")
    if not version:
        raise LockError(f"Pipfile.lock: {name} has no version: run `pipenv lock` and commit it")
    index = sources.get(entry.get("index"))
    indexes = (index,) if index and entry.get("index") not in (None, "pypi") else ()
    return Pin(name, version, hashes, alternatives=clauses, indexes=indexes)


# ---- entry points ----


def export(
    filename: str, lock_text: str, pyproject: dict, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()
) -> Export:
    """Export the lock named `filename` (poetry.lock, pdm.lock, Pipfile.lock) from its text: the main selection
    plus the project's `extras` and dependency `groups`."""
    kind = FORMATS.get(filename.rsplit("/", 1)[-1])
    if kind is None:
        raise LockError(f"{filename} is not a lock file imgtool reads ({', '.join(FORMATS)})")
    try:
        if kind == "pipenv":
            return export_pipenv(json.loads(lock_text), extras, groups)
        import tomllib

        lock = tomllib.loads(lock_text)
    except (ValueError, ImportError) as exc:
        raise LockError(f"{filename} cannot be read ({exc}): regenerate it with its tool") from None
    try:
        exporter = export_poetry if kind == "poetry" else export_pdm
        return exporter(lock, pyproject, extras, groups)
    except (KeyError, TypeError, AttributeError) as exc:
        raise LockError(f"{filename} has an unexpected shape ({type(exc).__name__}: {exc}): regenerate it") from None


def main(argv: list[str]) -> int:
    """`python lock_export.py LOCK PYPROJECT|- OUT [--exclude NAME ...] [--extra X ...] [--group G ...]` (in the
    builder): write OUT.

    `--exclude` leaves a package out ([tool.imgtool] exclude), as the other dependency sources do; `--extra` and
    `--group` add the project's extras and dependency groups ([tool.imgtool] extras, groups).
    """
    args = list(argv)
    options: dict[str, list[str]] = {"--exclude": [], "--extra": [], "--group": []}
    for flag, values in options.items():
        while flag in args:
            at = args.index(flag)
            values.append(args[at + 1])
            del args[at : at + 2]
    excluded = {normalize(name) for name in options["--exclude"]}
    lock_path, pyproject_path, out_path = args
    pyproject = {}
    if pyproject_path != "-":
        import tomllib

        with open(pyproject_path, "rb") as handle:
            pyproject = tomllib.load(handle)
    with open(lock_path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        result = export(lock_path, text, pyproject, tuple(options["--extra"]), tuple(options["--group"]))
    except LockError as exc:
        print(f"imgtool-lock-export: {exc}", file=sys.stderr, flush=True)
        return 1
    result.pins = [pin for pin in result.pins if pin.name not in excluded]
    with open(out_path, "w", encoding="utf-8") as handle:
        handle.write(result.text())
    print(f"imgtool: {len(result.pins)} pinned packages from {result.source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
