"""Supply chain, end to end: the SBOM every image carries, cosign signatures through a real registry,
and byte-for-byte reproducible builds on two engines of their own.

The reproducible test starts two engines with the containerd image store (the shared first engine may
run the classic graph-driver store, where the docker driver can neither export OCI nor keep
attestations): each has an empty cache, and both must produce one image digest.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import threading
from pathlib import Path

import docker
import docker.errors
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.conftest import ROOT, RUN_ID, run_cli
from tests.integration.conftest import _fail_or_skip, copy_reference_app, edit, second_engine, single_line_error
from toolkit import assets
from toolkit.base import BOOTSTRAP_IMAGE, official_base
from toolkit.engine import containerd_store
from toolkit.plan import SBOM_PATH

SUFFIX = RUN_ID.lower().replace("_", "-")
PASSWORD = "imgtool-test"


# In a distroless image (no dpkg): every status.d record's package and version, and whether each file its
# .md5sums lists is in the image with that content.
STATUS_D_PROBE = """
import hashlib, json, os
records = '/var/lib/dpkg/status.d'
packages, files, mismatched = [], {}, []
for name in sorted(n for n in os.listdir(records) if not n.endswith('.md5sums')):
    fields = {}
    for line in open(os.path.join(records, name)).read().splitlines():
        if ': ' in line and not line.startswith(' '):
            key, value = line.split(': ', 1)
            fields[key] = value
    packages.append([fields['Package'], fields['Version']])
    sums = [line.split('  ', 1) for line in open(os.path.join(records, name + '.md5sums')).read().splitlines()]
    files[name] = len(sums)
    for digest, path in sums:
        try:
            ok = hashlib.md5(open('/' + path, 'rb').read()).hexdigest() == digest
        except OSError:
            ok = False
        if not ok:
            mismatched.append(path)
print(json.dumps({'packages': packages, 'files': files, 'mismatched': mismatched,
                  'dpkg': os.path.exists('/usr/bin/dpkg') or os.path.exists('/var/lib/dpkg/status')}))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def sbom_image(docker_client, tmp_path_factory):
    """The bundled app on granian, built with `--sbom`: (tag, the SBOM file, the build's JSON entry)."""
    tag = f"imgtool-test-supply:{SUFFIX}"
    output = tmp_path_factory.mktemp("sbom") / "sbom.cdx.json"
    try:
        result = run_cli(
            "build", "-s", "granian", "--context", "images/app", "--tag", tag, "--sbom", str(output), "--json"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        yield tag, output, json.loads(result.stdout)[0]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(tag, force=True)


def _in_image(client, tag: str, entrypoint: list[str], *command: str) -> str:
    output = client.containers.run(
        tag, entrypoint=entrypoint, command=list(command), remove=True, labels={"imgtool.test": RUN_ID}
    )
    return output.decode()


def test_every_image_carries_a_valid_sbom_of_exactly_what_it_holds(docker_client, sbom_image):
    tag, path, entry = sbom_image
    data = path.read_bytes()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    bom = json.loads(data)
    components = bom["components"]
    assert docker_client.images.get(tag).labels["imgtool.sbom"] == SBOM_PATH
    assert entry["sbom"]["components"] == len(components) and entry["sbom"]["bytes"] == len(data)

    # The Python half is the image's venv, as the venv's own interpreter sees it.
    listed = _in_image(
        docker_client,
        tag,
        ["/opt/venv/bin/python", "-c"],
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted([d.metadata['Name'], d.version] for d in m.distributions())))",
    )
    in_venv = {(_canonical(name), version) for name, version in json.loads(listed)}
    python = {(_canonical(c["name"]), c["version"]) for c in components if c.get("purl", "").startswith("pkg:pypi/")}
    assert python == in_venv and any(name == "granian" for name, _ in python)

    # The Debian half is what the image holds: with dpkg (runtime = "debian"), what dpkg says is installed;
    # distroless has no dpkg, so each package the runtime was assembled from must have its files in the image,
    # byte for byte (status.d/<package>.md5sums), and nothing else may be listed.
    if docker_client.images.get(tag).labels["imgtool.runtime"] == "debian":
        queried = _in_image(
            docker_client, tag, ["dpkg-query"], "-W", "-f", "${db:Status-Status} ${Package} ${Version}\n"
        )
        installed = {tuple(line.split()[1:]) for line in queried.splitlines() if line.startswith("installed ")}
    else:
        found = json.loads(_in_image(docker_client, tag, ["/opt/venv/bin/python", "-c"], STATUS_D_PROBE))
        assert found["mismatched"] == [] and not found["dpkg"], found
        assert all(found["files"].values()), [name for name, count in found["files"].items() if not count]
        installed = {tuple(pair) for pair in found["packages"]}
    debian = {(c["name"], c["version"]) for c in components if c.get("purl", "").startswith("pkg:deb/")}
    assert debian == installed
    assert any(c["type"] == "operating-system" for c in components)

    # The generator stayed in its builder stage.
    leftovers = _in_image(
        docker_client,
        tag,
        ["/opt/venv/bin/python", "-c"],
        "import importlib.util, os; print(importlib.util.find_spec('cyclonedx'), os.path.exists('/opt/sbom-tool'))",
    )
    assert leftovers.split() == ["None", "False"]
    print(f"SBOM: {len(data)} bytes, {len(components)} components ({len(python)} Python, {len(debian)} Debian)")


