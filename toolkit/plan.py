"""The BuildPlan: everything needed to render and build one image, decided up front, no I/O."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import __version__, lockfiles, validate
from toolkit.assets import CONTEXT_NAME
from toolkit.config import Config
from toolkit.containers import (
    APP_LABEL,
    HEALTH_PATH_LABEL,
    INTERFACE_LABEL,
    PACKAGES_LABEL,
    PORT_LABEL,
    PROTOCOLS_LABEL,
    PYTHON_LABEL,
    ROUTES_LABEL,
    SERVER_BASE_LABEL,
    SERVER_LABEL,
    VERSION_LABEL,
    WS_PATH_LABEL,
)
from toolkit.detect import DependencyKind, DependencySource
from toolkit.errors import UsageError
from toolkit.indexes import BuildSecret
from toolkit.refs import repository_of
from toolkit.servers import ServerSpec
from toolkit.tooltable import Runtime

APP_DIR = "/app"
VENV = "/opt/venv"
ASSETS_DIR = "/opt/imgtool"
# A src-layout project, installed as a wheel into its own directory: the venv below stays the
# dependency layer, and a code change rebuilds only this and the app.
PROJECT_DIR = "/opt/project"
USER_UID = 10001
CHECK_ENV_SECRET = "check-env"
# The image's CycloneDX SBOM (its Python and Debian packages), made in a builder stage: images/fragments/sbom.j2.
SBOM_PATH = f"{ASSETS_DIR}/sbom.cdx.json"


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
    def kind(self) -> str:
        return "per-server base" if self.server_base else "offline bootstrap" if self.bootstrapped else "published"

    @property
    def ref(self) -> str:
        """What FROM names: `name:tag@sha256:...` (pinned, still readable) when a digest is known.

        A per-server base is named `repository@sha256:...`, as imgtool.lock pins it: its registry's port
        plus a tag plus a digest is more than hadolint's parser takes, and the digest alone decides.
        """
        if not self.digest:
            return self.name
        if self.server_base:
            return f"{repository_of(self.name)}@{self.digest}"
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
    sbom_path: str = SBOM_PATH
    uid: int = USER_UID
    # tooltable.Runtime; a per-server base is always its own (debian) runtime.
    runtime: str = "debian"
    # Things worth one line each before the build (e.g. a lock pinning the server outside its tested range).
    notes: tuple[str, ...] = ()

    @property
    def deps(self) -> DependencySource:
        return self.config.deps

    @property
    def pythonpath(self) -> str:
        """Where the app is imported from: the installed project first, else the context and its src/."""
        if self.deps.install_paths:
            return f"{self.project_dir}:{self.app_dir}"
        if self.config.src_layout:
            return f"{self.app_dir}:{self.app_dir}/src"
        return self.app_dir


RUNTIME_LABEL = "imgtool.runtime"


def resolve_runtime(config: Config, base: BaseImage) -> str:
    """The runtime stage for this base: a per-server base (imgtool.lock) is the runtime itself."""
    if not base.server_base:
        return config.runtime
    if config.runtime != Runtime.debian and config.origins.get("runtime") == "pyproject":
        raise UsageError(
            f"runtime = {config.runtime!r} cannot be used with the per-server base {base.name} from imgtool.lock "
            '(the base is the runtime, shared by every app on it): set runtime = "debian", or use --base IMAGE'
        )
    return "debian"


# Put before every default tag: test sessions (or engineers) sharing one engine keep their images apart.
TAG_PREFIX_ENV = "IMGTOOL_TAG_PREFIX"


def default_tag(config: Config, server: ServerSpec) -> str:
    """`imgtool-<app>:<server>`, after IMGTOOL_TAG_PREFIX. The one environment read below the CLI: every
    command that names a default tag (build, test, bench, ...) gets it without a change to each of them."""
    return validate.image_tag(f"{os.environ.get(TAG_PREFIX_ENV, '')}imgtool-{config.app_name}:{server.name}")


def resolve_tag(config: Config, server: ServerSpec, tag: str | None, several: bool) -> str:
    if tag is None:
        return default_tag(config, server)
    if several and "{server}" not in tag:
        raise UsageError(f"--tag {tag!r} would name every server's image the same: put {{server}} in it")
    return validate.image_tag(tag.replace("{server}", server.name))


def make_plan(
    config: Config,
    server: ServerSpec,
    base: BaseImage,
    assets_context: Path,
    tag: str | None = None,
    several: bool = False,
) -> BuildPlan:
    server = server.serving(config.interface)
    labels = {
        "org.opencontainers.image.title": config.app_name,
        "org.opencontainers.image.description": f"{config.app} served by {server.summary}",
        "org.opencontainers.image.base.name": base.name,
        VERSION_LABEL: __version__,
        APP_LABEL: config.app,
        INTERFACE_LABEL: config.interface,
        SERVER_LABEL: server.name,
        PROTOCOLS_LABEL: ",".join(sorted(server.protocols)),
        PORT_LABEL: str(config.port),
        # Empty: no health route configured; any answer below 500 at / is healthy.
        HEALTH_PATH_LABEL: config.health_path or "",
        ROUTES_LABEL: config.routes,
        **({WS_PATH_LABEL: config.ws_path} if config.ws_path else {}),
        "imgtool.sbom": SBOM_PATH,
        RUNTIME_LABEL: resolve_runtime(config, base),
    }
    if base.digest:
        labels["org.opencontainers.image.base.digest"] = base.digest
    env = {
        "PORT": str(config.port),
        # Read by the healthcheck at run time: `docker run -e HEALTH_PATH=...` changes what Docker asks.
        **({"HEALTH_PATH": config.health_path} if config.health_path else {}),
        "IMGTOOL_SERVER": server.name,
        "IMGTOOL_DEFAULT_WORKERS": str(config.workers) if config.workers else server.default_workers,
        "IMGTOOL_APP": config.app,
        "IMGTOOL_PREFLIGHT": str(server.preflight_import),
        **({"IMGTOOL_ONE_WORKER": server.single_process_workers} if server.single_process_workers else {}),
        # $THREADS for a threaded WSGI worker (gunicorn's gthread); WEB_THREADS still wins at run time.
        **({"IMGTOOL_DEFAULT_THREADS": server.default_threads} if server.default_threads else {}),
        **config.env,
    }
    requirements, notes = server_requirements(config, server, base)
    return BuildPlan(
        server=server,
        config=config,
        base=base,
        assets_context=assets_context,
        tag=resolve_tag(config, server, tag, several),
        requirements=requirements,
        command=tuple(server.argv(config.app)),
        env=env,
        labels=labels,
        runtime=labels[RUNTIME_LABEL],
        notes=tuple(notes),
    )


def server_requirements(config: Config, server: ServerSpec, base: BaseImage) -> tuple[tuple[str, ...], list[str]]:
    """What `uv pip install` adds beside the project's own dependency source, and notes about it.

    The server's packages, with `[project] dependencies` when those are the source; a server base has the
    server in its venv already. Beside a foreign lock, the lock wins: a package it pins is installed at the
    locked version (the server's version range is dropped, the rest resolve with the lock as constraints).
    """
    packages = () if base.server_base else server.packages
    if config.deps.kind != DependencyKind.LOCKFILE:
        return (*config.dependencies, *packages), []
    pinned = dict(config.deps.pinned)
    requirements, notes = [], []
    for spec in packages:
        requirement = lockfiles.parse_requirement(spec)
        if requirement.name not in pinned:
            requirements.append(spec)
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        requirements.append(f"{requirement.name}{extras}")
        version = pinned[requirement.name]
        if requirement.spec and version and not lockfiles.satisfies(version, requirement.spec):
            notes.append(
                f"{config.deps.lock} pins {requirement.name} {version}, outside the {requirement.spec} imgtool "
                f"tests {server.name} with: the locked version is used (the smoke suite shows whether it works)"
            )
    return tuple(requirements), notes


# `imgtool base build`: a per-server base, <registry>/imgtool-base:<server>-py<X.Y>.
SERVER_BASE_REPOSITORY = "imgtool-base"


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
        VERSION_LABEL: __version__,
        SERVER_LABEL: server.name,
        PYTHON_LABEL: python,
        PACKAGES_LABEL: " ".join(server.packages),
    }
    if root.digest:
        labels["org.opencontainers.image.base.digest"] = root.digest
    return ServerBasePlan(
        server=server,
        root=root,
        python=python,
        assets_context=assets_context,
        tag=validate.image_tag(server_base_ref(registry, server.name, python)),
        packages=server.packages,
        labels=labels,
    )


# Where and how buildx builds: `imgtool build --builder/--push/--cache-to/--cache-from/--network`.
_REGISTRY_HOST = re.compile(r"^(?:localhost|[^/]*[.:][^/]*)/")


@dataclass(frozen=True)
class BuildOptions:
    """The buildx flags that decide where a build runs and where its image and cache go.

    `builder` is any buildx builder (`docker buildx ls`: a docker context's engine, a docker-container,
    remote or kubernetes builder). Without `push` the image is loaded into an engine (`--load`); with it,
    it goes to the registry its tag names. Cache specs are buildx's (`type=registry,ref=R,mode=max`); a
    bare reference means a registry cache with every stage in it (mode=max), and `{server}` in either is
    replaced by the server's name so several servers never overwrite one cache.
    """

    builder: str | None = None
    push: bool = False
    cache_to: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    network: str | None = None
    no_cache: bool = False
    # `docker --context NAME`: a docker-driver builder builds only from its own context (buildx refuses
    # another's), so such a --builder runs, and is inspected, on that context's engine.
    docker_context: str | None = None
    # Attach SLSA provenance (mode=max): needs the containerd image store or a non-docker buildx driver.
    provenance: bool = False
    # Reproducible: SOURCE_DATE_EPOCH for the build; the image is exported as OCI with rewrite-timestamp.
    epoch: int | None = None
    # Where the image goes instead of --load/--push (a reproducible build's OCI archive).
    output: tuple[str, ...] = ()
    # Package-index credentials (toolkit/indexes.py), passed as BuildKit secrets.
    secrets: tuple[BuildSecret, ...] = ()

    def flags(self, server: str) -> tuple[str, ...]:
        argv: list[str] = []
        if self.builder:
            argv += ["--builder", self.builder]
        argv += self.output or ("--push" if self.push else "--load",)
        if self.provenance:
            argv += ["--attest", "type=provenance,mode=max"]
        elif self.epoch is not None:
            # buildx adds a minimal provenance to OCI exports on its own; it holds build times.
            argv.append("--provenance=false")
        if self.epoch is not None:
            argv += ["--build-arg", f"SOURCE_DATE_EPOCH={self.epoch}"]
        for spec in self.cache_from:
            argv += ["--cache-from", cache_spec(spec, server, export=False)]
        for spec in self.cache_to:
            argv += ["--cache-to", cache_spec(spec, server, export=True)]
        if self.network:
            argv += ["--network", self.network]
        if self.no_cache:
            argv.append("--no-cache")
        return tuple(argv)


def cache_spec(spec: str, server: str, export: bool) -> str:
    """A buildx cache spec with `{server}` filled in; a bare reference becomes a registry cache."""
    spec = spec.replace("{server}", server)
    if "=" in spec:
        return spec
    return f"type=registry,ref={spec}" + (",mode=max" if export else "")


def names_registry(tag: str) -> bool:
    """Whether an image name starts with a registry host (`localhost:5000/app`, `ghcr.io/me/app`)."""
    return bool(_REGISTRY_HOST.match(tag))


def check_build_options(options: BuildOptions, tags: list[str], several: bool) -> None:
    """Refuse, before anything is built, what buildx would fail on later (or silently get wrong)."""
    if options.push and options.epoch is not None:
        raise UsageError("--reproducible exports the image and loads it: drop --push, then push what it loaded")
    if options.push:
        local = [tag for tag in tags if not names_registry(tag)]
        if local:
            raise UsageError(
                f"--push needs a tag naming a registry, not {local[0]!r}: e.g. --tag localhost:5000/myapp:{{server}}"
            )
    if several:
        for flag, specs in (("--cache-to", options.cache_to), ("--cache-from", options.cache_from)):
            for spec in specs:
                if "{server}" not in spec:
                    raise UsageError(
                        f"{flag} {spec!r} would share one cache between servers: put {{server}} in it, "
                        "e.g. localhost:5000/myapp-cache:{server}"
                    )
    if options.network not in (None, "default", "host", "none"):
        raise UsageError(f"--network {options.network!r}: choose default, host or none")


def buildx_argv(
    tag: str,
    context: Path,
    assets_context: Path,
    dockerfile: str = "-",
    ca_cert: Path | None = None,
    extra: tuple[str, ...] = (),
    docker_context: str | None = None,
    secrets: Sequence[BuildSecret] = (),
    check_env: Path | str | None = None,
) -> list[str]:
    """The `docker buildx build` command that builds a rendered Dockerfile: any builder, any engine.

    imgtool's helper files arrive as the named context `imgtool-assets`, the CA bundle as a secret,
    package-index credentials (toolkit/indexes.py) as secrets read from the environment or a file, and
    `[tool.imgtool] check-env` (JSON) as the secret `check-env`: only the build-time import check reads it.
    """
    selector = ["--context", docker_context] if docker_context else []
    argv = ["docker", *selector, "buildx", "build", "--build-context", f"{CONTEXT_NAME}={assets_context}"]
    if ca_cert is not None:
        argv += ["--secret", f"id=ca,src={ca_cert}"]
    for secret in secrets:
        argv += ["--secret", secret.argument()]
    if check_env is not None:
        argv += ["--secret", f"id={CHECK_ENV_SECRET},src={check_env}"]
    return [*argv, *extra, "--tag", tag, "--file", dockerfile, str(context)]
