"""`imgtool.lock`: per-server base images pinned by registry digest, in the user's project. No Docker here.

    # imgtool.lock ...
    version = 1

    [bases."granian-py3.11"]
    ref = "localhost:5000/imgtool-base:granian-py3.11"
    digest = "sha256:..."

`imgtool base lock` writes it; `imgtool build` builds `FROM ref@digest` from it; `--frozen` refuses a
missing or stale lock. Only this module reads or writes the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from toolkit.errors import UsageError
from toolkit.files import write_text_atomic
from toolkit.refs import repository_of

LOCK_FILE = "imgtool.lock"
LOCK_VERSION = 1
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_KEY_RE = re.compile(r"^[a-z0-9-]+-py3\.\d{1,2}$")
_HEADER = (
    "# imgtool.lock: the per-server base images this project builds on, pinned by registry digest.\n"
    "# Written by `imgtool base lock`; commit it. `imgtool build --frozen` refuses a missing or stale lock.\n"
)


def lock_key(server: str, python: str) -> str:
    return f"{server}-py{python}"


def lock_path(context: Path) -> Path:
    return context / LOCK_FILE


def valid_digest(digest: str) -> bool:
    return bool(_DIGEST_RE.match(digest))


@dataclass(frozen=True)
class LockEntry:
    ref: str  # the readable tag, e.g. localhost:5000/imgtool-base:granian-py3.11
    digest: str  # sha256:... of the manifest in the registry

    @property
    def repository(self) -> str:
        """`ref` without its tag (a port's colon is not a tag's)."""
        return repository_of(self.ref)

    @property
    def pinned(self) -> str:
        """What FROM names: the tag for reading, the digest for what is used."""
        return f"{self.ref}@{self.digest}"


@dataclass(frozen=True)
class Lock:
    bases: dict[str, LockEntry] = field(default_factory=dict)

    def entry(self, server: str, python: str) -> LockEntry | None:
        return self.bases.get(lock_key(server, python))

    def with_entry(self, server: str, python: str, entry: LockEntry) -> Lock:
        return replace(self, bases={**self.bases, lock_key(server, python): entry})


def stale_reason(lock: Lock | None, server: str, python: str, observed: str | None) -> str | None:
    """Why the lock cannot be used as is for (server, python); None when it can.

    `observed` is the digest the registry (or, offline, the local image) has for the entry's tag now;
    None when neither could be asked, which is not evidence of staleness.
    """
    if lock is None:
        return f"there is no {LOCK_FILE}"
    entry = lock.entry(server, python)
    if entry is None:
        return f"{LOCK_FILE} has no entry {lock_key(server, python)!r}"
    if observed is not None and observed != entry.digest:
        return f"{LOCK_FILE} pins {entry.ref} to {entry.digest[:19]}… but it is now {observed[:19]}…"
    return None


def parse_lock(text: str, where: str = LOCK_FILE) -> Lock:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML ({exc}): run `imgtool base lock` to rewrite it") from None
    version = data.get("version", LOCK_VERSION)
    if version != LOCK_VERSION:
        raise UsageError(f"{where} has version {version!r}, this imgtool reads {LOCK_VERSION}: upgrade imgtool")
    unknown = set(data) - {"version", "bases"}
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}: run `imgtool base lock`")
    bases = data.get("bases", {})
    if not isinstance(bases, dict):
        raise UsageError(f"{where}: bases must be a table: run `imgtool base lock` to rewrite it")
    entries = {}
    for key, value in bases.items():
        if not _KEY_RE.match(key) or not isinstance(value, dict) or set(value) != {"ref", "digest"}:
            raise UsageError(
                f"{where}: base entry {key!r} must be named <server>-py<X.Y> and have only ref and digest: "
                "run `imgtool base lock`"
            )
        ref, digest = value["ref"], value["digest"]
        if not isinstance(ref, str) or not isinstance(digest, str) or not valid_digest(digest) or "@" in ref:
            raise UsageError(
                f"{where}: base entry {key!r} needs ref = registry/name:tag and digest = sha256:<64 hex>: "
                "run `imgtool base lock` to re-pin it"
            )
        entries[key] = LockEntry(ref, digest)
    return Lock(entries)


def read_lock(context: Path) -> Lock | None:
    """The project's lock, or None when it has none."""
    path = lock_path(context)
    if not path.is_file():
        return None
    return parse_lock(path.read_text(), str(path))


def dump_lock(lock: Lock) -> str:
    # JSON strings of the ASCII refs and digests written here are valid TOML basic strings.
    lines = [_HEADER, f"version = {LOCK_VERSION}\n"]
    for key in sorted(lock.bases):
        entry = lock.bases[key]
        lines.append(f"\n[bases.{json.dumps(key)}]\n")
        lines.append(f"ref = {json.dumps(entry.ref)}\ndigest = {json.dumps(entry.digest)}\n")
    return "".join(lines)


def write_lock(context: Path, lock: Lock) -> Path:
    """Write atomically: a build reading the lock never sees half a file."""
    return write_text_atomic(lock_path(context), dump_lock(lock))
