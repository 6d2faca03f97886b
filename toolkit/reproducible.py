"""Reproducible builds: the epoch every timestamp is pinned to, and the digest of an exported OCI image.

`imgtool build --reproducible` passes SOURCE_DATE_EPOCH (below) as a build arg, exports an OCI archive
with `rewrite-timestamp=true` (every file newer than the epoch gets the epoch as its mtime; the image
config's `created` and history use it too) and loads that archive. What stays variable otherwise —
bytecode, /etc/shadow's date — the Dockerfile pins from the same epoch (images/Dockerfile.j2).
No I/O here beyond reading the context, git and an archive.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import BuildFailed, UsageError

# Not part of what an image is built from; their mtimes must not move the epoch.
_SKIPPED_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".imgtool"}
_INDEX = "application/vnd.oci.image.index.v1+json"
_ATTESTATION = "attestation-manifest"


@dataclass(frozen=True)
class Epoch:
    seconds: int
    source: str  # said in one line: where the epoch came from


def parse_epoch(value: str, origin: str) -> int:
    try:
        seconds = int(value.strip())
    except ValueError:
        raise UsageError(
            f"{origin}={value!r} is not a Unix time: use whole seconds, e.g. $(git log -1 --format=%ct)"
        ) from None
    if seconds < 0:
        raise UsageError(f"{origin}={value!r} is negative: use whole seconds since 1970")
    return seconds


def git_commit_time(context: Path) -> int | None:
    """The time of the last commit that touched `context`, when it is a clean part of a git work tree."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(context), *args], capture_output=True, text=True, timeout=30)

    try:
        inside = git("rev-parse", "--is-inside-work-tree")
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        # Uncommitted changes are not what the commit says: then the newest file decides.
        if git("status", "--porcelain", "--untracked-files=normal", "--", ".").stdout.strip():
            return None
        stamp = git("log", "-1", "--format=%ct", "--", ".").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(stamp) if stamp.isdigit() else None


def newest_mtime(context: Path) -> int:
    """The newest modification time of a file in `context` (whole seconds); 0 for an empty context."""
    newest = 0.0
    for folder, dirs, files in os.walk(context):
        dirs[:] = [name for name in dirs if name not in _SKIPPED_DIRS]
        for name in files:
            path = Path(folder) / name
            try:
                newest = max(newest, path.lstat().st_mtime)
            except OSError:
                continue
    return int(newest)


def source_date_epoch(context: Path, environ: Mapping[str, str] | None = None) -> Epoch:
    """SOURCE_DATE_EPOCH from the environment, else the last commit of a clean context, else its newest file."""
    environ = os.environ if environ is None else environ
    if environ.get("SOURCE_DATE_EPOCH"):
        return Epoch(parse_epoch(environ["SOURCE_DATE_EPOCH"], "SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH")
    commit = git_commit_time(context)
    if commit is not None:
        return Epoch(commit, "the last commit of the context")
    return Epoch(newest_mtime(context), "the newest file of the context (not a clean git checkout)")


def oci_output(dest: Path, name: str) -> str:
    """The buildx `--output` for a reproducible build: an OCI archive, file times pinned to the epoch."""
    return f"type=oci,dest={dest},name={name},rewrite-timestamp=true"


@dataclass(frozen=True)
class OciDigests:
    top: str  # what index.json points at: what `docker load` names the image by on a containerd store
    image: str  # the platform's image manifest (attestation manifests left aside)
    config: str  # the image config: the image id on a classic (graph driver) store


def _json_member(archive: tarfile.TarFile, name: str) -> dict:
    member = archive.extractfile(name)
    if member is None:
        raise BuildFailed(f"the exported OCI archive has no {name}")
    return json.loads(member.read())


def _blob(archive: tarfile.TarFile, digest: str) -> dict:
    algorithm, _, hexdigest = digest.partition(":")
    return _json_member(archive, f"blobs/{algorithm}/{hexdigest}")


def oci_digests(archive_path: Path) -> OciDigests:
    """Read an OCI image archive (one platform, maybe with attestations) and name its digests."""
    with tarfile.open(archive_path) as archive:
        index = _json_member(archive, "index.json")
        manifests = index.get("manifests") or []
        if len(manifests) != 1:
            raise BuildFailed(f"the exported OCI archive names {len(manifests)} images, expected one")
        top = manifests[0]
        descriptor = top
        if top.get("mediaType") == _INDEX:
            images = [
                entry
                for entry in _blob(archive, top["digest"]).get("manifests", [])
                if (entry.get("annotations") or {}).get("vnd.docker.reference.type") != _ATTESTATION
            ]
            if len(images) != 1:
                raise BuildFailed(f"the exported OCI archive holds {len(images)} platform images, expected one")
            descriptor = images[0]
        manifest = _blob(archive, descriptor["digest"])
    return OciDigests(top=top["digest"], image=descriptor["digest"], config=manifest["config"]["digest"])
