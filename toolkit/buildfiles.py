"""The build inputs a compose file (build mode) or a bake file names, kept beside it under `.imgtool/`.

Each server's Dockerfile (what `imgtool render` prints) goes to `.imgtool/<file stem>/<server>.Dockerfile`
and a copy of imgtool's helper files, the named context `imgtool-assets`, to `.imgtool/assets/`, so plain
`docker compose build` and `docker buildx bake` build with any builder, on any machine the tree travels
to. `write` puts them in place before the file that names them, which is written last and atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.assets import copy_beside
from toolkit.files import write_problem, write_text_atomic
from toolkit.plan import BuildPlan
from toolkit.render import render_dockerfile

BUILD_DIR = ".imgtool"


@dataclass(frozen=True)
class BuildRef:
    """Where a compose service or bake target finds its build, as written in the file."""

    context: str  # relative to the file's directory (or absolute)
    dockerfile: str  # relative to the context (or absolute), as the Compose Specification reads it
    assets: str  # the imgtool-assets context, relative to the file's directory (or absolute)


def build_dir(output: Path) -> Path:
    """Where the Dockerfiles go: `.imgtool/<file stem>/` beside the compose or bake file."""
    return output.parent / BUILD_DIR / output.stem


def assets_dir(output: Path) -> Path:
    """Where compose and bake files keep their copy of the imgtool-assets context."""
    return output.parent / BUILD_DIR / "assets"


def dockerfile_path(output: Path, server: str) -> Path:
    return build_dir(output) / f"{server}.Dockerfile"


def build_refs(plans: Sequence[BuildPlan], output: Path) -> dict[str, BuildRef]:
    """Context and Dockerfile paths per server, as the file at `output` names them.

    Relative when they lie inside the file's directory (the tree can move as a whole; compose reads
    `context` from the file's directory and `dockerfile` from the context), absolute otherwise, so a
    file in /tmp never says ../../work/... .
    """
    home = Path(os.path.abspath(output.parent))
    assets = os.path.relpath(os.path.abspath(assets_dir(output)), home)
    refs = {}
    for plan in plans:
        context = Path(os.path.abspath(plan.config.context))
        dockerfile = Path(os.path.abspath(dockerfile_path(output, plan.server.name)))
        inside = context.is_relative_to(home)
        refs[plan.server.name] = BuildRef(
            context=(os.path.relpath(context, home) if inside else str(context)),
            dockerfile=(os.path.relpath(dockerfile, context) if inside else str(dockerfile)),
            assets=assets,
        )
    return refs


def dockerfiles(plans: Sequence[BuildPlan], output: Path, ca_cert: Path | None) -> dict[Path, str]:
    """Each server's Dockerfile at its path beside `output`; its header names the buildx command for it."""
    paths = {plan.server.name: dockerfile_path(output, plan.server.name) for plan in plans}
    return {paths[plan.server.name]: render_dockerfile(plan, str(paths[plan.server.name]), ca_cert) for plan in plans}


def write(
    output: Path,
    text: str,
    files: Mapping[Path, str],
    assets: Path | None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write `output` with the Dockerfiles `files` and a copy of the `assets` context beside it.

    `check` runs first, on the complete temporary file of `output`; then the Dockerfiles and the copy are
    put in place, and `output` last: it never names build inputs that are not there. On any failure
    `output` stays as it was (a Dockerfile already written may remain; the next run rewrites it).
    """

    def check_then_write_beside(temporary: Path) -> None:
        if check is not None:
            check(temporary)
        for path, content in files.items():
            write_text_atomic(path, content, parents=True)
        if assets is not None:
            try:
                copy_beside(assets, assets_dir(output))
            except OSError as exc:
                raise write_problem(Path(exc.filename or assets_dir(output)), exc) from None

    return write_text_atomic(output, text, before_replace=check_then_write_beside)
