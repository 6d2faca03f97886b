"""The Docker edge: connecting, building with BuildKit, inspecting and cleaning up.

Everything here talks to the engine (Docker SDK) or runs the docker CLI (buildx); the logic
that decides what to build lives in plan.py and render.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from toolkit.assets import docker_arch
from toolkit.errors import BuildFailed, EnvironmentProblem, UsageError
from toolkit.plan import BuildPlan, ServerBasePlan, buildx_argv

LABEL = "imgtool"
# Named build contexts and Dockerfile heredocs in the engine's built-in BuildKit; `docker save` as OCI.
MIN_ENGINE = (25, 0)
# `docker compose build` (compose 2.40) refuses older buildx plugins.
MIN_BUILDX = (0, 17)
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROVISION_HINT = (
    "install Docker Engine 25+ with the buildx (0.17+) and compose v2 plugins "
    "(from a checkout of imgtool: scripts/provision-docker)"
)


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"Docker engine unreachable ({reason}): {PROVISION_HINT}") from None
    require_modern_engine(client)
    return client


def buildx_version() -> str | None:
    """The buildx plugin's version (`0.29.1`), or None where `docker buildx` does not answer."""
    try:
        result = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = result.stdout.split()
    return words[1].removeprefix("v") if result.returncode == 0 and len(words) > 1 else None


def buildx_problem(version: str | None) -> str | None:
    """Why this buildx cannot build imgtool's Dockerfiles (compose 2.40 also refuses buildx < 0.17), or None."""
    floor = ".".join(map(str, MIN_BUILDX))
    if version is None:
        return f"docker buildx is not installed: {PROVISION_HINT}"
    if _version_tuple(version) < MIN_BUILDX:
        return f"docker buildx {version} is too old (need {floor} or newer): {PROVISION_HINT}"
    return None


def require_buildx() -> None:
    problem = buildx_problem(buildx_version())
    if problem:
        raise EnvironmentProblem(problem)


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def daemon_arch(client: docker.DockerClient) -> str:
    """The engine's architecture as Docker names platforms (amd64, arm64): the uv the build needs."""
    return docker_arch(client.info().get("Architecture", "x86_64"))


def require_modern_engine(client: docker.DockerClient) -> str:
    """The engine's version, or an error naming the upgrade when it is older than imgtool supports."""
    version = str(client.version().get("Version", "0"))
    if _version_tuple(version) < MIN_ENGINE:
        floor = ".".join(map(str, MIN_ENGINE))
        raise EnvironmentProblem(
            f"Docker engine {version} is too old (imgtool needs {floor} or newer for named build contexts): "
            "upgrade Docker, or run scripts/provision-docker"
        )
    return version


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.match(r"^v?(\d+)(?:\.(\d+))?", version)
    return tuple(int(part or 0) for part in numbers.groups()) if numbers else (0,)


@dataclass(frozen=True)
class BuildResult:
    server: str
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    # A reproducible build's image manifest digest (the exported OCI image's), and the epoch it pinned.
    digest: str | None = None
    epoch: int | None = None
    # One line each: things the build noticed but did not fail on (the import check's warning).
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildOptions:
    """How to build, beyond what the plan says: cache, attestations, reproducibility, network."""

    no_cache: bool = False
    # Attach SLSA provenance (mode=max): needs the containerd image store or a non-docker buildx driver.
    provenance: bool = False
    # Reproducible: SOURCE_DATE_EPOCH for the build, exported as OCI with rewrite-timestamp, then loaded.
    epoch: int | None = None
    # `host` where the engine's bridge has no NAT (a second engine beside the first).
    network: str | None = None

    def buildx_args(self) -> tuple[str, ...]:
        args: list[str] = ["--no-cache"] if self.no_cache else []
        if self.network:
            args += ["--network", self.network]
        if self.provenance:
            args += ["--attest", "type=provenance,mode=max"]
        elif self.epoch is not None:
            # buildx adds a minimal provenance to OCI exports on its own; it holds build times.
            args.append("--provenance=false")
        if self.epoch is not None:
            args += ["--build-arg", f"SOURCE_DATE_EPOCH={self.epoch}"]
        return tuple(args)


