"""The Docker edge: connecting, building with BuildKit, inspecting and cleaning up.

Everything here talks to the engine (Docker SDK) or runs the docker CLI (buildx); the logic
that decides what to build lives in plan.py and render.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from toolkit import IMAGES_DIR
from toolkit.errors import BuildFailed, EnvironmentProblem, UsageError
from toolkit.plan import BuildPlan, ServerBasePlan

LABEL = "imgtool"
UV_REQUIREMENT = "uv>=0.4,<1"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imgtool"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROVISION_HINT = "run scripts/provision-docker (or start Docker and set DOCKER_HOST)"


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"Docker engine unreachable ({reason}): {PROVISION_HINT}") from None
    return client


def require_buildx() -> None:
    try:
        ok = subprocess.run(["docker", "buildx", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise EnvironmentProblem(f"docker buildx is not installed: {PROVISION_HINT}")


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def daemon_arch(client: docker.DockerClient) -> str:
    arch = client.info().get("Architecture", "x86_64")
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def uv_wheel(arch: str) -> Path:
    """uv's Linux wheel for the engine's architecture, downloaded once with the host's pip config."""
    wheels = CACHE_DIR / "wheels"
    found = sorted(wheels.glob(f"uv-*manylinux*{arch}*.whl"))
    if found:
        return found[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        f"manylinux_2_17_{arch}",
        "--dest",
        str(wheels),
        UV_REQUIREMENT,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(wheels.glob(f"uv-*manylinux*{arch}*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(f"cannot download uv's wheel with pip ({last}): check pip's index settings")
    return found[-1]


def _extract_uv(wheel: Path, dest: Path) -> None:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".data/scripts/uv"))
        target = dest / "uv" / "uv"
        target.parent.mkdir(parents=True)
        target.write_bytes(archive.read(member))
        target.chmod(0o755)


def ensure_assets_image(client: docker.DockerClient) -> str:
    """A scratch image holding the launcher, the healthcheck and uv, named by content hash.

    Builds copy from it by name (COPY --from / RUN --mount from=): Docker 20.10's BuildKit has
    no named build contexts, and a local image works on every engine with the docker driver.
    """
    wheel = uv_wheel(daemon_arch(client))
    sources = sorted((IMAGES_DIR / "assets").glob("*.py"))
    digest = hashlib.sha256(wheel.name.encode())
    for source in sources:
        digest.update(source.name.encode() + source.read_bytes())
    tag = f"imgtool-assets:{digest.hexdigest()[:16]}"
    if image_exists(client, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="imgtool-assets-") as staging:
        root = Path(staging)
        for source in sources:
            shutil.copy2(source, root / source.name)
        _extract_uv(wheel, root)
        (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
        client.images.build(path=staging, tag=tag, labels={LABEL: "assets"}, rm=True)
    return tag


@dataclass(frozen=True)
class BuildResult:
    server: str
    tag: str
    image_id: str
    size_bytes: int
    seconds: float


def buildx_command(plan: BuildPlan, iidfile: Path, ca_cert: Path | None, no_cache: bool, progress: str) -> list[str]:
    return _buildx_command(plan.tag, plan.config.context, iidfile, ca_cert, no_cache, progress)


def _buildx_command(
    tag: str, context: Path, iidfile: Path, ca_cert: Path | None, no_cache: bool, progress: str
) -> list[str]:
    command = ["docker", "buildx", "build", "--load", f"--progress={progress}", "--iidfile", str(iidfile)]
    command += ["--tag", tag, "--file", "-"]
    if ca_cert is not None:
        command += ["--secret", f"id=ca,src={ca_cert}"]
    if no_cache:
        command.append("--no-cache")
    return [*command, str(context)]


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
    ca_cert: Path | None,
    no_cache: bool,
    show_progress: bool,
) -> tuple[int, str, float, list[str]]:
    """Run `docker buildx build`: (exit code, image id, seconds, output lines kept for the error message)."""
    with tempfile.TemporaryDirectory(prefix="imgtool-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        progress = "tty" if show_progress and sys.stderr.isatty() else "plain"
        command = _buildx_command(tag, context, iidfile, ca_cert, no_cache, progress)
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


def build_image(
    client: docker.DockerClient,
    plan: BuildPlan,
    dockerfile: str,
    ca_cert: Path | None,
    no_cache: bool = False,
    show_progress: bool = True,
) -> BuildResult:
    """Run `docker buildx build`; progress goes to the terminal or is kept for the error message."""
    returncode, image_id, seconds, output_lines = _buildx(
        dockerfile, plan.tag, plan.config.context, ca_cert, no_cache, show_progress
    )
    if returncode != 0:
        import_error = _import_check_error(output_lines)
        if import_error:
            raise UsageError(
                f"{plan.config.app} cannot be imported in the image ({import_error}): "
                "fix the app or add the missing dependency"
            )
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
            dockerfile, plan.tag, Path(context), ca_cert, no_cache, show_progress
        )
    if returncode != 0:
        raise BuildFailed(f"building {plan.tag} failed: {_build_error(output_lines)}")
    image = client.images.get(image_id)
    return BuildResult(plan.server.name, plan.tag, image_id, image.attrs["Size"], seconds)


def _import_check_error(lines: list[str]) -> str | None:
    marker = "imgtool-import-check: "
    found = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
    return found[-1] if found else None


def _build_error(lines: list[str]) -> str:
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    chosen = errors[-1] if errors else (lines[-1] if lines else "see the build output above")
    return chosen.split("ERROR:", 1)[-1].strip()[:500]
