"""The one writer of the files imgtool leaves for people: whole or not at all, with a one-line reason."""

from __future__ import annotations

import errno
import os

import pytest

from toolkit import files
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.files import write_text_atomic


def test_writes_a_new_file_with_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "compose.yaml", "services: {}\n")
    finally:
        os.umask(umask)
    assert path.read_text() == "services: {}\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"]


def test_replaces_an_existing_file_and_keeps_its_permissions(tmp_path):
    path = tmp_path / "imgtool.lock"
    path.write_text("old\n")
    path.chmod(0o600)
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o600


def test_a_symlink_stays_a_symlink(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text("old\n")
    link = tmp_path / "pyproject.toml"
    link.symlink_to(real)
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_failing_check_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("old\n")
    seen = []

    def reject(temporary):
        seen.append((temporary.parent, temporary.read_text()))
        raise EnvironmentProblem("rejected")

    with pytest.raises(EnvironmentProblem, match="rejected"):
        write_text_atomic(path, "new\n", before_replace=reject)
    assert seen == [(tmp_path, "new\n")]  # the check saw the whole text, beside the target
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"]


def test_a_missing_directory_is_a_usage_error_naming_it(tmp_path):
    path = tmp_path / "missing" / "compose.yaml"
    with pytest.raises(UsageError, match=rf"cannot write {path}: directory {path.parent} does not exist"):
        write_text_atomic(path, "x")


def test_a_directory_in_the_way_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="it is a directory"):
        write_text_atomic(tmp_path, "x")


def test_an_unwritable_directory_is_a_usage_error_naming_the_fix(tmp_path, monkeypatch):
    def denied(**_):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", denied)
    with pytest.raises(UsageError, match=r"is not writable \(Permission denied\): fix its permissions"):
        write_text_atomic(tmp_path / "docker-bake.hcl", "x")


def test_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "workflow.yml"
    path.write_text("old\n")

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(EnvironmentProblem, match=r"cannot write .*workflow.yml \(No space left on device\)"):
        write_text_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["workflow.yml"]


def test_a_build_file_whose_helper_copy_cannot_be_written_is_one_usage_error_and_the_old_file_stays(
    tmp_path, monkeypatch
):
    from toolkit import buildfiles

    output = tmp_path / "compose.yaml"
    output.write_text("old\n")

    def refuse(context, dest):
        raise PermissionError(errno.EACCES, "Permission denied", str(dest / "uv"))

    monkeypatch.setattr(buildfiles, "copy_beside", refuse)
    with pytest.raises(UsageError, match=r"cannot write .*\.imgtool/assets/uv: directory .* is not writable"):
        buildfiles.write(output, "new\n", {tmp_path / ".imgtool" / "x.Dockerfile": "FROM scratch\n"}, tmp_path)
    assert output.read_text() == "old\n"
    assert not list(tmp_path.glob(".compose.yaml.*"))
