"""Render a BuildPlan to Dockerfile text through the Jinja2 templates in images/."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jinja2

from toolkit import IMAGES_DIR, __version__
from toolkit.plan import BuildPlan, ServerBasePlan, buildx_argv

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(IMAGES_DIR),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def _assignments(mapping: dict[str, str], quote: bool = False) -> str:
    """KEY=VALUE pairs for ENV/LABEL, one per continued line."""
    pairs = (f"{key}={json.dumps(value) if quote else value}" for key, value in mapping.items())
    return " \\\n    ".join(pairs)


_ENV.filters["json"] = json.dumps
_ENV.filters["assignments"] = _assignments
_ENV.filters["shquote"] = shlex.quote
_ENV.filters["prefix"] = lambda value, prefix: f"{prefix}{value}"


def _command(plan: BuildPlan | ServerBasePlan, context: Path, dockerfile: str, ca_cert: Path | None) -> str:
    # [tool.imgtool] check-env: a JSON object of the values, written for the build and deleted after it.
    check_env = "check-env.json" if isinstance(plan, BuildPlan) and plan.config.check_env else None
    argv = buildx_argv(plan.tag, context, plan.assets_context, dockerfile, ca_cert, ("--load",), check_env)
    return shlex.join(argv)


def render_dockerfile(
    plan: BuildPlan, dockerfile: str = "Dockerfile", ca_cert: Path | None = None, template: str = "Dockerfile.j2"
) -> str:
    """The Dockerfile text; its header names the `docker buildx build` command that builds it from `dockerfile`."""
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    return _ENV.get_template(template).render(
        version=__version__,
        deps=plan.deps,
        pythonpath=plan.pythonpath,
        build_command=_command(plan, plan.config.context, dockerfile, ca_cert),
        **context,
    )


def render_base_dockerfile(plan: ServerBasePlan, dockerfile: str = "Dockerfile", ca_cert: Path | None = None) -> str:
    """The Dockerfile of a per-server base (`imgtool base build`); it needs no files, so any empty context."""
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    command = _command(plan, Path("EMPTY_DIR"), dockerfile, ca_cert)
    return _ENV.get_template("base.Dockerfile.j2").render(version=__version__, build_command=command, **context)
