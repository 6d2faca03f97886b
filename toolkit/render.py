"""The Jinja2 templates in images/: one environment (StrictUndefined), and a BuildPlan rendered to a Dockerfile.

Other generated files (`imgtool init`'s table, the bake file, the GitHub workflow) take their templates
from here too, through `get_template` and `get_workflow_template`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

import jinja2

from toolkit import IMAGES_DIR, __version__
from toolkit.detect import DependencyKind
from toolkit.indexes import BuildSecret, build_secrets
from toolkit.plan import BuildPlan, ServerBasePlan, buildx_argv
from toolkit.tooltable import Runtime


def _environment(**syntax: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(IMAGES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        **syntax,
    )


_ENV = _environment()
# The closed choices the templates compare against, by name rather than by literal.
_ENV.globals.update(DependencyKind=DependencyKind, Runtime=Runtime)
# GitHub's `${{ }}` expressions stay literal: workflow templates speak [[ ]] and [% %].
_WORKFLOW_ENV = _environment(
    variable_start_string="[[",
    variable_end_string="]]",
    block_start_string="[%",
    block_end_string="%]",
    comment_start_string="[#",
    comment_end_string="#]",
)


def _assignments(mapping: dict[str, str], quote: bool = False) -> str:
    """KEY=VALUE pairs for ENV/LABEL, one per continued line."""
    pairs = (f"{key}={json.dumps(value) if quote else value}" for key, value in mapping.items())
    return " \\\n    ".join(pairs)


_ENV.filters["json"] = json.dumps
_ENV.filters["assignments"] = _assignments
_ENV.filters["shquote"] = shlex.quote
_ENV.filters["prefix"] = lambda value, prefix: f"{prefix}{value}"


def get_template(name: str) -> jinja2.Template:
    """A template under images/, e.g. `docker-bake.hcl.j2`; an undefined variable is an error."""
    return _ENV.get_template(name)


def get_workflow_template(name: str) -> jinja2.Template:
    """A GitHub workflow template under images/: [[ ]] and [% %] instead of {{ }} and {% %}."""
    return _WORKFLOW_ENV.get_template(name)


def _command(
    plan: BuildPlan | ServerBasePlan,
    context: Path,
    dockerfile: str,
    ca_cert: Path | None,
    secrets: Sequence[BuildSecret] = (),
) -> str:
    # [tool.imgtool] check-env: a JSON object of the values, written for the build and deleted after it.
    check_env = "check-env.json" if isinstance(plan, BuildPlan) and plan.config.check_env else None
    argv = buildx_argv(
        plan.tag, context, plan.assets_context, dockerfile, ca_cert, ("--load",), secrets=secrets, check_env=check_env
    )
    return shlex.join(argv)


def render_dockerfile(
    plan: BuildPlan,
    dockerfile: str = "Dockerfile",
    ca_cert: Path | None = None,
    template: str = "Dockerfile.j2",
    secrets: Sequence[BuildSecret] | None = None,
) -> str:
    """The Dockerfile text; its header names the `docker buildx build` command that builds it from `dockerfile`.

    `secrets`: the package-index secrets the build passes (default: the project's index credentials
    from the environment, without a netrc file).
    """
    if secrets is None:
        secrets = build_secrets(plan.config.indexes, None)
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    return _ENV.get_template(template).render(
        version=__version__,
        deps=plan.deps,
        pythonpath=plan.pythonpath,
        build_command=_command(plan, plan.config.context, dockerfile, ca_cert, secrets),
        **context,
    )


def render_base_dockerfile(plan: ServerBasePlan, dockerfile: str = "Dockerfile", ca_cert: Path | None = None) -> str:
    """The Dockerfile of a per-server base (`imgtool base build`); it needs no files, so any empty context."""
    context = {field: getattr(plan, field) for field in plan.__dataclass_fields__}
    command = _command(plan, Path("EMPTY_DIR"), dockerfile, ca_cert)
    return get_template("base.Dockerfile.j2").render(version=__version__, build_command=command, **context)
