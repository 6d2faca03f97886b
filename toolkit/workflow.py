"""GitHub Actions workflows: the images workflow `imgtool workflow` writes, and the helper files it needs.

The workflow renders each server's Dockerfile, stages imgtool's helper files for every platform
(`python -m toolkit.workflow assets DIR`: the launcher, healthcheck, import check and uv per
architecture) and hands them to buildx as the named context `imgtool-assets`, exactly as a local
`imgtool build` does.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import jinja2

from toolkit import IMAGES_DIR, __version__, assets
from toolkit.assets import docker_arch
from toolkit.config import _PYTHON_RE
from toolkit.errors import ImgtoolError, UsageError
from toolkit.servers import SERVERS

TEMPLATE = "workflow.yml.j2"
DEFAULT_OUTPUT = Path(".github/workflows/images.yml")
PYTHONS = ("3.11", "3.12")
PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class Action:
    repo: str
    sha: str
    version: str

    @property
    def uses(self) -> str:
        return f"{self.repo}@{self.sha} # {self.version}"


# Full commit SHAs of the release tags named in the comments. One list for every workflow
# imgtool writes and for the project's own .github/workflows (a test keeps them in step).
ACTIONS = {
    action.repo.split("/")[1]: action
    for action in (
        Action("actions/checkout", "11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
        Action("actions/setup-python", "a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
        Action("docker/setup-qemu-action", "29109295f81e9208d7d86ff1c6c12d2833863392", "v3.6.0"),
        Action("docker/setup-buildx-action", "e468171a9de216ec08956ac3ada2f0791b6bd435", "v3.11.1"),
        Action("docker/login-action", "184bdaa0721073962dff0199f1fb9940f07167d1", "v3.5.0"),
        Action("docker/metadata-action", "c1e51972afc2121e065aed6d45c65596fe445f3f", "v5.8.0"),
        Action("docker/build-push-action", "263435318d21b8e681c14492fe198d362a7d2c83", "v6.18.0"),
        # Checked against sigstore/cosign-installer itself: `git rev-parse v4.1.2^{commit}` (installs cosign v3).
        Action("sigstore/cosign-installer", "6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"),
    )
}

# GitHub's `${{ }}` expressions stay literal: this template speaks [[ ]] and [% %].
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(IMAGES_DIR),
    undefined=jinja2.StrictUndefined,
    variable_start_string="[[",
    variable_end_string="]]",
    block_start_string="[%",
    block_end_string="%]",
    comment_start_string="[#",
    comment_end_string="#]",
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def render_workflow(
    context: str = ".",
    install: str | None = None,
    servers: tuple[str, ...] | None = None,
    pythons: tuple[str, ...] = PYTHONS,
    cron: str = "23 4 * * 1",
) -> str:
    """The images workflow for an app whose build context is `context` (relative to the repo root)."""
    servers = servers or tuple(SERVERS)
    unknown = [name for name in servers if name not in SERVERS]
    if unknown:
        raise UsageError(f"unknown server(s) {', '.join(unknown)}: choose from {', '.join(SERVERS)}")
    bad = [version for version in pythons if not _PYTHON_RE.match(version)]
    if bad or not pythons:
        raise UsageError(f"python version(s) {', '.join(bad) or 'none'} not X.Y: pass e.g. --python 3.12")
    if Path(context).is_absolute() or ".." in Path(context).parts:
        raise UsageError(f"workflow context {context!r} must be a path inside the repository, e.g. '.'")
    return _ENV.get_template(TEMPLATE).render(
        version=__version__,
        actions=ACTIONS,
        context=context,
        install=install or f"imgtool=={__version__}",
        servers=servers,
        pythons=pythons,
        platforms=",".join(PLATFORMS),
        cron=cron,
    )


def write_workflow(output: Path, text: str, force: bool = False) -> Path:
    """Write the workflow; never replace an existing file unless `force`."""
    if output.exists() and not force:
        raise UsageError(f"{output} already exists: pass --force to overwrite it")
    if output.exists() and not output.is_file():
        raise UsageError(f"{output} is not a file: pass -o with a file path")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return output


def stage_assets(dest: Path, platforms: tuple[str, ...] = PLATFORMS) -> Path:
    """The `imgtool-assets` build context for every platform: the helper files and `uv/<arch>/uv` each."""
    arches = tuple(dict.fromkeys(docker_arch(platform) for platform in platforms))
    if not arches:
        raise UsageError("no platform given: pass e.g. --platforms linux/amd64,linux/arm64")
    return assets.stage(dest, arches)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m toolkit.workflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser(
        "assets", help=f"stage the {assets.CONTEXT_NAME} build context (helper files, uv per platform) in DEST"
    )
    staging.add_argument("dest", type=Path, help="directory to (re)create")
    staging.add_argument("--dockerfile", type=Path, help="a rendered Dockerfile, checked to read this context")
    staging.add_argument("--platforms", default=",".join(PLATFORMS), help="comma-separated, e.g. linux/amd64")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.dockerfile is not None:
            if not args.dockerfile.is_file():
                raise UsageError(f"--dockerfile {args.dockerfile} is not a file: run imgtool render -o FILE first")
            if f"from={assets.CONTEXT_NAME}" not in args.dockerfile.read_text():
                raise UsageError(
                    f"{args.dockerfile} does not read the {assets.CONTEXT_NAME} context: render it with imgtool render"
                )
        stage_assets(args.dest, tuple(p.strip() for p in args.platforms.split(",") if p.strip()))
    except ImgtoolError as exc:
        sys.stderr.write(f"imgtool: error: {exc}\n")
        return exc.exit_code
    sys.stdout.write(f"context={args.dest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
