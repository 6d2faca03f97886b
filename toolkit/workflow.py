"""GitHub Actions workflows: the images workflow `imgtool workflow` writes, and the helper files it needs.

The workflow renders each server's Dockerfile with `imgtool render` and stages what it copies from
(launcher, healthcheck, import check, uv for every platform) as a directory passed to buildx as the
named build context `imgtool-assets` (`python -m toolkit.workflow assets`). One buildx builder builds
it: each platform is loaded into the runner's engine and smoke-tested there with `imgtool test` (arm64
under QEMU), then the push rebuilds it from that builder's cache for every platform with SBOM and
provenance attestations, and a last step checks the pushed layers are the tested ones.
The runner installs imgtool by its distribution name at this version (`imgtool-asgi==X.Y.Z`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from toolkit import DISTRIBUTION, __version__, assets, validate
from toolkit.assets import docker_arch
from toolkit.errors import ImgtoolError, UsageError
from toolkit.files import write_text_atomic
from toolkit.render import get_workflow_template
from toolkit.servers import SERVERS

TEMPLATE = "workflow.yml.j2"
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


# Full commit SHAs of the release tags named in the comments: each the latest release whose action.yml
# runs on node24 (or is composite/docker), checked in the action's own repository (`git rev-parse
# TAG^{commit}`, `git show TAG:action.yml`). One list for every workflow imgtool writes and for the
# project's own .github/workflows (a test keeps them in step).
ACTIONS = {
    action.repo.split("/")[1]: action
    for action in (
        Action("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
        Action("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
        Action("actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
        Action("actions/download-artifact", "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
        # Composite: its one step is actions/attest v4.1.0 (59d89421af93a897026c735860bf21b6eb4f7b26), node24.
        Action("actions/attest-build-provenance", "a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32", "v4.1.0"),
        Action("docker/setup-qemu-action", "96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0"),
        Action("docker/setup-buildx-action", "37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
        Action("docker/login-action", "4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
        Action("docker/metadata-action", "dc802804100637a589fabce1cb79ff13a1411302", "v6.2.0"),
        Action("docker/build-push-action", "53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
        # Checked against sigstore/cosign-installer itself: `git rev-parse v4.1.2^{commit}` (installs cosign v3).
        Action("sigstore/cosign-installer", "6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"),
    )
}


def _is_python_version(version: str) -> bool:
    try:
        validate.python_version(version)
    except validate.Invalid:
        return False
    return True


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
    bad = [version for version in pythons if not _is_python_version(version)]
    if bad or not pythons:
        raise UsageError(f"python version(s) {', '.join(bad) or 'none'} not X.Y: pass e.g. --python 3.12")
    if Path(context).is_absolute() or ".." in Path(context).parts:
        raise UsageError(f"workflow context {context!r} must be a path inside the repository, e.g. '.'")
    return get_workflow_template(TEMPLATE).render(
        version=__version__,
        actions=ACTIONS,
        context=context,
        install=install or f"{DISTRIBUTION}=={__version__}",
        servers=servers,
        pythons=pythons,
        platforms=PLATFORMS,
        cron=cron,
    )


def write_workflow(output: Path, text: str, force: bool = False) -> Path:
    """Write the workflow; never replace an existing file unless `force`."""
    if output.exists() and not force:
        raise UsageError(f"{output} already exists: pass --force to overwrite it")
    if output.exists() and not output.is_file():
        raise UsageError(f"{output} is not a file: pass -o with a file path")
    return write_text_atomic(output, text, parents=True)


def stage_assets(dest: Path, platforms: tuple[str, ...] = PLATFORMS) -> Path:
    """The `imgtool-assets` build context for every platform: the helper files and `uv/<arch>/uv` each."""
    arches = tuple(dict.fromkeys(docker_arch(platform) for platform in platforms))
    if not arches:
        raise UsageError("no platform given: pass e.g. --platforms linux/amd64,linux/arm64")
    return assets.stage(dest, arches)


def argument_parser() -> argparse.ArgumentParser:
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
    args = argument_parser().parse_args(argv)
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
