"""Look at a project and decide, as data: where its dependencies come from and whether it is a member of a
uv workspace (the Python it asks for: toolkit/pythons.py).

Each dependency detector is a small function `(context, pyproject, selection) -> DependencySource | None`,
tried in order; the first answer wins (`[tool.imgtool] requirements` before all of them: the project's word).
Then the extras and groups asked for (toolkit/selection.py) are added the way that source installs them. The
template (images/Dockerfile.j2) turns the chosen `DependencySource` into build steps by its `kind`: nothing
here writes Dockerfile text.
Everything here reads files (TOML, JSON, `ast`): nothing is imported or executed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from toolkit import lockfiles, reqfiles
from toolkit.asgiapp import find_apps
from toolkit.errors import UsageError
from toolkit.selection import Selection, check_uv, extra_requirements, group_requirements


class DependencyKind(StrEnum):
    """Where a project's dependencies come from (the Dockerfile template installs each its own way)."""

    UV_LOCK = "uv.lock"
    REQUIREMENTS = "requirements"
    PYPROJECT = "pyproject"
    # poetry.lock, pdm.lock or Pipfile.lock: exported in the builder to a pinned, hashed requirements file.
    LOCKFILE = "lockfile"
    NONE = "none"


# Foreign lock files in order of preference, and the project file each is read with.
_LOCKS = {"poetry.lock": "pyproject.toml", "pdm.lock": "pyproject.toml", "Pipfile.lock": "Pipfile"}
# What makes a directory a Python project (besides a module with an ASGI app in it).
PROJECT_MARKERS = ("pyproject.toml", "requirements.txt", "Pipfile", "manage.py", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class DependencySource:
    """How the builder installs the project's dependencies, below the app code."""

    kind: DependencyKind
    # Context-relative files the install reads; copied into the builder before the install step.
    files: tuple[str, ...] = ()
    # The requirements file to install (kind "requirements"), one of `files`; more from [tool.imgtool] requirements.
    requirements: str | None = None
    more_requirements: tuple[str, ...] = ()
    # Inline requirement specifiers (kind "pyproject": `[project] dependencies` and the extras asked for).
    packages: tuple[str, ...] = ()
    # The dependency groups asked for, inline (PEP 735 groups of a project without a lock).
    group_packages: tuple[str, ...] = ()
    # Extras and groups the install step names: `uv sync --extra/--group` (uv.lock), the lock exporter
    # (poetry.lock, ...), `uv pip install -r pyproject.toml --extra` (metadata a build backend computes).
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # Context-relative project directories installed as wheels without their dependencies, after them:
    # "." for a src layout with a build backend; workspace members the app depends on.
    install_paths: tuple[str, ...] = ()
    # kind "lockfile": the lock and the project file it is read with (both in `files`).
    lock: str | None = None
    lock_project: str | None = None
    # kind "lockfile": (name, version) the lock pins, whether every pin has hashes, and what it is.
    pinned: tuple[tuple[str, str], ...] = ()
    hashed: bool = False
    detail: str = ""
    # kind "uv.lock" in a workspace: the member to sync (`uv sync --package`).
    package: str | None = None
    # `requirements` is metadata a setup.py (or a dynamic [project]) computes from the whole project: the
    # install mounts the context (writable, discarded) instead of copying `files`.
    context_mount: bool = False

    @property
    def install_project(self) -> bool:
        return bool(self.install_paths)

    @property
    def requirement_files(self) -> tuple[str, ...]:
        """Every file given to `uv pip install --requirement`, the main one first."""
        return (self.requirements, *self.more_requirements) if self.requirements else ()

    def _requirements_summary(self) -> str:
        included = [name for name in self.files if name not in self.requirement_files]
        chain = f"; it includes {', '.join(included)}" if included else ""
        return f"{' + '.join(self.requirement_files)} (uv pip install -r{chain})"

    @property
    def summary(self) -> str:
        what = {
            DependencyKind.UV_LOCK: "uv.lock (uv sync --frozen --no-default-groups "
            + (f"--package {self.package} --no-install-workspace)" if self.package else "--no-install-project)"),
            DependencyKind.REQUIREMENTS: self.detail or self._requirements_summary(),
            DependencyKind.PYPROJECT: f"pyproject.toml [project] dependencies ({len(self.packages)})",
            DependencyKind.LOCKFILE: f"{self.detail}, "
            + ("hashes required" if self.hashed else "hashes checked where the lock has them"),
            DependencyKind.NONE: "none found (only the server is installed)",
        }[self.kind]
        if self.extras or self.groups:
            what += "; with " + " and ".join(
                f"{kind} {', '.join(names)}"
                for kind, names in (("extras", self.extras), ("groups", self.groups))
                if names
            )
        if self.group_packages:
            what += f"; dependency groups ({len(self.group_packages)} packages)"
        if self.install_paths == (".",):
            what += "; the project is installed as a wheel (src layout)"
        elif self.install_paths:
            what += f"; workspace members installed as wheels: {', '.join(self.install_paths)}"
        return what


@dataclass(frozen=True)
class Workspace:
    """The project is a member of a uv workspace: the build context is the workspace root."""

    root: Path
    member: str  # the project's directory inside the root, POSIX ("backend", "packages/api")
    package: str  # the member's [project] name
    members: tuple[str, ...]  # every member's directory (their pyproject.toml files go into the build)


def read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}): fix the file") from None


