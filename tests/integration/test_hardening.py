"""Hardened images: no setuid binaries added, no build secret (the CA bundle) in any layer."""

from __future__ import annotations

import io
import json
import tarfile

import trustme

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import copy_reference_app
from toolkit.engine import SYSTEM_CA_BUNDLE

# `find / -xdev -perm -4000 -type f` in Python: a distroless image has no find (and no shell).
SETUID_PROBE = (
    "import os, stat\n"
    "root = os.lstat('/').st_dev\n"
    "for directory, subdirs, files in os.walk('/'):\n"
    "    subdirs[:] = [d for d in subdirs if os.lstat(os.path.join(directory, d)).st_dev == root]\n"
    "    for name in files:\n"
    "        info = os.lstat(os.path.join(directory, name))\n"
    "        if stat.S_ISREG(info.st_mode) and info.st_mode & stat.S_ISUID:\n"
    "            print(os.path.join(directory, name))\n"
)


def setuid_files(client, image: str) -> set[str]:
    output = client.containers.run(
        image,
        entrypoint=["python3", "-c", SETUID_PROBE],
        user="0",
        remove=True,
        network_disabled=True,
    )
    return set(output.decode().split())


def test_no_setuid_binaries_beyond_the_base(docker_client, reference_images):
    for tag in reference_images.values():
        base = docker_client.images.get(tag).labels["org.opencontainers.image.base.name"]
        added = setuid_files(docker_client, tag) - setuid_files(docker_client, base)
        assert added == set(), f"{tag} adds setuid files {added}"


def test_ca_secret_reaches_the_build_but_no_layer(docker_client, reference_images, tmp_path):
    """Build with a CA bundle holding a unique test CA; it must appear in no layer and no history."""
    authority = trustme.CA()
    marker = authority.cert_pem.bytes().splitlines()[5]
    bundle = tmp_path / "ca.pem"
    system = SYSTEM_CA_BUNDLE.read_bytes() if SYSTEM_CA_BUNDLE.is_file() else b""
    bundle.write_bytes(system + authority.cert_pem.bytes())
    context = copy_reference_app(tmp_path / "app")
    tag = f"{TAG_PREFIX}imgtool-test-ca-secret:granian"
    result = run_cli("build", "--context", str(context), "--tag", tag, "--ca-cert", str(bundle), "--no-cache", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    try:
        history = json.dumps(docker_client.api.history(tag))
        assert marker.decode() not in history and "ca.pem" not in history
        archive = io.BytesIO(b"".join(docker_client.images.get(tag).save()))
        scanned = 0
        with tarfile.open(fileobj=archive) as image_tar:
            # manifest.json names each layer: `<id>/layer.tar` (Docker < 25) or `blobs/sha256/<digest>`
            # (the OCI layout `docker save` writes since 25); both are plain tar streams.
            manifest = json.load(image_tar.extractfile("manifest.json"))
            layers = manifest[0]["Layers"]
            assert layers, "the image has no layers"
            for name in layers:
                with tarfile.open(fileobj=image_tar.extractfile(name)) as layer:
                    for entry in layer.getmembers():
                        if entry.isfile():
                            scanned += 1
                            content = layer.extractfile(entry).read()
                            assert marker not in content, f"the CA is in {name}:{entry.name}"
        assert scanned > 1000, "the layers were not really scanned"
    finally:
        docker_client.images.remove(tag, force=True)
