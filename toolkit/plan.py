"""The BuildPlan: everything needed to render and build one image, decided up front, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit import __version__
from toolkit.config import Config, validate_tag
from toolkit.errors import UsageError
from toolkit.servers import ServerSpec

APP_DIR = "/app"
VENV = "/opt/venv"
ASSETS_DIR = "/opt/imgtool"
USER_UID = 10001


@dataclass(frozen=True)
class BaseImage:
    """A base image as the build will use it."""

    name: str
    digest: str | None = None
    # Built by `imgtool base bootstrap`: Debian's python3 with no pip to strip.
    bootstrapped: bool = False

    @property
    def ref(self) -> str:
        """What FROM names: `name:tag@sha256:...` (pinned, still readable) when a digest is known."""
        return f"{self.name}@{self.digest}" if self.digest else self.name


@dataclass(frozen=True)
class BuildPlan:
    server: ServerSpec
    config: Config
    base: BaseImage
    assets_image: str
    tag: str
    requirements: tuple[str, ...]
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    app_dir: str = APP_DIR
    venv: str = VENV
    assets_dir: str = ASSETS_DIR
    uid: int = USER_UID


def default_tag(config: Config, server: ServerSpec) -> str:
    return f"imgtool-{config.app_name}:{server.name}"


def resolve_tag(config: Config, server: ServerSpec, tag: str | None, several: bool) -> str:
    if tag is None:
        return default_tag(config, server)
    if several and "{server}" not in tag:
        raise UsageError(f"--tag {tag!r} would name every server's image the same: put {{server}} in it")
    return validate_tag(tag.replace("{server}", server.name))


def make_plan(
    config: Config,
    server: ServerSpec,
    base: BaseImage,
    assets_image: str,
    tag: str | None = None,
    several: bool = False,
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
    }
    if base.digest:
        labels["org.opencontainers.image.base.digest"] = base.digest
    env = {
        "PORT": str(config.port),
        "HEALTH_PATH": config.health_path,
        "IMGTOOL_SERVER": server.name,
        "IMGTOOL_DEFAULT_WORKERS": server.default_workers,
    }
    return BuildPlan(
        server=server,
        config=config,
        base=base,
        assets_image=assets_image,
        tag=resolve_tag(config, server, tag, several),
        requirements=(*config.dependencies, *server.packages),
        command=tuple(server.argv(config.app)),
        env=env,
        labels=labels,
    )
