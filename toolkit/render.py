"""Render a BuildPlan to Dockerfile text through the Jinja2 templates in images/."""

from __future__ import annotations

import json
import shlex

import jinja2

from toolkit import IMAGES_DIR, __version__
from toolkit.plan import BuildPlan, ServerBasePlan

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


def render_dockerfile(plan: BuildPlan, template: str = "Dockerfile.j2") -> str:
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    return _ENV.get_template(template).render(
        version=__version__, deps=plan.deps, pythonpath=plan.pythonpath, **context
    )


def render_base_dockerfile(plan: ServerBasePlan, template: str = "base.Dockerfile.j2") -> str:
    """The Dockerfile of a per-server base (`imgtool base build`)."""
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    return _ENV.get_template(template).render(version=__version__, **context)
