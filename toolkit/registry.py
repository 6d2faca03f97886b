"""Per-server bases in a registry: the address, push, pull, digests, and pinning them in imgtool.lock."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import docker
import docker.errors
import docker.models.images

from toolkit.base import resolve_base
from toolkit.config import Config
from toolkit.containers import PYTHON_LABEL, SERVER_BASE_LABEL, SERVER_LABEL
from toolkit.engine import image_exists
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.lock import LOCK_FILE, Lock, LockEntry, lock_key, lock_path, read_lock, stale_reason, write_lock
from toolkit.plan import BaseImage, server_base_ref
from toolkit.refs import digest_under, split_ref
from toolkit.servers import ServerSpec

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


def lock_bases(
    client: docker.DockerClient,
    config: Config,
    specs: Sequence[ServerSpec],
    registry: str,
    notice: Callable[[str], None],
) -> tuple[Path, list[dict]]:
    """Pin each server's base in `registry` by its digest there, in the project's imgtool.lock (kept entries stay)."""
    lock = read_lock(config.project_dir) or Lock()
    rows = []
    for spec in specs:
        ref = server_base_ref(registry, spec.name, config.python)
        digest = lock_digest(client, ref, notice)
        lock = lock.with_entry(spec.name, config.python, LockEntry(ref, digest))
        rows.append({"server": spec.name, "ref": ref, "digest": digest})
    return write_lock(config.project_dir, lock), rows