def is_project(directory: Path) -> bool:
    """A Python project: a project file, requirements, manage.py, or a module with an ASGI app."""
    if any((directory / name).is_file() for name in PROJECT_MARKERS):
        return True
    if any(directory.glob("requirements*.txt")) or any(directory.glob("requirements*.in")):
        return True
    if (directory / "requirements").is_dir():
        return True
    return bool(find_apps(directory))


# ---- dependency sources ----


def _has_src_package(context: Path, pyproject: dict) -> bool:
    src = context / "src"
    return "build-system" in pyproject and src.is_dir() and any(src.glob("*/__init__.py"))


def _uv_lock(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    if not (context / "uv.lock").is_file():
        return None
    if not pyproject:
        raise UsageError(f"{context / 'uv.lock'} has no pyproject.toml beside it: add the project's pyproject.toml")
    return DependencySource(DependencyKind.UV_LOCK, files=("pyproject.toml", "uv.lock"))


def _named_requirements(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    """[tool.imgtool] requirements: the files the project names, whatever their names, before any detection."""
    if not selection.requirements:
        return None
    files = reqfiles.named(context, selection.requirements)
    named = tuple(dict.fromkeys(reqfiles.chain(context, name)[0] for name in selection.requirements))
    return DependencySource(
        DependencyKind.REQUIREMENTS, files=files, requirements=named[0], more_requirements=named[1:]
    )


def _requirements(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    main = next((name for name in reqfiles.MAIN_REQUIREMENTS if (context / name).is_file()), None)
    if main is None:
        return None
    # The files its -r/-c lines name come along (and only they: the install layer changes when one of them does).
    return DependencySource(DependencyKind.REQUIREMENTS, files=reqfiles.chain(context, main), requirements=main)


def _uncompiled_requirements(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    """A pip-tools `requirements.in` with no compiled `requirements.txt`: installing it unpinned would be a guess."""
    problem = reqfiles.uncompiled(context)
    if problem:
        raise UsageError(problem)
    return None


def _foreign_lock(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    """poetry.lock, pdm.lock, Pipfile.lock: read here once (a broken lock fails before any build)."""
    for lock, project_file in _LOCKS.items():
        path = context / lock
        if not path.is_file():
            continue
        if not (context / project_file).is_file():
            raise UsageError(f"{path} has no {project_file} beside it: add the project's {project_file}")
        try:
            exported = lockfiles.export(lock, path.read_text(), pyproject, selection.extras, selection.groups)
        except lockfiles.LockError as exc:
            raise UsageError(str(exc)) from None
        return DependencySource(
            DependencyKind.LOCKFILE,
            files=(lock, project_file),
            lock=lock,
            lock_project=project_file if project_file == "pyproject.toml" else None,
            pinned=tuple(sorted((pin.name, pin.version or "") for pin in exported.pins)),
            hashed=exported.hashed,
            detail=f"{exported.source}: {len(exported.pins)} pinned",
            extras=selection.extras,
            groups=selection.groups,
        )
    return None


def _pyproject(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    packages = tuple(pyproject.get("project", {}).get("dependencies", ()))
    if not packages:
        return None
    return DependencySource(DependencyKind.PYPROJECT, packages=packages)


def _poetry_dependencies(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    """Poetry without a poetry.lock: `[tool.poetry.dependencies]` in Poetry's own syntax (^, ~, tables).

    Its build backend turns them into the project's metadata, which uv reads from the pyproject.toml
    alone (`uv pip install -r pyproject.toml`): Poetry's rules are never re-implemented here.
    """
    poetry = pyproject.get("tool", {}).get("poetry", {})
    declared = [name for name in poetry.get("dependencies", {}) if name != "python"]
    if not declared:
        return None
    if "build-system" not in pyproject:
        raise UsageError(
            f"{context / 'pyproject.toml'} declares [tool.poetry.dependencies] but has no poetry.lock and no "
            '[build-system]: run `poetry lock`, or add [build-system] with requires = ["poetry-core"]'
        )
    poetry_groups = [
        g
        for g in selection.groups
        if lockfiles.normalize(g) in {lockfiles.normalize(n) for n in poetry.get("group", {})}
    ]
    if poetry_groups:
        raise UsageError(
            f"Poetry's group {poetry_groups[0]!r} is not part of the project's metadata, so only poetry.lock can say "
            "what it installs: run `poetry lock` and commit poetry.lock"
        )
    extras = {*poetry.get("extras", {}), *pyproject.get("project", {}).get("optional-dependencies", {})}
    problem = lockfiles.unknown("extra", selection.extras, extras, "pyproject.toml")
    if problem:
        raise UsageError(str(problem))
    return DependencySource(
        DependencyKind.REQUIREMENTS,
        files=("pyproject.toml",),
        requirements="pyproject.toml",
        detail=f"pyproject.toml [tool.poetry.dependencies] ({len(declared)}), read by uv through the project's "
        "build backend; no poetry.lock, so not pinned",
        extras=selection.extras,
    )


def _setuptools_metadata(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    """Dependencies only the project's build backend can compute: setup.py / setup.cfg `install_requires`, or
    `dynamic = ["dependencies"]`. uv asks the backend (`uv pip install -r setup.py`), which may read any file of
    the project, so the install sees the whole context and a code change runs it again (uv's cache keeps that
    to seconds). Extras go to uv as `--extra` (it stops the build on one the metadata lacks)."""
    if "dependencies" in pyproject.get("project", {}).get("dynamic", ()) and "build-system" in pyproject:
        source = "pyproject.toml"
    else:
        declaring = [
            name
            for name in ("setup.py", "setup.cfg")
            if (context / name).is_file() and "install_requires" in (context / name).read_text(errors="replace")
        ]
        if not declaring:
            return None
        source = declaring[0]
    return DependencySource(
        DependencyKind.REQUIREMENTS,
        requirements=source,
        context_mount=True,
        detail=f"{source} metadata (uv pip install -r {source}, through the project's build backend; it reads "
        "the whole project, so a code change re-runs the install)",
        extras=selection.extras,
    )


def _unlocked_pipfile(context: Path, pyproject: dict, selection: Selection) -> DependencySource | None:
    if (context / "Pipfile").is_file():
        raise UsageError(f"{context / 'Pipfile'} has no Pipfile.lock beside it: run `pipenv lock`, then build again")
    return None


DETECTORS: tuple[Callable[[Path, dict, Selection], DependencySource | None], ...] = (
    _named_requirements,
    _uv_lock,
    _requirements,
    _uncompiled_requirements,
    _foreign_lock,
    _pyproject,
    _poetry_dependencies,
    _unlocked_pipfile,
    _setuptools_metadata,
)


def _with_selection(source: DependencySource, pyproject: dict, selection: Selection) -> DependencySource:
    """The extras and groups asked for, added the way `source` installs them (a lock's own selection, uv's flags,
    or requirement strings read here); a name the project lacks is one line listing those it has."""
    extras, groups = selection.extras, selection.groups
    if not (extras or groups) or source.kind == DependencyKind.LOCKFILE:
        return source  # a foreign lock selected them while it was read
    where = "pyproject.toml"
    if source.kind == DependencyKind.NONE:
        raise UsageError(
            "[tool.imgtool] extras/groups name parts of the project's dependencies, and imgtool found no dependency "
            "source (uv.lock, requirements.txt, a lock, [project] dependencies): add one, or drop extras/groups"
        )
    if source.kind == DependencyKind.UV_LOCK:
        check_uv(selection, pyproject, where)
        return replace(source, extras=extras, groups=groups)
    if source.kind == DependencyKind.PYPROJECT:
        more = extra_requirements(pyproject, extras, where)
        return replace(
            source, packages=(*source.packages, *more), group_packages=group_requirements(pyproject, groups, where)
        )
    if extras and not source.extras:
        raise UsageError(
            f"[tool.imgtool] extras name a project's optional dependencies, and {', '.join(source.requirement_files)} "
            "are requirements files, which have none: put those packages in a requirements file, or drop extras"
        )
    return replace(source, group_packages=group_requirements(pyproject, groups, where))


def dependency_source(
    context: Path, pyproject: dict, workspace: Workspace | None = None, selection: Selection | None = None
) -> DependencySource:
    """The first detector that recognises the project decides; the extras and groups asked for are added; a
    src-layout package goes on top.

    In a uv workspace the root's uv.lock decides, synced for the member alone.
    """
    selection = selection if selection is not None else Selection()
    if workspace is not None:
        if selection.requirements:
            raise UsageError(
                f"[tool.imgtool] requirements: {workspace.member} is a member of the uv workspace {workspace.root}, "
                "whose uv.lock decides its dependencies: drop requirements, or build outside the workspace"
            )
        source = _workspace_source(workspace, pyproject)
        if selection.extras or selection.groups:
            check_uv(selection, pyproject, f"{workspace.member}/pyproject.toml")
            source = replace(source, extras=selection.extras, groups=selection.groups)
        return source
    found = next((source for d in DETECTORS if (source := d(context, pyproject, selection)) is not None), None)
    source = _with_selection(found or DependencySource(DependencyKind.NONE), pyproject, selection)
    if _has_src_package(context, pyproject):
        return replace(source, install_paths=(".",))
    return source


# ---- uv workspaces ----


def _workspace_members(root: Path, table: dict) -> list[str]:
    excluded = {p for pattern in table.get("exclude", []) for p in root.glob(pattern)}
    members = []
    for pattern in table.get("members", []):
        for path in sorted(root.glob(pattern)):
            if path.is_dir() and (path / "pyproject.toml").is_file() and path not in excluded:
                members.append(path.relative_to(root).as_posix())
    return list(dict.fromkeys(members))


def find_workspace(project: Path) -> Workspace | None:
    """The uv workspace `project` is a member of (a parent with [tool.uv.workspace] and uv.lock), or None."""
    project = project.resolve()
    for parent in project.parents:
        table = read_toml(parent / "pyproject.toml").get("tool", {}).get("uv", {}).get("workspace")
        if table is not None:
            members = _workspace_members(parent, table)
            member = project.relative_to(parent).as_posix()
            if member not in members:
                return None
            if not (parent / "uv.lock").is_file():
                raise UsageError(
                    f"{project} is a member of the uv workspace {parent}, which has no uv.lock: run `uv lock` there"
                )
            name = read_toml(project / "pyproject.toml").get("project", {}).get("name")
            if not name:
                raise UsageError(f"{project / 'pyproject.toml'} has no [project] name: uv cannot sync the member")
            return Workspace(parent, member, lockfiles.normalize(name), tuple(members))
        if (parent / ".git").exists():
            return None
    return None


def _local_members(workspace: Workspace) -> tuple[str, ...]:
    """Workspace members the package depends on (transitively), from uv.lock's editable/virtual sources."""
    lock = read_toml(workspace.root / "uv.lock")
    local = {}
    dependencies = {}
    for entry in lock.get("package", []):
        name = lockfiles.normalize(entry.get("name", ""))
        source = entry.get("source", {})
        path = source.get("editable") or source.get("virtual") or source.get("directory")
        if path is not None:
            local[name] = Path(path).as_posix()
        dependencies[name] = [lockfiles.normalize(d["name"]) for d in entry.get("dependencies", [])]
    found, stack = [], list(dependencies.get(workspace.package, []))
    while stack:
        name = stack.pop()
        if name in local and local[name] not in found and name != workspace.package:
            found.append(local[name])
            stack += dependencies.get(name, [])
    return tuple(sorted(found))


def _workspace_source(workspace: Workspace, member_pyproject: dict) -> DependencySource:
    files = ("pyproject.toml", "uv.lock", *(f"{member}/pyproject.toml" for member in workspace.members))
    paths = list(_local_members(workspace))
    if _has_src_package(workspace.root / workspace.member, member_pyproject):
        paths.append(workspace.member)
    return DependencySource(DependencyKind.UV_LOCK, files=files, package=workspace.package, install_paths=tuple(paths))
