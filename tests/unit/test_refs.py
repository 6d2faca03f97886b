"""Image references: split by the Docker SDK's parser, compared by repository; no Docker needed."""

from __future__ import annotations

import pytest

from toolkit.plan import BaseImage
from toolkit.refs import digest_under, repository_of, same_repository, split_ref

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
REF = "localhost:5000/imgtool-base:granian-py3.11"


def test_split_ref_handles_ports_tags_and_digests():
    assert split_ref(REF) == ("localhost:5000/imgtool-base", "granian-py3.11")
    assert split_ref(f"{REF}@{DIGEST_A}") == ("localhost:5000/imgtool-base", DIGEST_A)
    assert split_ref(f"localhost:5000/imgtool-base@{DIGEST_A}") == ("localhost:5000/imgtool-base", DIGEST_A)
    assert split_ref("localhost:5000/imgtool-base") == ("localhost:5000/imgtool-base", "latest")
    assert split_ref("python:3.12-slim") == ("python", "3.12-slim")
    assert split_ref("python") == ("python", "latest")


@pytest.mark.parametrize(
    ("ref", "repository"),
    [(REF, "localhost:5000/imgtool-base"), (f"python:3.12-slim@{DIGEST_A}", "python"), ("a/b/c", "a/b/c")],
)
def test_repository_of(ref, repository):
    assert repository_of(ref) == repository


def test_docker_hub_names_compare_in_their_long_form():
    assert same_repository("python", "docker.io/library/python")
    assert same_repository("team/app", "docker.io/team/app")
    assert not same_repository("localhost:5000/python", "python")


class _Image:
    def __init__(self, digests):
        self.attrs = {"RepoDigests": digests}


def test_only_a_digest_under_the_same_repository_pins_a_name():
    image = _Image([f"localhost:5000/other@{DIGEST_A}", f"python@{DIGEST_B}"])
    assert digest_under(image, "python:3.12-slim") == DIGEST_B
    assert digest_under(image, "docker.io/library/python:3.12-slim") == DIGEST_B
    assert digest_under(image, "imgtool-reference-app:granian") is None
    assert digest_under(_Image(None), "python") is None


def test_a_per_server_base_is_pinned_by_repository_and_digest():
    base = BaseImage(name=REF, digest=DIGEST_A, server_base=True)
    assert base.ref == f"localhost:5000/imgtool-base@{DIGEST_A}"
    assert BaseImage(name="python:3.12-slim", digest=DIGEST_A).ref == f"python:3.12-slim@{DIGEST_A}"
