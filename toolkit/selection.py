"""What beyond the main dependencies a build installs: `[tool.imgtool] extras`, `groups` and `requirements`.

`extras` are the project's optional dependencies (`[project.optional-dependencies]`, Poetry's extras); `groups`
its dependency groups (PEP 735 `[dependency-groups]`, uv's, Poetry's and PDM's dev groups, Pipfile sections).
Each name is checked here, at plan time, against what the project declares, so a typo is one line listing
the names it has before any build. Where a lock holds the resolution (uv.lock, poetry.lock, pdm.lock,
Pipfile.lock) the lock's own selection installs them; otherwise imgtool reads the requirement strings itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit import lockfiles
from toolkit.errors import UsageError


@dataclass(frozen=True)
class Selection:
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # [tool.imgtool] requirements: the project's requirements files, any names (their -r/-c chains come along).
    requirements: tuple[str, ...] = ()


def _check(problem: lockfiles.LockError | None) -> None:
    if problem is not None:
        raise UsageError(str(problem))


def declared_extras(pyproject: dict) -> dict[str, list[str]]:
    return {
        lockfiles.normalize(k): list(v)
        for k, v in pyproject.get("project", {}).get("optional-dependencies", {}).items()
    }


def uv_groups(pyproject: dict) -> set[str]:
    """The groups `uv sync --group` knows: PEP 735's, and uv's legacy dev-dependencies as "dev"."""
    groups = set(lockfiles.dependency_groups(pyproject))
    if pyproject.get("tool", {}).get("uv", {}).get("dev-dependencies"):
        groups.add("dev")
    return groups


def check_uv(selection: Selection, pyproject: dict, where: str) -> None:
    """Names uv.lock's sync will be asked for: the project must declare them (uv would say so only mid-build)."""
    _check(lockfiles.unknown("extra", selection.extras, declared_extras(pyproject), where))
    _check(lockfiles.unknown("group", selection.groups, uv_groups(pyproject), where))


def extra_requirements(pyproject: dict, extras: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The requirement strings of the extras asked for; `project[other]` inside one expands that extra too."""
    declared = declared_extras(pyproject)
    _check(lockfiles.unknown("extra", extras, declared, where))
    own = lockfiles.normalize(pyproject.get("project", {}).get("name", ""))
    found: list[str] = []
    pending, seen = [lockfiles.normalize(name) for name in extras], set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for text in declared.get(extra, []):
            requirement = lockfiles.parse_requirement(text)
            if own and requirement.name == own:
                pending += sorted(requirement.extras)
            elif text not in found:
                found.append(text)
    return tuple(found)


def group_requirements(pyproject: dict, groups: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The requirement strings of the PEP 735 groups asked for, include-group expanded."""
    _check(lockfiles.unknown("group", groups, lockfiles.dependency_groups(pyproject), where))
    found: list[str] = []
    for group in groups:
        try:
            texts = lockfiles.group_requirements(pyproject, group)
        except lockfiles.LockError as exc:
            raise UsageError(f"{where}: {exc}") from None
        found += [text for text in texts if text not in found]
    own = lockfiles.normalize(pyproject.get("project", {}).get("name", ""))
    expanded: list[str] = []
    for text in found:
        requirement = lockfiles.parse_requirement(text)
        if own and requirement.name == own:  # the project itself, maybe with extras: those extras' packages
            expanded += extra_requirements(pyproject, tuple(sorted(requirement.extras)), where)
        else:
            expanded.append(text)
    return tuple(dict.fromkeys(expanded))
