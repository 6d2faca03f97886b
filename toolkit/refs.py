"""Image references, `[host[:port]/]path[:tag][@digest]`: split by the Docker SDK's own parser, compared by
repository, the registry digest an image carries under a name, and the refs a stack runs (pinned where known)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from docker.utils import parse_repository_tag

if TYPE_CHECKING:
    from toolkit.plan import BuildPlan


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


def image_refs(
    client, plans: Sequence[BuildPlan], notice: Callable[[str], None], cluster: bool = False
) -> dict[str, str]:
    """Each plan's tag, pinned `tag@sha256:...` when the engine knows a registry digest for that name.

    On a `cluster` (Swarm, Kubernetes) every node pulls the image itself: the registry the tag names is
    asked first (through the engine, no local copy needed), and an unpinned tag gets a note.
    """
    import docker.errors

    from toolkit.plan import names_registry

    refs = {}
    missing = []
    for plan in plans:
        ref = plan.tag
        if cluster and names_registry(plan.tag):
            try:
                refs[plan.server.name] = f"{plan.tag}@{client.images.get_registry_data(plan.tag).id}"
                continue
            except docker.errors.APIError:
                pass  # not pushed (yet), or the registry does not answer: the local digest, if any
        try:
            image = client.images.get(plan.tag)
        except docker.errors.ImageNotFound:
            missing.append(plan.server.name)
        else:
            digest = digest_under(image, plan.tag)
            if digest:
                ref = f"{plan.tag}@{digest}"
        refs[plan.server.name] = ref
    if missing and not cluster:
        notice(
            f"no image built yet for {', '.join(missing)}: run `imgtool build "
            f"{' '.join('-s ' + name for name in missing)}` before `docker compose up`, or emit with --build"
        )
    unpinned = [name for name, ref in refs.items() if "@sha256:" not in ref]
    if cluster and unpinned:
        notice(
            f"{', '.join(unpinned)}: no registry digest known here, so every node resolves the tag itself; "
            "push first (`imgtool build --push --tag REGISTRY/NAME:{server}`) and emit with that --tag to pin it"
        )
    return refs
