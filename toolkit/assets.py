"""imgtool's helper files as a named build context: what every rendered Dockerfile reads `from=imgtool-assets`.

The launcher, the healthcheck, the build-time import check, the lock exporter (toolkit/lockfiles.py, as
lock_export.py) and uv (unpacked from its PyPI wheel, one binary per architecture under `uv/<docker arch>/`)
are staged in a plain directory and handed to
BuildKit with `--build-context imgtool-assets=DIR` (compose: `additional_contexts`, bake: `contexts`).
A directory travels to any builder — the local engine, a docker-container or remote buildx builder,
another machine — where an image that exists in one engine does not.

The local staging is content-addressed under imgtool's cache directory, so a path names one set of
files forever and BuildKit's context cache stays warm across builds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from toolkit import IMAGES_DIR
from toolkit.errors import EnvironmentProblem, UsageError

CONTEXT_NAME = "imgtool-assets"
# Every staged file and folder gets this modification time (1980-01-01, ZIP's epoch): what the image's
# COPY keeps must not depend on when or where imgtool was checked out (reproducible builds).
STAGED_MTIME = 315532800
UV_REQUIREMENT = "uv>=0.4,<1"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imgtool"
# Docker's architecture names (TARGETARCH) -> the machine name in uv's manylinux wheel file names.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# What the engine reports as its Architecture -> Docker's name.
_ENGINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}


def docker_arch(name: str) -> str:
    """Docker's name (amd64, arm64) for an engine's `Architecture` or a `linux/<arch>` platform."""
    arch = _ENGINE_ARCH.get(name.removeprefix("linux/"))
    if arch is None:
        raise UsageError(
            f"unsupported platform {name!r}: imgtool ships uv for linux/{', linux/'.join(WHEEL_ARCH)}; pick one"
        )
    return arch


def sources() -> list[tuple[str, Path]]:
    """(name in the context, file): the helper scripts, the SBOM generator's pinned requirements
    (sbom-tool.txt), and imgtool's lock exporter (toolkit/lockfiles.py), which the builder runs."""
    folder = IMAGES_DIR / "assets"
    files = {path.name: path for path in [*folder.glob("*.py"), folder / "sbom-tool.txt"]}
    files["lock_export.py"] = Path(__file__).resolve().parent / "lockfiles.py"
    return sorted(files.items())


def uv_wheel(arch: str) -> Path:
    """uv's Linux wheel for a Docker architecture, downloaded once with the host's own pip configuration."""
    machine = WHEEL_ARCH[arch]
    wheels = CACHE_DIR / "wheels"
    found = sorted(wheels.glob(f"uv-*manylinux*{machine}*.whl"))
    if found:
        return found[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--platform", f"manylinux_2_17_{machine}", "--dest", str(wheels), UV_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(wheels.glob(f"uv-*manylinux*{machine}*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(f"cannot download uv's wheel with pip ({last}): check pip's index settings")
    return found[-1]


def _extract_uv(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".data/scripts/uv"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))
        target.chmod(0o755)


def stage(dest: Path, arches: tuple[str, ...]) -> Path:
    """(Re)create `dest` as the `imgtool-assets` context for the given Docker architectures."""
    wheels = {arch: uv_wheel(arch) for arch in arches}
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name, source in sources():
        shutil.copy2(source, dest / name)
    for arch, wheel in wheels.items():
        _extract_uv(wheel, dest / "uv" / arch / "uv")
    for path in [*sorted(dest.rglob("*"), reverse=True), dest]:
        os.utime(path, (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
    return dest


def ensure(arches: tuple[str, ...]) -> Path:
    """The cached, content-addressed context for `arches`: staged once, then reused as it is."""
    wheels = {arch: uv_wheel(arch) for arch in sorted(set(arches))}
    digest = hashlib.sha256(f"mtime={STAGED_MTIME}\n".encode())
    for arch, wheel in wheels.items():
        digest.update(f"{arch}={wheel.name}\n".encode())
    for name, source in sources():
        digest.update(name.encode() + b"\0" + source.read_bytes())
    dest = CACHE_DIR / "assets" / digest.hexdigest()[:16]
    if dest.is_dir():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Staged beside the final path and renamed, so a concurrent or interrupted run never sees half.
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write imgtool's cache {dest.parent} ({exc.strerror}): fix its permissions or set XDG_CACHE_HOME"
        ) from None
    try:
        stage(staging / "ctx", tuple(wheels))
        os.replace(staging / "ctx", dest)
    except OSError:
        if not dest.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def copy_beside(context: Path, dest: Path) -> Path:
    """A copy of a staged context at `dest` (compose and bake files keep theirs beside them)."""
    marker = dest / ".imgtool-assets"
    if marker.is_file() and marker.read_text() == context.name:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(context, dest)
    marker.write_text(context.name)
    return dest
