"""The value checks every option and setting goes through: what passes, what is refused, and the message."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import validate
from toolkit.validate import Invalid


@pytest.mark.parametrize("value", ["main:app", "my.pkg.web:application", "app:create_app()", "a:b.c"])
def test_app_refs_that_pass(value):
    assert validate.app_ref(value) == value


@pytest.mark.parametrize("value", ["", " ", "main", "main:", ":app", "main:app()x", "1x:app", "a b:app", "m:a\n"])
def test_app_refs_refused(value):
    with pytest.raises(Invalid):
        validate.app_ref(value)


@pytest.mark.parametrize(
    "value",
    [
        "python",
        "python:3.12-slim",
        "imgtool/python:3.11-bookworm",
        "localhost:5000/imgtool-base:granian-py3.11",
        "ghcr.io/org/app@sha256:" + "a" * 64,
        "registry.example:443/a/b/c:v1.2.3",
    ],
)
def test_image_references_that_pass(value):
    assert validate.image_reference(value) == value


@pytest.mark.parametrize(
    "value", ["", "UPPER:case", "a b", "name:", "x" * 300, "app@sha256:short", "-leading", "a;rm", "app:tag\x00"]
)
def test_image_references_refused(value):
    with pytest.raises(Invalid):
        validate.image_reference(value)


def test_a_tag_takes_no_digest():
    with pytest.raises(Invalid):
        validate.image_tag("app@sha256:" + "a" * 64)
    assert validate.image_tag("myapp:granian") == "myapp:granian"


@pytest.mark.parametrize("value", ["/", "/health", "/api/v1/healthz?full=1", "/a-b_c.d~e"])
def test_url_paths_that_pass(value):
    assert validate.url_path(value) == value


@pytest.mark.parametrize("value", ["", "health", "/a b", "/x\n", "/" + "a" * 3000, '/"quoted"'])
def test_url_paths_refused(value):
    with pytest.raises(Invalid):
        validate.url_path(value)


def test_env_pairs():
    assert validate.env_pair("A=1") == ("A", "1")
    assert validate.env_pair("DATABASE_URL=postgres://u:p@h/db?x=y") == ("DATABASE_URL", "postgres://u:p@h/db?x=y")
    assert validate.env_pair("EMPTY=") == ("EMPTY", "")
    for bad in ("", "NOEQUALS", "=value", "1A=x", "A B=x", "A=line\nbreak"):
        with pytest.raises(Invalid):
            validate.env_pair(bad)


def test_numbers_and_their_limits():
    assert validate.port(8000) == 8000 and validate.port(65535) == 65535
    for bad in (0, -1, 65536):
        with pytest.raises(Invalid):
            validate.port(bad)
    with pytest.raises(Invalid, match="1024 to 65535"):
        validate.port(80, low=1024)
    assert validate.positive_seconds(0.5) == 0.5
    for bad in (0.0, -1.0, math.nan, math.inf, 1e9):
        with pytest.raises(Invalid):
            validate.positive_seconds(bad)
    assert validate.count(4) == 4
    for bad in (0, -3, 10**6):
        with pytest.raises(Invalid):
            validate.count(bad)


def test_safe_words_refuse_shell_metacharacters():
    assert validate.safe_words("imgtool-asgi==0.1.0 --pre", "--install") == "imgtool-asgi==0.1.0 --pre"
    for bad in ("", "a;b", "$(id)", "`id`", "a|b", "a&b", "x" * 600, "a\nb"):
        with pytest.raises(Invalid):
            validate.safe_words(bad, "--install")


def test_directories(tmp_path):
    assert validate.existing_dir(tmp_path) == tmp_path
    (tmp_path / "f").write_text("x")
    for bad in (tmp_path / "missing", tmp_path / "f", Path("/dev/null"), Path("/proc")):
        with pytest.raises(Invalid):
            validate.existing_dir(bad)


def test_pem_bundles(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert validate.pem_bundle(pem) == pem
    (tmp_path / "not.pem").write_text("hello")
    for bad in (tmp_path / "not.pem", tmp_path, Path("/dev/null"), tmp_path / "missing"):
        with pytest.raises(Invalid):
            validate.pem_bundle(bad)


def test_output_files(tmp_path):
    assert validate.output_file(tmp_path / "new.yaml") == tmp_path / "new.yaml"
    existing = tmp_path / "old.yaml"
    existing.write_text("x")
    assert validate.output_file(existing) == existing
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        bad = [tmp_path, Path("/dev/null"), Path("/proc/imgtool-x"), tmp_path / "missing" / "x.yaml"]
        if os.geteuid() != 0:  # root writes anywhere: the permission bits do not stop it
            bad.append(readonly / "x.yaml")
        for path in bad:
            with pytest.raises(Invalid):
                validate.output_file(path)
    finally:
        readonly.chmod(0o700)


def test_messages_are_one_line_and_name_the_fix():
    for call in (
        lambda: validate.app_ref("nope"),
        lambda: validate.image_reference("A B"),
        lambda: validate.port(0),
        lambda: validate.url_path("x"),
        lambda: validate.python_version("3"),
    ):
        with pytest.raises(Invalid) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and ":" in message and ("e.g." in message or "use" in message)


# ---- properties over generated values (Hypothesis) ----

TEXT = st.text(st.characters(codec="utf-8"), max_size=300)
TEXT_CHECKS = [
    validate.app_ref,
    validate.python_version,
    validate.image_reference,
    validate.image_tag,
    validate.url_path,
    validate.env_pair,
    validate.url,
    validate.relative_path,
    validate.pip_arguments,
    lambda value: validate.safe_words(value, "the value"),
]


@pytest.mark.parametrize("check", TEXT_CHECKS)
@settings(max_examples=300, deadline=None)
@given(value=TEXT)
def test_any_text_is_accepted_or_refused_in_one_line(check, value):
    try:
        check(value)
    except Invalid as refused:
        message = str(refused)
        assert "\n" not in message and ": " in message and len(message) < 400
    else:
        assert not any(ord(char) < 32 or ord(char) == 127 for char in value.replace("\t", ""))


@settings(max_examples=300, deadline=None)
@given(value=TEXT)
def test_an_accepted_image_reference_is_one_docker_parses_the_same_way(value):
    from docker.utils import parse_repository_tag

    try:
        validate.image_reference(value)
    except Invalid:
        return
    repository, tag = parse_repository_tag(value)
    # Docker reads it as the same name and tag (or digest) the grammar matched: nothing is left over.
    assert repository and value.startswith(repository)
    assert value == repository if tag is None else value.endswith(tag) and len(repository) < len(value)


@settings(max_examples=300, deadline=None)
@given(value=st.integers(min_value=-(2**40), max_value=2**40))
def test_ports_outside_the_tcp_range_are_refused(value):
    try:
        assert validate.port(value) == value and 1 <= value <= 65535
    except Invalid:
        assert not 1 <= value <= 65535


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_seconds_are_positive_finite_and_bounded(value):
    try:
        assert 0 < validate.positive_seconds(value) <= 3600
    except Invalid:
        assert not 0 < value <= 3600