# The one-line fix where the docker driver sits on a classic (graph driver) image store.
CONTAINERD_STORE_HINT = (
    'turn on the containerd image store: add {"features": {"containerd-snapshotter": true}} to '
    "/etc/docker/daemon.json and restart dockerd (or use a docker-container buildx builder)"
)


def containerd_store(client: docker.DockerClient) -> bool:
    """Whether images live in containerd's store (`docker info`: driver-type io.containerd.snapshotter.v1)."""
    status = client.info().get("DriverStatus") or []
    return any(len(pair) == 2 and pair[0] == "driver-type" and "containerd" in pair[1] for pair in status)


def buildx_driver() -> str | None:
    """The current buildx builder's driver (docker, docker-container, remote, kubernetes), None if unknown."""
    try:
        result = subprocess.run(["docker", "buildx", "inspect"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Driver":
            return value.strip() or None
    return None


def attestation_problem(client: docker.DockerClient, driver: str | None = None) -> str | None:
    """Why this engine's builder cannot store attestations or export OCI images (with the fix), else None."""
    driver = driver or buildx_driver()
    if driver not in (None, "docker") or containerd_store(client):
        return None
    return f"the docker driver on a classic image store cannot: {CONTAINERD_STORE_HINT}"


def resolve_ca_cert(ca_cert: Path | None) -> Path | None:
    if ca_cert is None:
        return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None
    if not ca_cert.is_file():
        raise UsageError(f"--ca-cert {ca_cert} is not a file: pass a PEM bundle")
    return ca_cert.resolve()


def _buildx(
    dockerfile: str,
    tag: str,
    context: Path,
    assets_context: Path,
    ca_cert: Path | None,
    no_cache: bool,
    show_progress: bool,
    options: tuple[str, ...] = (),
    output: tuple[str, ...] = ("--load",),
    check_env: dict[str, str] | None = None,
) -> tuple[int, str, float, list[str]]:
    """Run `docker buildx build`: (exit code, image id, seconds, output lines kept for the error message).

    `output` replaces `--load` (a reproducible build exports an OCI archive instead: no image id then).
    `check_env` reaches the build-time import check as the secret `check-env` (a JSON file that lives
    only as long as the build): never an ARG, ENV or RUN line, so never in a layer or the history.
    """
    with tempfile.TemporaryDirectory(prefix="imgtool-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        progress = "tty" if show_progress and sys.stderr.isatty() else "plain"
        extra = (*output, f"--progress={progress}", "--iidfile", str(iidfile), *(("--no-cache",) if no_cache else ()))
        secret = None
        if check_env:
            secret = Path(scratch) / "check-env.json"
            secret.write_text(json.dumps(check_env))
            secret.chmod(0o600)
        command = buildx_argv(tag, context, assets_context, "-", ca_cert, (*extra, *options), check_env=secret)
        started = time.monotonic()
        output_lines: list[str] = []
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None if progress == "tty" else subprocess.PIPE,
            text=True,
        ) as process:
            try:
                assert process.stdin is not None
                process.stdin.write(dockerfile)
                process.stdin.close()
                if process.stderr is not None:
                    for line in process.stderr:
                        output_lines.append(line.rstrip("\n"))
                        if show_progress:
                            sys.stderr.write(line)
                process.wait()
            except BaseException:
                process.terminate()
                process.wait()
                raise
        seconds = time.monotonic() - started
        image_id = iidfile.read_text().strip() if process.returncode == 0 and iidfile.is_file() else ""
    return process.returncode, image_id, seconds, output_lines


def build_image(
    client: docker.DockerClient,
    plan: BuildPlan,
    dockerfile: str,
    ca_cert: Path | None,
    no_cache: bool = False,
    show_progress: bool = True,
    options: BuildOptions | None = None,
) -> BuildResult:
    """Run `docker buildx build`; progress goes to the terminal or is kept for the error message."""
    options = options or BuildOptions(no_cache=no_cache)
    if options.epoch is not None:
        return _build_reproducible(client, plan, dockerfile, ca_cert, show_progress, options)
    returncode, image_id, seconds, output_lines = _buildx(
        dockerfile,
        plan.tag,
        plan.config.context,
        plan.assets_context,
        ca_cert,
        False,
        show_progress,
        options.buildx_args(),
        check_env=plan.config.check_env,
    )
    _raise_for_build(plan, returncode, output_lines)
    image = client.images.get(image_id)
    return BuildResult(
        plan.server.name, plan.tag, image_id, image.attrs["Size"], seconds, warnings=_warnings(plan, output_lines)
    )


def _build_reproducible(
    client: docker.DockerClient,
    plan: BuildPlan,
    dockerfile: str,
    ca_cert: Path | None,
    show_progress: bool,
    options: BuildOptions,
) -> BuildResult:
    """Export an OCI archive with rewrite-timestamp (the docker exporter cannot: it unpacks), then load it.

    The digest reported is the exported image manifest's; on a containerd store the loaded image keeps it.
    """
    from toolkit.reproducible import oci_digests, oci_output

    with tempfile.TemporaryDirectory(prefix="imgtool-oci-") as scratch:
        archive = Path(scratch) / "image.tar"
        returncode, _, seconds, output_lines = _buildx(
            dockerfile,
            plan.tag,
            plan.config.context,
            plan.assets_context,
            ca_cert,
            False,
            show_progress,
            options.buildx_args(),
            output=("--output", oci_output(archive, plan.tag)),
            check_env=plan.config.check_env,
        )
        _raise_for_build(plan, returncode, output_lines)
        digests = oci_digests(archive)
        started = time.monotonic()
        with archive.open("rb") as stream:
            client.images.load(stream)
        seconds += time.monotonic() - started
    image = client.images.get(plan.tag)
    return BuildResult(
        plan.server.name,
        plan.tag,
        image.id,
        image.attrs["Size"],
        seconds,
        digest=digests.image,
        epoch=options.epoch,
        warnings=_warnings(plan, output_lines),
    )


def _raise_for_build(plan: BuildPlan, returncode: int, output_lines: list[str]) -> None:
    if returncode != 0:
        lock_error = _marked(output_lines, "imgtool-lock-export: ")
        if lock_error:
            raise UsageError(f"{plan.deps.lock} cannot be installed: {lock_error}")
        import_error = _marked(output_lines, "imgtool-import-check: ")
        if import_error and "collectstatic failed" in import_error:
            raise UsageError(
                f"Django's collectstatic failed in the build ({import_error}): fix the settings, or give the "
                "values they need at build time in [tool.imgtool] check-env"
            )
        if import_error:
            raise UsageError(
                f"{plan.config.app} cannot be imported in the image ({import_error}): "
                "fix the app or add the missing dependency"
            )
        raise BuildFailed(f"building {plan.tag} failed: {_build_error(output_lines)}")


def _warnings(plan: BuildPlan, output_lines: list[str]) -> list[str]:
    """The import check's warning, as one line (plain progress only: a tty build shows it in BuildKit's own)."""
    warning = _marked(output_lines, "imgtool-import-check-warning: ")
    if not warning:
        return []
    return [
        f"{plan.config.app} raised {warning} while importing at build time; built anyway (it may need run-time "
        "settings: pass them to `imgtool test --env`, or set [tool.imgtool] check-env for a real import check)"
    ]


def build_server_base(
    client: docker.DockerClient,
    plan: ServerBasePlan,
    dockerfile: str,
    ca_cert: Path | None,
    no_cache: bool = False,
    show_progress: bool = True,
) -> BuildResult:
    """Build a per-server base (`imgtool base build`); it needs no files, so the context is empty."""
    with tempfile.TemporaryDirectory(prefix="imgtool-base-context-") as context:
        returncode, image_id, seconds, output_lines = _buildx(
            dockerfile, plan.tag, Path(context), plan.assets_context, ca_cert, no_cache, show_progress
        )
    if returncode != 0:
        raise BuildFailed(f"building {plan.tag} failed: {_build_error(output_lines)}")
    image = client.images.get(image_id)
    return BuildResult(plan.server.name, plan.tag, image_id, image.attrs["Size"], seconds)


def _marked(lines: list[str], marker: str) -> str | None:
    """The last line the build printed after `marker` (the import check's and lock exporter's one-liners)."""
    found = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
    return found[-1] if found else None


def _build_error(lines: list[str]) -> str:
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    chosen = errors[-1] if errors else (lines[-1] if lines else "see the build output above")
    return chosen.split("ERROR:", 1)[-1].strip()[:500]
