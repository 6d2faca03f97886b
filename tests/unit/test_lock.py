"""imgtool.lock (read, write, stale detection) and registry names: no Docker needed."""

from __future__ import annotations

import pytest

from toolkit.errors import UsageError
from toolkit.lock import (
    LOCK_FILE,
    Lock,
    LockEntry,
    dump_lock,
    lock_key,
    parse_lock,
    read_lock,
    stale_reason,
    write_lock,
)
from toolkit.registry import validate_registry

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
REF = "localhost:5000/imgtool-base:granian-py3.11"


def test_write_then_read_round_trips_and_is_sorted(tmp_path):
    lock = Lock().with_entry("uvicorn", "3.11", LockEntry(REF.replace("granian", "uvicorn"), DIGEST_B))
    lock = lock.with_entry("granian", "3.11", LockEntry(REF, DIGEST_A))
    path = write_lock(tmp_path, lock)
    assert path == tmp_path / LOCK_FILE
    assert read_lock(tmp_path) == lock
    text = path.read_text()
    assert text.index('[bases."granian-py3.11"]') < text.index('[bases."uvicorn-py3.11"]')
    assert f'digest = "{DIGEST_A}"' in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_update_keeps_other_entries_and_replaces_the_same_key(tmp_path):
    write_lock(tmp_path, Lock().with_entry("uvicorn", "3.11", LockEntry(REF, DIGEST_A)))
    lock = read_lock(tmp_path).with_entry("granian", "3.11", LockEntry(REF, DIGEST_A))
    lock = lock.with_entry("granian", "3.11", LockEntry(REF, DIGEST_B))
    write_lock(tmp_path, lock)
    again = read_lock(tmp_path)
    assert set(again.bases) == {"granian-py3.11", "uvicorn-py3.11"}
    assert again.entry("granian", "3.11").digest == DIGEST_B


def test_no_lock_file_is_none(tmp_path):
    assert read_lock(tmp_path) is None


def test_entry_pins_ref_and_digest():
    entry = LockEntry(REF, DIGEST_A)
    assert entry.repository == "localhost:5000/imgtool-base"
    assert entry.pinned == f"{REF}@{DIGEST_A}"
    assert LockEntry("localhost:5000/imgtool-base", DIGEST_A).repository == "localhost:5000/imgtool-base"


def test_stale_reasons():
    lock = Lock().with_entry("granian", "3.11", LockEntry(REF, DIGEST_A))
    assert stale_reason(lock, "granian", "3.11", DIGEST_A) is None
    # Nothing could be asked (offline): not evidence of staleness.
    assert stale_reason(lock, "granian", "3.11", None) is None
    assert "now" in stale_reason(lock, "granian", "3.11", DIGEST_B)
    assert lock_key("granian", "3.12") in stale_reason(lock, "granian", "3.12", DIGEST_A)
    assert "uvicorn-py3.11" in stale_reason(lock, "uvicorn", "3.11", None)
    assert "no imgtool.lock" in stale_reason(None, "granian", "3.11", None)


@pytest.mark.parametrize(
    "text",
    [
        "version = [",  # not TOML
        "version = 2\n",
        'extra = "x"\n',
        '[bases."granian-py3.11"]\nref = "r:t"\n',  # no digest
        f'[bases."granian-py3.11"]\nref = "{REF}"\ndigest = "sha256:abc"\n',  # short digest
        f'[bases."granian-py3.11"]\nref = "{REF}@{DIGEST_A}"\ndigest = "{DIGEST_A}"\n',  # digest in ref
        f'[bases."granian"]\nref = "{REF}"\ndigest = "{DIGEST_A}"\n',  # key without -pyX.Y
        f'[bases."granian-py3.11"]\nref = "{REF}"\ndigest = "{DIGEST_A}"\nextra = 1\n',
    ],
)
def test_malformed_lock_is_a_one_line_usage_error(text):
    with pytest.raises(UsageError) as caught:
        parse_lock(text)
    message = str(caught.value)
    assert "\n" not in message
    assert "imgtool base lock" in message or "upgrade imgtool" in message


def test_dump_is_valid_toml_with_a_header():
    text = dump_lock(Lock().with_entry("granian", "3.11", LockEntry(REF, DIGEST_A)))
    assert text.startswith("# imgtool.lock")
    assert parse_lock(text).entry("granian", "3.11") == LockEntry(REF, DIGEST_A)


@pytest.mark.parametrize(
    ("registry", "name"),
    [
        ("localhost:5000", "localhost:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://localhost:5000/", "localhost:5000"),
        ("localhost:5000/team", "localhost:5000/team"),
        ("https://registry.example.com", "registry.example.com"),
        ("https://registry.example.com:8443/team/sub", "registry.example.com:8443/team/sub"),
    ],
)
def test_valid_registries(registry, name):
    assert validate_registry(registry) == name


@pytest.mark.parametrize(
    "registry",
    ["registry.example.com", "http://registry.example.com", "ftp://localhost", "local host", "localhost:5000/Team", ""],
)
def test_plain_http_only_for_this_machine_and_bad_names_refused(registry):
    with pytest.raises(UsageError):
        validate_registry(registry)
