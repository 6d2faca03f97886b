"""Base images: use a published one (pulled, pinned by digest), or bootstrap one offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import docker.models.images

from toolkit.containers import LABEL, SERVER_BASE_LABEL
from toolkit.detect import PythonRequirement
from toolkit.engine import image_exists
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.plan import BaseImage
from toolkit.refs import digest_under, split_ref

# Debian bookworm's python3 is 3.11: the only version the offline base can provide.
BOOTSTRAP_PYTHON = "3.11"
BOOTSTRAP_SUITE = "bookworm"
BOOTSTRAP_IMAGE = f"imgtool/python:{BOOTSTRAP_PYTHON}-{BOOTSTRAP_SUITE}"
BOOTSTRAP_PACKAGES = ("python3-minimal", "python3-venv", "ca-certificates")


def official_base(python: str) -> str:
    return f"python:{python}-slim"


def describe(client: docker.DockerClient, name: str) -> BaseImage:
    image = client.images.get(name)
    labels = image.labels or {}
    return BaseImage(
        name=name,
        # A name with a digest is pinned already.
        digest=None if "@" in name else digest_under(image, name),
        bootstrapped=labels.get(LABEL) == "base",
        server_base=labels.get(SERVER_BASE_LABEL) == "server",
    )


def pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull `name`; the daemon's reason on failure, None on success."""
    try:
        client.images.pull(*split_ref(name))
    except docker.errors.APIError as exc:
        return (exc.explanation or str(exc)).splitlines()[0]
    return None


def base_python(client: docker.DockerClient, name: str) -> str | None:
    """The X.Y of a base's Python when its metadata says (official images' PYTHON_VERSION, the offline base)."""
    attrs = client.images.get(name).attrs.get("Config") or {}
    for item in attrs.get("Env") or []:
        if item.startswith("PYTHON_VERSION="):
            match = re.match(r"(\d+\.\d+)", item.split("=", 1)[1])
            return match.group(1) if match else None
    description = (attrs.get("Labels") or {}).get("org.opencontainers.image.description", "")
    match = re.search(r"python3-(\d+\.\d+)$", description)
    return match.group(1) if match else None


def _check_python(client, base: BaseImage, requirement: PythonRequirement | None) -> BaseImage:
    """A base whose Python the project cannot run on is an error naming both versions."""
    if requirement is None:
        return base
    version = base_python(client, base.name)
    if version is not None and not requirement.allows(version):
        raise UsageError(
            f"the project needs {requirement.describe()} ({requirement.where}) but the base {base.name} has "
            f"Python {version}: pass --base with a matching Python"
        )
    return base


def resolve_base(
    client: docker.DockerClient,
    explicit: str | None,
    python: str,
    notice: Callable[[str], None],
    requirement: PythonRequirement | None = None,
) -> BaseImage:
    """The base to build on: local if present, else pulled; the offline base when nothing pulls.

    `requirement` (what the project says about its Python) is checked against the base's Python.
    """
    name = explicit or official_base(python)
    if image_exists(client, name):
        return _check_python(client, describe(client, name), requirement)
    reason = pull(client, name)
    if reason is None:
        return _check_python(client, describe(client, name), requirement)
    if explicit:
        raise EnvironmentProblem(
            f"base image {name} is not here and cannot be pulled ({reason}): "
            f"pull it, or run `imgtool base bootstrap` and pass --base {BOOTSTRAP_IMAGE}"
        )
    if python == BOOTSTRAP_PYTHON and image_exists(client, BOOTSTRAP_IMAGE):
        notice(f"{name} cannot be pulled (no registry reachable); building on the offline base {BOOTSTRAP_IMAGE}")
        return describe(client, BOOTSTRAP_IMAGE)
    if requirement is not None and not requirement.allows(BOOTSTRAP_PYTHON):
        raise EnvironmentProblem(
            f"the project needs {requirement.describe()} ({requirement.where}) but {name} cannot be pulled "
            f"({reason}) and the offline base {BOOTSTRAP_IMAGE} has Python {BOOTSTRAP_PYTHON}: "
            f"pull a Python {python} image where a registry answers, or pass --base IMAGE with Python {python}"
        )
    fix = (
        "run `imgtool base bootstrap` to create an offline Python 3.11 base, then build again"
        if python == BOOTSTRAP_PYTHON
        else f"pull a Python {python} image where a registry is reachable, or use --python {BOOTSTRAP_PYTHON} "
        "with `imgtool base bootstrap`"
    )
    raise EnvironmentProblem(f"base image {name} cannot be pulled ({reason}): {fix}")


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[0] == "deb" and not parts[1].startswith("["):
                return parts[1]
    raise EnvironmentProblem("no Debian mirror found in /etc/apt: pass --mirror URL")


def bootstrap(
    client: docker.DockerClient,
    python: str = BOOTSTRAP_PYTHON,
    mirror: str | None = None,
    force: bool = False,
    tag: str = BOOTSTRAP_IMAGE,
) -> BaseImage:
    """Build a Debian bookworm + python3 base with debootstrap and `docker import`, no registry needed."""
    if python != BOOTSTRAP_PYTHON:
        raise UsageError(
            f"the offline base provides Python {BOOTSTRAP_PYTHON} (Debian {BOOTSTRAP_SUITE}) only: "
            f"use --python {BOOTSTRAP_PYTHON}"
        )
    if image_exists(client, tag) and not force:
        return describe(client, tag)
    if shutil.which("debootstrap") is None:
        raise EnvironmentProblem("debootstrap is not installed: apt-get install -y debootstrap")
    mirror = mirror or debian_mirror()
    with tempfile.TemporaryDirectory(prefix="imgtool-rootfs-") as rootfs:
        run = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BOOTSTRAP_PACKAGES)}",
                BOOTSTRAP_SUITE,
                rootfs,
                mirror,
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            last = (run.stdout + run.stderr).strip().splitlines()[-1:] or ["no output"]
            raise EnvironmentProblem(f"debootstrap failed ({last[0]}): check the mirror {mirror} and disk space")
        root = Path(rootfs)
        # Package caches are build-time only; they would add ~10% to every image.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        changes = [
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f"LABEL {LABEL}=base org.opencontainers.image.title=imgtool-python "
            f"org.opencontainers.image.description=Debian-{BOOTSTRAP_SUITE}-python3-{python}",
        ]
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        command = ["docker", "import", *(arg for change in changes for arg in ("--change", change)), "-", tag]
        imported = subprocess.run(command, stdin=tar.stdout, capture_output=True, text=True)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise EnvironmentProblem(f"docker import failed ({imported.stderr.strip()}): check the engine")
    return describe(client, tag)


def local_bases(client: docker.DockerClient) -> list[BaseImage]:
    """The base images present locally that imgtool can build on: published Python, bootstrapped, per-server."""
    names = {
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.startswith("python:")
        or tag == BOOTSTRAP_IMAGE
        or (image.labels or {}).get(LABEL) == "base"
        or (image.labels or {}).get(SERVER_BASE_LABEL) == "server"
    }
    return [describe(client, name) for name in sorted(names)]