@pytest.fixture(scope="module")
def cosign():
    if shutil.which("cosign") is None:
        subprocess.run([ROOT / "scripts" / "provision-cosign"], capture_output=True, timeout=600)
    if shutil.which("cosign") is None:
        _fail_or_skip("cosign is missing and scripts/provision-cosign could not install it")
    return shutil.which("cosign")


def _key_pair(cosign: str, folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    made = subprocess.run(
        [cosign, "generate-key-pair"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return folder / "cosign.key", folder / "cosign.pub"


def _push(ref: str) -> None:
    pushed = subprocess.run(["docker", "push", "-q", ref], capture_output=True, text=True, timeout=300)
    assert pushed.returncode == 0, pushed.stderr


def test_a_signed_image_verifies_and_a_tampered_one_does_not(docker_client, registry, sbom_image, cosign, tmp_path):
    tag, sbom_file, _ = sbom_image
    key, public = _key_pair(cosign, tmp_path / "keys")
    _, stranger = _key_pair(cosign, tmp_path / "other-keys")
    ref = f"{registry}/imgtool-test-signed:{SUFFIX}"
    tampered = f"imgtool-test-tampered:{SUFFIX}"
    secret = {"COSIGN_PASSWORD": PASSWORD}
    try:
        docker_client.images.get(tag).tag(ref)
        _push(ref)
        signed = run_cli("sign", ref, "--key", str(key), "--no-tlog", "--sbom", str(sbom_file), "--json", env=secret)
        assert signed.returncode == 0, signed.stderr
        digest = json.loads(signed.stdout)["digest"]
        assert json.loads(signed.stdout)["image"] == f"{registry}/imgtool-test-signed@{digest}"

        verified = run_cli("verify", ref, "--key", str(public), "--no-tlog", "--sbom", "--json")
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout) | {"reason": ""} == {
            "image": ref,
            "verified": True,
            "digest": digest,
            "reason": "",
            "sbom_verified": True,
        }

        # Another key's public half does not verify it.
        stranger_says = run_cli("verify", ref, "--key", str(stranger), "--no-tlog")
        assert stranger_says.returncode == 1, stranger_says.stderr
        assert "does not verify" in single_line_error(stranger_says.stderr)

        # Someone pushes a different image over the same tag: the tag no longer verifies ...
        dockerfile = f"FROM {tag}\nLABEL imgtool.test.tampered=yes\n"
        docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tampered, rm=True)
        docker_client.images.get(tampered).tag(ref)
        _push(ref)
        after = run_cli("verify", ref, "--key", str(public), "--no-tlog")
        assert after.returncode == 1, after.stdout
        line = single_line_error(after.stderr)
        assert "does not verify" in line and "no signatures found" in line, line
        # ... while the digest that was signed still does.
        original = run_cli("verify", f"{registry}/imgtool-test-signed@{digest}", "--key", str(public), "--no-tlog")
        assert original.returncode == 0, original.stderr
    finally:
        # Tags and the registry digests pushing left on the images (`<none>` names otherwise).
        repository = f"{registry}/imgtool-test-signed"
        names = [tampered, ref]
        for image in docker_client.images.list(name=repository) + docker_client.images.list(name=tampered):
            names += [name for name in image.attrs.get("RepoDigests") or [] if name.startswith(repository + "@")]
        for name in names:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                docker_client.images.remove(name)


def _locked_copy_of_the_bundled_app(tmp_path: Path) -> Path:
    """The bundled app with granian among its dependencies and a uv.lock made now (never committed)."""
    context = copy_reference_app(tmp_path / "app")
    edit(
        context / "pyproject.toml",
        'dependencies = ["litestar>=2.12,<3"]',
        'dependencies = ["litestar>=2.12,<3", "granian"]',
    )
    uv = assets.ensure((assets.docker_arch(platform.machine()),)) / "uv" / assets.docker_arch(platform.machine()) / "uv"
    locked = subprocess.run(
        [str(uv), "lock", "--quiet", "--python", "3.11"], cwd=context, capture_output=True, text=True, timeout=300
    )
    assert locked.returncode == 0, locked.stderr
    return context


def _base(client) -> str:
    official = official_base("3.11")
    for name in (official, BOOTSTRAP_IMAGE):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(name)
            return name
    pytest.fail(f"no base image: neither {official} nor {BOOTSTRAP_IMAGE} (run scripts/setup)")


def _in_threads(*calls):
    results, errors = [None] * len(calls), []

    def run(index, call):
        try:
            results[index] = call()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_two_cold_builds_on_two_engines_give_one_digest(docker_client, tmp_path):
    context = _locked_copy_of_the_bundled_app(tmp_path)
    base = _base(docker_client)
    build = [
        "build",
        "-s",
        "granian",
        "--context",
        str(context),
        "--base",
        base,
        "--tag",
        f"imgtool-test-repro:{SUFFIX}",
    ]
    build += ["--reproducible", "--network", "host", "--json"]

    if not containerd_store(docker_client):
        refused = run_cli(*build)
        assert refused.returncode == 2
        assert '{"features": {"containerd-snapshotter": true}}' in single_line_error(refused.stderr)

    archive = tmp_path / "base.tar"
    with archive.open("wb") as stream:
        for chunk in docker_client.images.get(base).save(named=True):
            stream.write(chunk)

    with contextlib.ExitStack() as stack:
        hosts = [
            stack.enter_context(second_engine(tmp_path / f"engine-{name}", containerd_snapshotter=True))
            for name in ("a", "b")
        ]

        def load(host):
            client = docker.DockerClient(base_url=host, timeout=600)
            try:
                assert client.images.list() == []
                with archive.open("rb") as stream:
                    client.images.load(stream)
            finally:
                client.close()

        def cold_build(host):
            return run_cli(*build, "--no-cache", env={"DOCKER_HOST": host}, timeout=900)

        _in_threads(*(lambda host=host: load(host) for host in hosts))
        results = _in_threads(*(lambda host=host: cold_build(host) for host in hosts))
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
        first, second = (json.loads(result.stdout)[0] for result in results)
        assert first["epoch"] == second["epoch"] and first["epoch"] > 0
        assert first["digest"] == second["digest"], "two cold builds of one commit gave two images"
        # The containerd store names the loaded image by the exported manifest digest: loading kept it.
        assert first["image_id"] == first["digest"] and second["image_id"] == second["digest"]
        print(f"reproducible: {first['digest']} on both engines (epoch {first['epoch']})")

        # Provenance (mode=max) wraps the same image manifest in an index with its attestation.
        attested = run_cli(*build, "--provenance", env={"DOCKER_HOST": hosts[0]}, timeout=900)
        assert attested.returncode == 0, attested.stderr[-3000:]
        entry = json.loads(attested.stdout)[0]
        assert entry["digest"] == first["digest"] and entry["image_id"] != entry["digest"]
