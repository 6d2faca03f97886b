"""Image references, `[host[:port]/]path[:tag][@digest]`: split by the Docker SDK's own parser, compared by
repository, and the registry digest an image carries under a name. No engine calls here."""

from __future__ import annotations

from docker.utils import parse_repository_tag


def split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag or digest) of `name:tag`, `name@sha256:...` or `name:tag@sha256:...`.

    A registry port's colon is not a tag's (`localhost:5000/name`), and no tag means `latest`.
    """
    repository, reference = parse_repository_tag(ref)
    if "@" in ref:
        repository = parse_repository_tag(repository)[0]  # the tag before a digest names nothing more
    return repository, reference or "latest"


def repository_of(ref: str) -> str:
    """`ref` without its tag and digest."""
    return split_ref(ref)[0]


def same_repository(a: str, b: str) -> bool:
    """`python` and `docker.io/library/python` name the same repository."""

    def canonical(name: str) -> str:
        first = name.split("/", 1)[0]
        if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
            name = f"docker.io/{name if '/' in name else 'library/' + name}"
        return name

    return canonical(a) == canonical(b)


def digest_under(image, ref: str) -> str | None:
    """The registry digest the image was pushed as or pulled by under `ref`'s own repository (RepoDigests).

    Only a digest under this very name pins it: the same image pushed elsewhere (a local registry) has a
    RepoDigest under that other name, which `name@digest` would look for in vain.
    """
    repository = repository_of(ref)
    digests = sorted(
        digest
        for entry in image.attrs.get("RepoDigests") or []
        for named, _, digest in [entry.partition("@")]
        if digest and same_repository(named, repository)
    )
    return digests[0] if digests else None
