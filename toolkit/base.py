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

from toolkit.config import Config
from toolkit.containers import LABEL, PYTHON_LABEL, SERVER_BASE_LABEL, SERVER_LABEL
from toolkit.detect import PythonRequirement
from toolkit.engine import image_exists
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.lock import LOCK_FILE, LockEntry, lock_key, lock_path, read_lock, stale_reason
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


# ---- per-server bases in a registry: build, push, pull, pin (imgtool.lock) ----

DEFAULT_REGISTRY = "localhost:5000"
# Plain HTTP is for a registry on this machine only; the engine treats these as insecure-allowed.
_LOCAL_REGISTRY_HOSTS = ("localhost", "127.0.0.1")
_REGISTRY_RE = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d{1,5}))?"
    r"(?P<path>(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)$"
)
_UNREACHABLE_MARKERS = ("connection refused", "dial tcp", "no such host", "i/o timeout", "timeout", "EOF")
_NOT_FOUND_MARKERS = ("manifest unknown", "not found", "name unknown")
_AUTH_MARKERS = ("unauthorized", "denied", "authentication required")

ProgressCallback = Callable[[dict], None]


def validate_registry(registry: str) -> str:
    """`host[:port][/path]` for image names; plain HTTP only on this machine, else `https://` must be said."""
    text = registry.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if scheme not in ("", "http", "https"):
        raise UsageError(f"--registry {registry!r}: use host[:port], e.g. --registry {DEFAULT_REGISTRY}")
    match = _REGISTRY_RE.match(rest)
    if not match:
        raise UsageError(f"--registry {registry!r} is not host[:port][/path]: e.g. --registry {DEFAULT_REGISTRY}")
    local = match["host"] in _LOCAL_REGISTRY_HOSTS
    if not local and scheme != "https":
        raise UsageError(
            f"--registry {registry}: plain HTTP is allowed only for localhost and 127.0.0.1; "
            f"pass --registry https://{rest} for a TLS registry"
        )
    return rest


