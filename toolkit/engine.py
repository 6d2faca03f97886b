"""The Docker edge: connecting, building with BuildKit, inspecting and cleaning up.

Everything here talks to the engine (Docker SDK) or runs the docker CLI (buildx); the logic
that decides what to build lives in plan.py and render.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
    contexts: dict[str, Path] | None = None,
) -> tuple[int, str, float, list[str]]:
    """Run `docker buildx build`: (exit code, image id, seconds, output lines kept for the error message).

    `contexts`: more named build contexts (a name that is also a stage replaces the stage).
    """
    with tempfile.TemporaryDirectory(prefix="imgtool-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        progress = "tty" if show_progress and sys.stderr.isatty() else "plain"
        named = tuple(arg for name, path in (contexts or {}).items() for arg in ("--build-context", f"{name}={path}"))
        extra = (
            *named,
            "--load",
            f"--progress={progress}",
            "--iidfile",
            str(iidfile),
            *(("--no-cache",) if no_cache else ()),
        )
        command = buildx_argv(tag, context, assets_context, "-", ca_cert, extra)
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
        image_id = iidfile.read_text().strip() if process.returncode == 0 else ""
    return process.returncode, image_id, seconds, output_lines


class ImportKeyStale(BuildFailed):
    """The import check ran a stubbed function: the import-time skeleton no longer fits; build with the app itself."""


def build_image(
    client: docker.DockerClient,
    plan: BuildPlan,
    dockerfile: str,
    ca_cert: Path | None,
    no_cache: bool = False,
    show_progress: bool = True,
    import_key: Path | None = None,
) -> BuildResult:
    """Run `docker buildx build`; progress goes to the terminal or is kept for the error message.

    `import_key`: the app's import-time skeleton (toolkit.importkey) to replace the `import-key` stage with.
    """
    from toolkit.importkey import CONTEXT_NAME, STALE_MARKER

    contexts = {CONTEXT_NAME: import_key} if import_key is not None else None
    returncode, image_id, seconds, output_lines = _buildx(
        dockerfile, plan.tag, plan.config.context, plan.assets_context, ca_cert, no_cache, show_progress, contexts
    )
    if returncode != 0:
        stale = _marked_line(output_lines, STALE_MARKER)
        # Progress on a terminal is not captured: a failure on the skeleton is then retried with the app itself,
        # which reproduces any failure that was not the skeleton's.
        if import_key is not None and (stale or not output_lines):
            raise ImportKeyStale(stale or "the build failed on the import-time skeleton")
        import_error = _import_check_error(output_lines)
        if import_error:
            raise UsageError(
                f"{plan.config.app} cannot be imported in the image ({import_error}): "
                "fix the app or add the missing dependency"
            )
        runtime_error = _marked_line(output_lines, "imgtool-runtime: ")
        if runtime_error:
            raise UsageError(f"the {plan.runtime} runtime for {plan.tag} cannot be assembled: {runtime_error}")
        raise BuildFailed(f"building {plan.tag} failed: {_build_error(output_lines)}")
    image = client.images.get(image_id)
    return BuildResult(plan.server.name, plan.tag, image_id, image.attrs["Size"], seconds)


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


def read_image_json(client: docker.DockerClient, image_id: str, path: str) -> dict | None:
    """A small JSON file from an image's filesystem, read from a created (never started) container."""
    import io
    import json
    import tarfile

    container = client.containers.create(image_id)
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.next()
            data = archive.extractfile(member) if member is not None else None
            return json.loads(data.read()) if data is not None else None
    except (docker.errors.NotFound, ValueError, tarfile.TarError):
        return None
    finally:
        container.remove(force=True)


def _import_check_error(lines: list[str]) -> str | None:
    return _marked_line(lines, "imgtool-import-check: ")


def _marked_line(lines: list[str], marker: str) -> str | None:
    """The last line a build-time helper printed after `marker` (BuildKit repeats a failed step's output)."""
    found = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
    return found[-1] if found else None


def _build_error(lines: list[str]) -> str:
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    chosen = errors[-1] if errors else (lines[-1] if lines else "see the build output above")
    return chosen.split("ERROR:", 1)[-1].strip()[:500]
