"""Base images: use a published one (pulled, pinned by digest), or bootstrap one offline."""

from __future__ import annotations

import os
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
from toolkit.engine import image_exists
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.plan import BaseImage
from toolkit.pythons import (
    NEWEST_SCRIPT_FALLBACK,
    OFFLINE_PYTHONS,
    OFFLINE_VERSIONS,
    OfflinePython,
    PythonRequirement,
    available,
    choose,
    offline_python,
)
from toolkit.refs import digest_under, split_ref

# The default offline base (what `imgtool base bootstrap` builds with no flag): Debian bookworm's Python 3.11.
BOOTSTRAP_PYTHON = OFFLINE_PYTHONS[0].python
BOOTSTRAP_SUITE = OFFLINE_PYTHONS[0].suite
BOOTSTRAP_IMAGE = OFFLINE_PYTHONS[0].image
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")


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
    """The base to build on: local if present, else pulled; the offline base of that Python when nothing pulls.

    `requirement` (what the project says about its Python) is checked against the base's Python.
    """
    name = explicit or official_base(python)
    if image_exists(client, name):
        return _check_python(client, describe(client, name), requirement)
    reason = pull(client, name)
    if reason is None:
        return _check_python(client, describe(client, name), requirement)
    offline = offline_python(python)
    if explicit:
        if offline is not None:
            fallback = f"`imgtool base bootstrap --python {python}` and pass --base {offline.image}"
        else:
            fallback = f"`imgtool base bootstrap --python X.Y` (offline: Python {available()}) and pass its image"
        raise EnvironmentProblem(
            f"base image {name} is not here and cannot be pulled ({reason}): pull it, or run {fallback}"
        )
    if offline is not None and image_exists(client, offline.image):
        notice(f"{name} cannot be pulled (no registry reachable); building on the offline base {offline.image}")
        return describe(client, offline.image)
    if offline is None:
        if requirement is not None and not any(requirement.allows(v) for v in OFFLINE_VERSIONS):
            wanted, fix = (
                f"the project needs {requirement.describe()} ({requirement.where})",
                f"change {requirement.where}",
            )
        else:
            wanted, fix = f"Python {python} was asked for", "set --python (or [tool.imgtool] python) to one of them"
        raise EnvironmentProblem(
            f"{wanted}, {name} cannot be pulled ({reason}) and no Debian suite reachable here ships Python {python}: "
            f"offline bases are Python {available()}; {fix}, or pull a Python {python} image where a registry answers"
        )
    raise EnvironmentProblem(
        f"base image {name} cannot be pulled ({reason}): run `imgtool base bootstrap --python {python}` to create "
        f"the offline base {offline.image} (Debian {offline.suite}), then build again"
    )


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
    python: str | None = None,
    mirror: str | None = None,
    force: bool = False,
    tag: str | None = None,
    suite: str | None = None,
) -> BaseImage:
    """Build a Debian + Python base with debootstrap and `docker import`, no registry needed.

    `python` and `suite` pick it (pythons.choose): with neither, bookworm's 3.11.
    """
    chosen = choose(python, suite)
    tag = tag or chosen.image
    if image_exists(client, tag) and not force:
        return describe(client, tag)
    if shutil.which("debootstrap") is None:
        raise EnvironmentProblem("debootstrap is not installed: apt-get install -y debootstrap")
    mirror = mirror or debian_mirror()
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(chosen.packages)}", chosen.suite]
    # A suite newer than this debootstrap has no script of its own: sid's fits every newer suite.
    script = (
        [] if (DEBOOTSTRAP_SCRIPTS / chosen.suite).exists() else [str(DEBOOTSTRAP_SCRIPTS / NEWEST_SCRIPT_FALLBACK)]
    )
    rootfs = tempfile.mkdtemp(prefix="imgtool-rootfs-")
    try:
        run = _run_own_group([*command, rootfs, mirror, *script])
        if run.returncode != 0:
            last = (run.stdout + run.stderr).strip().splitlines()[-1:] or ["no output"]
            raise EnvironmentProblem(
                f"debootstrap of Debian {chosen.suite} with Python {chosen.python} failed ({last[0]}): check the "
                f"suite name and the mirror {mirror}; offline bases known to work: {available()}"
            )
        _unmount_under(rootfs)
        _finish_rootfs(Path(rootfs), chosen)
        _import(rootfs, chosen, tag)
    finally:
        _unmount_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
    return describe(client, tag)


def _run_own_group(argv: list[str]) -> subprocess.CompletedProcess:
    """Run `argv` in its own process group; on any interruption the whole group (dpkg in the chroot too) ends."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        with _quiet():
            os.killpg(process.pid, 9)
        process.wait()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def _unmount_under(root: str) -> None:
    """Whatever debootstrap left mounted in the rootfs (/proc, /sys in the chroot), deepest first."""
    prefix = os.path.realpath(root).rstrip("/") + "/"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted({p for p in points if p.startswith(prefix)}, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _finish_rootfs(root: Path, chosen: OfflinePython) -> None:
    """Drop apt's caches; check the suite's Python is the one asked for; link python3 to a versioned one."""
    # Package caches are build-time only; they would add ~10% to every image.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    interpreter = f"python{chosen.python}"
    if not (root / "usr/bin" / interpreter).is_file():
        raise EnvironmentProblem(f"Debian {chosen.suite} installed no {interpreter}: pick another with --python")
    python3 = root / "usr/bin/python3"
    if chosen.default:
        found = os.readlink(python3) if python3.is_symlink() else "none"
        if found != interpreter:
            raise EnvironmentProblem(
                f"Debian {chosen.suite}'s python3 is {found}, not {interpreter}: pass the version it has with --python"
            )
    else:
        # Not the suite's python3 (that package would pull in another interpreter): imgtool's builds call python3.
        link = root / "usr/local/bin/python3"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f"/usr/bin/{interpreter}")


def _import(rootfs: str, chosen: OfflinePython, tag: str) -> None:
    changes = [
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        f"LABEL {LABEL}=base org.opencontainers.image.title=imgtool-python "
        f"org.opencontainers.image.description=Debian-{chosen.suite}-python3-{chosen.python}",
    ]
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    command = ["docker", "import", *(arg for change in changes for arg in ("--change", change)), "-", tag]
    try:
        imported = subprocess.run(command, stdin=tar.stdout, capture_output=True, text=True)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    if imported.returncode != 0:
        raise EnvironmentProblem(f"docker import failed ({imported.stderr.strip()}): check the engine")


def local_bases(client: docker.DockerClient) -> list[BaseImage]:
    """The base images present locally that imgtool can build on: published Python, bootstrapped, per-server."""
    names = {
        tag
        for image in client.images.list()
        for tag in image.tags
        if tag.startswith("python:")
        or tag in {o.image for o in OFFLINE_PYTHONS}
        or (image.labels or {}).get(LABEL) == "base"
        or (image.labels or {}).get(SERVER_BASE_LABEL) == "server"
    }
    return [describe(client, name) for name in sorted(names)]