def _reason(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"


def _api_reason(exc: docker.errors.APIError) -> str:
    return _reason(exc.explanation or str(exc))


def _registry_of(ref: str) -> str:
    return ref.split("/", 1)[0]


def _registry_problem(ref: str, reason: str, action: str) -> EnvironmentProblem:
    registry = _registry_of(ref)
    if any(marker in reason for marker in _AUTH_MARKERS):
        return EnvironmentProblem(f"{registry} refused to {action} {ref} ({reason}): run `docker login {registry}`")
    if any(marker in reason for marker in _UNREACHABLE_MARKERS):
        return EnvironmentProblem(
            f"registry {registry} is unreachable ({reason}): start it, or pass the right --registry"
        )
    return EnvironmentProblem(f"cannot {action} {ref} ({reason}): check the registry {registry}")


def repo_digest(client: docker.DockerClient, ref: str) -> str | None:
    """The registry digest the local image `ref` was pushed as or pulled by (RepoDigests), if any."""
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    return digest_under(image, ref)


def registry_digest(client: docker.DockerClient, ref: str) -> tuple[str | None, str | None]:
    """(digest of the tag's manifest in its registry, None) or (None, why it could not be asked)."""
    try:
        return client.images.get_registry_data(ref).id, None
    except docker.errors.APIError as exc:
        return None, _api_reason(exc)


def _local_server_base(client: docker.DockerClient, server: str, python: str) -> docker.models.images.Image | None:
    """The newest local per-server base for (server, python), under any registry name."""
    filters = {"label": [f"{SERVER_BASE_LABEL}=server", f"{SERVER_LABEL}={server}", f"{PYTHON_LABEL}={python}"]}
    images = client.images.list(filters=filters)
    return max(images, key=lambda image: image.attrs.get("Created", ""), default=None)


def push(
    client: docker.DockerClient, ref: str, server: str, python: str, on_event: ProgressCallback | None = None
) -> str:
    """Push the per-server base `ref` (credentials: the standard Docker config); the manifest digest.

    A base built for another registry is tagged `ref` first (and untagged again if the push fails).
    """
    tagged = False
    if not image_exists(client, ref):
        local = _local_server_base(client, server, python)
        if local is None:
            raise UsageError(
                f"there is no local base for {server} on Python {python}: "
                f"run `imgtool base build --server {server} --python {python}` first"
            )
        repository, tag = split_ref(ref)
        local.tag(repository, tag)
        tagged = True
    repository, tag = split_ref(ref)
    digest = None
    try:
        for event in client.images.push(repository, tag=tag, stream=True, decode=True):
            if event.get("error"):
                raise _registry_problem(ref, _reason(event["error"]), "push")
            digest = (event.get("aux") or {}).get("Digest") or digest
            if on_event is not None:
                on_event(event)
    except docker.errors.APIError as exc:
        if tagged:
            client.images.remove(ref, noprune=True)
        raise _registry_problem(ref, _api_reason(exc), "push") from None
    except EnvironmentProblem:
        if tagged:
            client.images.remove(ref, noprune=True)
        raise
    digest = digest or repo_digest(client, ref)
    if digest is None:
        raise EnvironmentProblem(f"pushed {ref} but the engine reported no digest: push again")
    return digest


def pull_stream(client: docker.DockerClient, ref: str, on_event: ProgressCallback | None = None) -> str | None:
    """Pull `name:tag` or `name@sha256:...` with progress events; the reason on failure, None on success."""
    repository, tag = split_ref(ref)
    try:
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if event.get("error"):
                return _reason(event["error"])
            if on_event is not None:
                on_event(event)
    except docker.errors.APIError as exc:
        return _api_reason(exc)
    return None


def pull_server_base(client: docker.DockerClient, ref: str, on_event: ProgressCallback | None = None) -> str:
    """`imgtool base pull`: pull a per-server base by tag; its registry digest."""
    reason = pull_stream(client, ref, on_event)
    if reason is not None:
        if any(marker in reason for marker in _NOT_FOUND_MARKERS):
            raise UsageError(f"{_registry_of(ref)} has no {ref} ({reason}): build and push it with `imgtool base`")
        raise _registry_problem(ref, reason, "pull")
    digest = repo_digest(client, ref)
    if digest is None:
        raise EnvironmentProblem(f"pulled {ref} but the engine recorded no digest: pull again")
    return digest


def lock_digest(client: docker.DockerClient, ref: str, notice: Callable[[str], None]) -> str:
    """The digest `imgtool base lock` pins: the registry's for the tag, else (offline) the local image's."""
    digest, reason = registry_digest(client, ref)
    if digest is not None:
        return digest
    local = repo_digest(client, ref)
    if local is not None:
        notice(f"{_registry_of(ref)} did not answer for {ref} ({reason}); pinned the local image's registry digest")
        return local
    if reason and any(marker in reason for marker in _NOT_FOUND_MARKERS):
        raise UsageError(
            f"{_registry_of(ref)} has no {ref} ({reason}): `imgtool base build` and `imgtool base push` it first"
        )
    raise _registry_problem(ref, reason or "no digest", "look up")


def _locked_base(
    client: docker.DockerClient,
    entry: LockEntry,
    server: str,
    python: str,
    notice: Callable[[str], None],
    on_event: ProgressCallback | None,
) -> BaseImage:
    """The locked per-server base, present locally by digest (pulled by digest if it is not)."""
    by_digest = f"{entry.repository}@{entry.digest}"
    if not image_exists(client, by_digest):
        notice(f"pulling the locked base {entry.ref}@{entry.digest[:19]}…")
        reason = pull_stream(client, by_digest, on_event)
        if reason is not None:
            if any(marker in reason for marker in _NOT_FOUND_MARKERS):
                raise UsageError(
                    f"{LOCK_FILE} pins {entry.ref} to {entry.digest}, which {_registry_of(entry.ref)} does not have "
                    f"({reason.rsplit(': ', 1)[-1]}): the lock is tampered or outdated; run `imgtool base lock` "
                    "to re-pin it"
                )
            raise _registry_problem(entry.pinned, reason, "pull the locked base")
    labels = client.images.get(by_digest).labels or {}
    if labels.get(SERVER_BASE_LABEL) != "server" or labels.get(SERVER_LABEL) != server:
        raise UsageError(
            f"{LOCK_FILE} entry {lock_key(server, python)} names {entry.ref}, which is not an imgtool base for "
            f"{server}: run `imgtool base build --server {server}`, push it and `imgtool base lock` again"
        )
    return BaseImage(name=entry.ref, digest=entry.digest, server_base=True)


def resolve_bases(
    client: docker.DockerClient,
    config: Config,
    servers: list[str],
    base_flag: str | None,
    frozen: bool,
    notice: Callable[[str], None],
    on_event: ProgressCallback | None = None,
) -> dict[str, BaseImage]:
    """The base for each server: the per-server base from imgtool.lock when it has one, else the root base.

    `frozen`: every server must be locked, and the lock must match what the registry (or, offline,
    the local image) has for its tag now.
    """
    path = lock_path(config.project_dir)
    lock = read_lock(config.project_dir)
    if frozen and base_flag:
        raise UsageError(f"--frozen builds on the bases pinned in {LOCK_FILE}: drop --base {base_flag}")
    if frozen and lock is None:
        raise UsageError(
            f"--frozen needs {path}, which does not exist: run `imgtool base lock --context {config.project_dir}`"
        )
    if lock is not None and base_flag:
        notice(f"--base {base_flag} given: {path} is not used")
        lock = None
    bases: dict[str, BaseImage] = {}
    root: BaseImage | None = None
    for server in servers:
        entry = lock.entry(server, config.python) if lock is not None else None
        if frozen:
            observed = None
            if entry is not None:
                observed, _ = registry_digest(client, entry.ref)
                observed = observed or repo_digest(client, entry.ref)
            why = stale_reason(lock, server, config.python, observed)
            if why is not None:
                raise UsageError(
                    f"--frozen: {why}: run `imgtool base lock --server {server} --python {config.python} "
                    f"--context {config.project_dir}`"
                )
        if entry is None:
            if lock is not None:
                notice(f"{LOCK_FILE} has no {lock_key(server, config.python)} base: building on the Python base")
            root = root or resolve_base(client, config.base, config.python, notice, config.python_requirement)
            bases[server] = root
        else:
            bases[server] = _locked_base(client, entry, server, config.python, notice, on_event)
    return bases


def validate_python(python: str) -> str:
    if not re.match(r"^3\.\d{1,2}$", python):
        raise UsageError(f"python version {python!r} is not X.Y: pass e.g. --python 3.11")
    return python
