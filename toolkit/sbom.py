"""The image's CycloneDX SBOM: made in a builder stage (images/fragments/sbom.j2), read back out here.

Every image imgtool builds carries it at SBOM_PATH (label `imgtool.sbom`): the Python packages of its
venv (cyclonedx-py) and the Debian packages of its runtime (dpkg's database), validated against the
CycloneDX 1.6 schema in the build. `imgtool build --sbom FILE` copies it out; `imgtool sign --sbom FILE`
attaches it to the image in a registry as a signed CycloneDX attestation.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import docker
import docker.errors

from toolkit import validate
from toolkit.errors import BuildFailed, UsageError
from toolkit.plan import SBOM_PATH

SBOM_LABEL = "imgtool.sbom"


def read_from_image(client: docker.DockerClient, image: str) -> bytes:
    """The SBOM file of a local image, copied out of a created (never started) container."""
    labels = client.images.get(image).labels or {}
    path = labels.get(SBOM_LABEL, SBOM_PATH)
    container = client.containers.create(image)
    try:
        chunks, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.extractfile(Path(path).name)
            if member is None:
                raise BuildFailed(f"{image} has no SBOM file at {path}")
            return member.read()
    except docker.errors.NotFound:
        raise BuildFailed(f"{image} carries no SBOM at {path}: build it with this imgtool") from None
    finally:
        container.remove(force=True)


def summary(data: bytes) -> dict[str, int]:
    """Size and component counts: all, Python (pkg:pypi), Debian (pkg:deb)."""
    components = json.loads(data).get("components", [])
    kinds = Counter(component.get("purl", "").partition("/")[0] for component in components)
    return {
        "bytes": len(data),
        "components": len(components),
        "python": kinds["pkg:pypi"],
        "debian": kinds["pkg:deb"],
    }


def output_path(pattern: Path, server: str, several: bool) -> Path:
    """Where `--sbom` writes one server's SBOM; with several servers the path must contain {server}."""
    text = str(pattern)
    if several and "{server}" not in text:
        raise UsageError(f"--sbom {text!r} would write every server's SBOM to one file: put {{server}} in it")
    return validate.output_file(Path(text.replace("{server}", server)))
