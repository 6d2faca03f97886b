"""The BuildPlan: everything needed to render and build one image, decided up front, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit import __version__
from toolkit.assets import CONTEXT_NAME
from toolkit.config import Config, validate_tag
from toolkit.detect import DependencySource
from toolkit.errors import UsageError
from toolkit.servers import ServerSpec

APP_DIR = "/app"
VENV = "/opt/venv"
ASSETS_DIR = "/opt/imgtool"
# A src-layout project, installed as a wheel into its own directory: the venv below stays the
# dependency layer, and a code change rebuilds only this and the app.
PROJECT_DIR = "/opt/project"
USER_UID = 10001


@dataclass(frozen=True)
class BaseImage:
    """A base image as the build will use it."""

    name: str
    digest: str | None = None
    # Built by `imgtool base bootstrap`: Debian's python3 with no pip to strip.
    bootstrapped: bool = False
    # Built by `imgtool base build`: the venv with the server, the user and the launcher are in it already.
    server_base: bool = False

    @property
    def ref(self) -> str:
        """What FROM names: `name:tag@sha256:...` (pinned, still readable) when a digest is known.

        A per-server base is named `repository@sha256:...`, as imgtool.lock pins it: its registry's port
        plus a tag plus a digest is more than hadolint's parser takes, and the digest alone decides.
        """
        if not self.digest:
            return self.name
        if self.server_base:
            repository, _, tag = self.name.rpartition(":")
            return f"{repository if repository and '/' not in tag else self.name}@{self.digest}"
        return f"{self.name}@{self.digest}"


@dataclass(frozen=True)
class BuildPlan:
    server: ServerSpec
    config: Config
    base: BaseImage
    # The staged `imgtool-assets` build context (toolkit.assets): launcher, healthcheck, import check, uv.
    assets_context: Path
    tag: str
    requirements: tuple[str, ...]
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    app_dir: str = APP_DIR
    venv: str = VENV
    assets_dir: str = ASSETS_DIR
    project_dir: str = PROJECT_DIR
    uid: int = USER_UID
    # "distroless" or "debian" (config.RUNTIMES); a per-server base is always its own (debian) runtime.
    runtime: str = "debian"

    @property
    def deps(self) -> DependencySource:
        return self.config.deps

    @property
    def pythonpath(self) -> str:
        """Where the app is imported from: the installed project first, else the context and its src/."""
        if self.deps.install_project:
            return f"{self.project_dir}:{self.app_dir}"
        if self.config.src_layout:
            return f"{self.app_dir}:{self.app_dir}/src"
        return self.app_dir


def resolve_runtime(config: Config, base: BaseImage) -> str:
    """The runtime stage for this base: a per-server base (imgtool.lock) is the runtime itself."""
    if not base.server_base:
        return config.runtime
    if config.runtime != "debian" and config.origins.get("runtime", "default") != "default":
        raise UsageError(
            f"runtime = {config.runtime!r} cannot be used with the per-server base {base.name} from imgtool.lock "
            "(the base is the runtime, shared by every app on it): use --runtime debian, or --base IMAGE"
        )
    return "debian"


def default_tag(config: Config, server: ServerSpec, prefix: str = "") -> str:
    """`imgtool-<app>:<server>`; `prefix` (IMGTOOL_TAG_PREFIX) keeps sessions sharing one engine apart."""
    return validate_tag(f"{prefix}imgtool-{config.app_name}:{server.name}")


def resolve_tag(config: Config, server: ServerSpec, tag: str | None, several: bool, prefix: str = "") -> str:
    if tag is None:
        return default_tag(config, server, prefix)
    if several and "{server}" not in tag:
        raise UsageError(f"--tag {tag!r} would name every server's image the same: put {{server}} in it")
    return validate_tag(tag.replace("{server}", server.name))


def make_plan(
    config: Config,
    server: ServerSpec,
    base: BaseImage,
    assets_context: Path,
    tag: str | None = None,
    several: bool = False,
    tag_prefix: str = "",
) -> BuildPlan:
    labels = {
        "org.opencontainers.image.title": config.app_name,
        "org.opencontainers.image.description": f"{config.app} served by {server.summary}",
        "org.opencontainers.image.base.name": base.name,
        "imgtool.version": __version__,
        "imgtool.app": config.app,
        "imgtool.server": server.name,
        "imgtool.protocols": ",".join(sorted(server.protocols)),
        "imgtool.port": str(config.port),
        "imgtool.health-path": config.health_path,
        "imgtool.routes": config.routes,
        "imgtool.runtime": resolve_runtime(config, base),
    }
    if base.digest:
        labels["org.opencontainers.image.base.digest"] = base.digest
    env = {
        "PORT": str(config.port),
        "HEALTH_PATH": config.health_path,
        "IMGTOOL_SERVER": server.name,
        "IMGTOOL_DEFAULT_WORKERS": str(config.workers) if config.workers else server.default_workers,
        "IMGTOOL_APP": config.app,
        "IMGTOOL_PREFLIGHT": str(server.preflight_import),
        **({"IMGTOOL_ONE_WORKER": server.single_process_workers} if server.single_process_workers else {}),
        **config.env,
    }
    return BuildPlan(
        server=server,
        config=config,
        base=base,
        assets_context=assets_context,
        tag=resolve_tag(config, server, tag, several, tag_prefix),
        # The server's packages, with `[project] dependencies` when those are the source; a server
        # base has the server in its venv already, so only the app's own dependencies remain.
        requirements=(*config.dependencies, *(() if base.server_base else server.packages)),
        command=tuple(server.argv(config.app)),
        env=env,
        labels=labels,
        runtime=labels["imgtool.runtime"],
    )


# `imgtool base build`: a per-server base, <registry>/imgtool-base:<server>-py<X.Y>.
SERVER_BASE_REPOSITORY = "imgtool-base"
SERVER_BASE_LABEL = "imgtool.base"


def server_base_ref(registry: str, server: str, python: str) -> str:
    return f"{registry}/{SERVER_BASE_REPOSITORY}:{server}-py{python}"


@dataclass(frozen=True)
class ServerBasePlan:
    """A per-server base: the root Python base plus a venv with the server, the user and the launcher."""

    server: ServerSpec
    root: BaseImage
    python: str
    assets_context: Path
    tag: str
    packages: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    venv: str = VENV
    assets_dir: str = ASSETS_DIR
    uid: int = USER_UID


def make_server_base_plan(
    server: ServerSpec, root: BaseImage, python: str, assets_context: Path, registry: str
) -> ServerBasePlan:
    labels = {
        "org.opencontainers.image.title": SERVER_BASE_REPOSITORY,
        "org.opencontainers.image.description": f"Python {python} with {server.summary} in {VENV}",
        "org.opencontainers.image.source": "imgtool images/base.Dockerfile.j2",
        "org.opencontainers.image.version": f"{server.name}-py{python}-imgtool{__version__}",
        "org.opencontainers.image.base.name": root.name,
        SERVER_BASE_LABEL: "server",
        "imgtool.version": __version__,
        "imgtool.server": server.name,
        "imgtool.python": python,
        "imgtool.packages": " ".join(server.packages),
    }
    if root.digest:
        labels["org.opencontainers.image.base.digest"] = root.digest
    return ServerBasePlan(
        server=server,
        root=root,
        python=python,
        assets_context=assets_context,
        tag=validate_tag(server_base_ref(registry, server.name, python)),
        packages=server.packages,
        labels=labels,
    )


def buildx_argv(
    tag: str,
    context: Path,
    assets_context: Path,
    dockerfile: str = "-",
    ca_cert: Path | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The `docker buildx build` command that builds a rendered Dockerfile: any builder, any engine.

    imgtool's helper files arrive as the named context `imgtool-assets`, the CA bundle as a secret.
    """
    argv = ["docker", "buildx", "build", "--build-context", f"{CONTEXT_NAME}={assets_context}"]
    if ca_cert is not None:
        argv += ["--secret", f"id=ca,src={ca_cert}"]
    return [*argv, *extra, "--tag", tag, "--file", dockerfile, str(context)]
