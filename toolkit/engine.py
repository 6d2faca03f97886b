"""The Docker edge: connecting, building with BuildKit, inspecting and cleaning up.

Everything here talks to the engine (Docker SDK) or runs the docker CLI (buildx); the logic
that decides what to build lives in plan.py and render.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from toolkit.assets import docker_arch
from toolkit.errors import EnvironmentProblem, UsageError

# Named build contexts and Dockerfile heredocs in the engine's built-in BuildKit; `docker save` as OCI.
MIN_ENGINE = (25, 0)
# `docker compose build` (compose 2.40) refuses older buildx plugins.
MIN_BUILDX = (0, 17)
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROVISION_HINT = (
    "install Docker Engine 25+ with the buildx (0.17+) and compose v2 plugins "
    "(from a checkout of imgtool: scripts/provision-docker)"
)


@dataclass(frozen=True)
class Endpoint:
    """The engine the docker CLI talks to, as `docker context inspect` resolves it."""

    context: str
    host: str
    tls_dir: str | None = None
    skip_tls_verify: bool = False


def endpoint_from_inspect(data: dict) -> Endpoint | None:
    """The docker endpoint of one `docker context inspect` entry (None without a docker endpoint)."""
    docker_endpoint = (data.get("Endpoints") or {}).get("docker") or {}
    host = docker_endpoint.get("Host")
    if not host:
        return None
    tls_path = (data.get("Storage") or {}).get("TLSPath")
    tls_dir = str(Path(tls_path) / "docker") if tls_path and (Path(tls_path) / "docker").is_dir() else None
    return Endpoint(
        context=str(data.get("Name") or "default"),
        host=host,
        tls_dir=tls_dir,
        skip_tls_verify=bool(docker_endpoint.get("SkipTLSVerify")),
    )


def current_endpoint(context: str | None = None) -> Endpoint | None:
    """What the docker CLI would use: DOCKER_HOST, else DOCKER_CONTEXT, else the current context
    (or the named `context`, as `docker --context NAME` would).

    Asking the CLI (`docker context inspect` with no name resolves exactly that) keeps the SDK and the
    buildx builds on one engine. None where the CLI cannot say; the SDK then reads the environment.
    """
    selector = ["--context", context] if context else []
    try:
        result = subprocess.run(
            ["docker", *selector, "context", "inspect", "--format", "{{json .}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return endpoint_from_inspect(json.loads(result.stdout)) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError):
        return None


def current_context() -> str | None:
    """The name of the Docker context the CLI uses now (`default` also when DOCKER_HOST decides)."""
    endpoint = current_endpoint()
    return endpoint.context if endpoint else None


def client_kwargs(endpoint: Endpoint) -> dict:
    """DockerClient arguments for an endpoint: its host, its context's TLS files, ssh through the ssh binary."""
    kwargs: dict = {"base_url": endpoint.host}
    if endpoint.host.startswith("ssh://"):
        kwargs["use_ssh_client"] = True
    if endpoint.tls_dir:
        import docker.tls

        tls_dir = Path(endpoint.tls_dir)
        cert, key, ca = tls_dir / "cert.pem", tls_dir / "key.pem", tls_dir / "ca.pem"
        kwargs["tls"] = docker.tls.TLSConfig(
            client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            ca_cert=str(ca) if ca.is_file() else None,
            verify=not endpoint.skip_tls_verify and ca.is_file(),
        )
    return kwargs


def connect(context: str | None = None) -> docker.DockerClient:
    """A client for the engine the docker CLI would use (DOCKER_HOST, DOCKER_CONTEXT, `docker context use`),
    or for the named Docker context's engine.

    DOCKER_HOST is read by the SDK itself, with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (which a
    context lookup would not carry); only contexts need the CLI's answer.
    """
    from_environment = context is None and bool(os.environ.get("DOCKER_HOST"))
    endpoint = None if from_environment else current_endpoint(context)
    where = f" at {endpoint.host} (context {endpoint.context})" if endpoint else ""
    try:
        if endpoint is None:
            client = docker.from_env(timeout=120)
        else:
            client = docker.DockerClient(timeout=120, **client_kwargs(endpoint))
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"Docker engine unreachable{where} ({reason}): {PROVISION_HINT}") from None
    require_modern_engine(client)
    return client


def cli_version(*args: str) -> str | None:
    """The first line `docker ARGS` prints (e.g. `docker compose version`), or None where it does not answer."""
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    return lines[0] if result.returncode == 0 and lines else None


def buildx_version() -> str | None:
    """The buildx plugin's version (`0.29.1`), or None where `docker buildx` does not answer."""
    words = (cli_version("buildx", "version") or "").split()
    return words[1].removeprefix("v") if len(words) > 1 else None


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


@dataclass(frozen=True)
class Builder:
    """A buildx builder as `docker buildx inspect` describes it."""

    name: str
    driver: str
    # The first node's endpoint: a Docker context's name for the docker driver.
    endpoint: str
    platforms: tuple[str, ...]

    def docker_context(self, current: str | None) -> str | None:
        """The context to build from: a docker-driver builder is a context's engine, and buildx uses it only
        from that context. None where that is the `current` context already, or the driver is another."""
        if self.driver != "docker" or not self.endpoint or self.endpoint == current:
            return None
        return self.endpoint


def parse_builder(name: str, text: str) -> Builder:
    """`docker buildx inspect NAME` output: the driver, the first node's endpoint and platforms (native first)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Driver", "Endpoint", "Platforms") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    platforms = tuple(item.strip().rstrip("*") for item in fields.get("Platforms", "").split(",") if item.strip())
    return Builder(name, fields.get("Driver", ""), fields.get("Endpoint", ""), platforms)


def inspect_builder(builder: str) -> Builder:
    """The named buildx builder; an unknown or stopped one is an error naming the fix."""
    try:
        result = subprocess.run(["docker", "buildx", "inspect", builder], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"`docker buildx inspect {builder}` did not answer ({exc}): check buildx") from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("ERROR: ")
        raise UsageError(f"--builder {builder}: {reason}; list the builders with `docker buildx ls`")
    info = parse_builder(builder, result.stdout)
    if not info.platforms:
        raise EnvironmentProblem(
            f"builder {builder} reports no platform (is it running?): `docker buildx inspect --bootstrap {builder}`"
        )
    return info


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
    return parse_builder("", result.stdout).driver or None


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
