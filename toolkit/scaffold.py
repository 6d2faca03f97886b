"""Files imgtool writes into a user's project: `init` ([tool.imgtool], .dockerignore) and `bake` (docker-bake.hcl).

The texts come from templates in images/; this module decides what changes and never replaces a
user's file without `force`. `plan_init` is pure (paths and texts in, changes out); `apply` writes.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit import IMAGES_DIR, __version__
from toolkit.assets import CONTEXT_NAME
from toolkit.errors import UsageError
from toolkit.plan import BuildPlan
from toolkit.render import _ENV

# A table header line: `[tool.imgtool]`, `[tool.imgtool.env]`, `[other]`, `[[array]]`.
_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class FileChange:
    path: Path
    action: str  # "create" | "append" | "replace" | "unchanged" | "kept"
    text: str  # the file's full new text (for "kept"/"unchanged": what it would be)

    @property
    def writes(self) -> bool:
        return self.action in ("create", "append", "replace")


def tool_table(app: str, servers: Sequence[str], health_path: str, port: int) -> str:
    return _ENV.get_template("init/imgtool.toml.j2").render(
        app=app, servers=servers, health_path=health_path, port=port
    )


def _imgtool_block(text: str) -> tuple[int, int] | None:
    """Line span [start, end) of `[tool.imgtool]` and its sub-tables, or None."""
    lines = text.splitlines(keepends=True)
    start = end = None
    for index, line in enumerate(lines):
        match = _HEADER_RE.match(line)
        if not match:
            continue
        name = match.group(1).replace(" ", "").replace('"', "")
        inside = name == "tool.imgtool" or name.startswith("tool.imgtool.")
        if inside and start is None:
            start = index
        elif start is not None and not inside:
            end = index
            break
    if start is None:
        return None
    return start, len(lines) if end is None else end


def _with_table(existing: str, table: str, force: bool) -> tuple[str, str]:
    """(action, new text) for pyproject.toml: append the table, or replace ours with --force."""
    try:
        parsed = tomllib.loads(existing)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pyproject.toml is not valid TOML ({exc}): fix it, then run imgtool init again") from None
    if "imgtool" not in parsed.get("tool", {}):
        return "append", (existing.rstrip("\n") + "\n\n" if existing.strip() else "") + table
    span = _imgtool_block(existing)
    if span is None:
        raise UsageError(
            "pyproject.toml sets tool.imgtool with dotted keys: edit it by hand, or use a [tool.imgtool] table"
        )
    lines = existing.splitlines(keepends=True)
    current = "".join(lines[span[0] : span[1]])
    if current.rstrip() == table.rstrip():
        return "unchanged", existing
    if not force:
        return "kept", existing
    trailing = "\n" if span[1] < len(lines) else ""
    return "replace", "".join(lines[: span[0]]) + table + trailing + "".join(lines[span[1] :])


def plan_init(context: Path, table: str, force: bool = False) -> list[FileChange]:
    """What `imgtool init` would do to the context's pyproject.toml and .dockerignore."""
    pyproject = context / "pyproject.toml"
    existing = pyproject.read_text() if pyproject.is_file() else ""
    action, text = _with_table(existing, table, force)
    if not pyproject.is_file():
        action = "create"
    tomllib.loads(text)  # what we write must stay valid TOML
    changes = [FileChange(pyproject, action, text)]

    ignore = context / ".dockerignore"
    wanted = (IMAGES_DIR / "init" / "dockerignore").read_text()
    if not ignore.exists():
        changes.append(FileChange(ignore, "create", wanted))
    elif ignore.read_text() == wanted:
        changes.append(FileChange(ignore, "unchanged", wanted))
    else:
        changes.append(FileChange(ignore, "replace" if force else "kept", wanted))
    return changes


def apply(changes: Sequence[FileChange]) -> None:
    for change in changes:
        if change.writes:
            temporary = change.path.with_name(f".{change.path.name}.imgtool-tmp")
            temporary.write_text(change.text)
            os.replace(temporary, change.path)


# ---- docker-bake.hcl ----


@dataclass(frozen=True)
class BakeTarget:
    name: str
    context: str
    dockerfile: str
    assets: str
    tag: str


def bake_command(output: Path, targets: Sequence[BakeTarget], ca_cert: Path | None) -> str:
    """`docker buildx bake` for the file, run from its directory. Since buildx 0.20 bake asks for an
    entitlement to read anything outside that directory: absolute contexts and the CA bundle."""
    outside = sorted({target.context for target in targets if Path(target.context).is_absolute()})
    if ca_cert is not None:
        outside.append(str(ca_cert))
    allows = [f"--allow=fs.read={path}" for path in outside]
    return shlex.join(["docker", "buildx", "bake", *allows, "-f", output.name])


def bake_file(plans: Sequence[BuildPlan], output: Path, ca_cert: Path | None) -> tuple[str, dict[Path, str]]:
    """The bake file's text and the Dockerfiles it names (written beside it under .imgtool/)."""
    from toolkit.compose import build_dir, build_refs
    from toolkit.render import render_dockerfile

    refs = build_refs(plans, output)
    targets = [
        BakeTarget(
            plan.server.name,
            refs[plan.server.name].context,
            refs[plan.server.name].dockerfile,
            refs[plan.server.name].assets,
            plan.tag,
        )
        for plan in plans
    ]
    dockerfiles = {
        path: render_dockerfile(plan, str(path), ca_cert)
        for plan in plans
        for path in [build_dir(output) / f"{plan.server.name}.Dockerfile"]
    }
    text = _ENV.get_template("docker-bake.hcl.j2").render(
        version=__version__,
        command=bake_command(output, targets, ca_cert),
        assets_name=CONTEXT_NAME,
        targets=[target.name for target in targets],
        targets_detail=targets,
        ca=ca_cert,
    )
    return text, dockerfiles
