"""Supply chain, the pure parts: the SBOM's Debian half, the epoch, OCI digests, build options, cosign calls."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.conftest import run_cli
from toolkit import IMAGES_DIR, assets, engine, reproducible, sbom, signing
from toolkit.errors import EnvironmentProblem, UsageError

# images/assets/sbom.py runs in a builder stage; it is a script, not a module of the package.
_spec = importlib.util.spec_from_file_location("imgtool_sbom_asset", IMAGES_DIR / "assets" / "sbom.py")
sbom_asset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sbom_asset)

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Version: 1:3.11.2-6+deb12u6
Description: Minimal subset of the Python language (version 3.11)
"""
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
PYTHON_BOM = {
    "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "version": 1,
    "metadata": {"tools": {"components": [{"type": "application", "name": "cyclonedx-py", "version": "7.5.0"}]}},
    "components": [
        {
            "type": "library",
            "bom-ref": "granian==2.8.9",
            "name": "granian",
            "version": "2.8.9",
            "purl": "pkg:pypi/granian@2.8.9",
        }
    ],
    "dependencies": [{"ref": "granian==2.8.9"}],
}


def rootfs(tmp_path: Path, status: str = STATUS, status_d: dict[str, str] | None = None) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status)
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(OS_RELEASE)
    for name, text in (status_d or {}).items():
        (root / "var/lib/dpkg/status.d").mkdir(exist_ok=True)
        (root / "var/lib/dpkg/status.d" / name).write_text(text)
    return root


# ---- the SBOM's Debian half (images/assets/sbom.py) ----


def test_only_installed_packages_count_and_distroless_status_d_entries_too(tmp_path):
    extra = "Package: tzdata\nArchitecture: all\nVersion: 2025b-0+deb12u1\n"
    root = rootfs(tmp_path, status_d={"tzdata": extra, "tzdata.md5sums": "abc  usr/share/zoneinfo/UTC\n"})
    names = [package["Package"] for package in sbom_asset.installed_packages(root)]
    assert names == ["libc6", "python3.11-minimal", "tzdata"]
    libc = sbom_asset.installed_packages(root)[0]
    assert libc["Description"].startswith("GNU C Library: Shared libraries\nContains")


def test_deb_purls_follow_the_purl_spec_and_encode_epochs_and_plus_signs(tmp_path):
    root = rootfs(tmp_path)
    os_info = sbom_asset.os_release(root)
    purls = [sbom_asset.deb_purl(package, os_info) for package in sbom_asset.installed_packages(root)]
    assert purls == [
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12",
        "pkg:deb/debian/python3.11-minimal@1%3A3.11.2-6%2Bdeb12u6?arch=amd64&distro=debian-12",
    ]


def test_the_complete_sbom_is_schema_valid_sorted_and_rooted_at_the_image(tmp_path):
    root = rootfs(tmp_path)
    bom = sbom_asset.complete(
        PYTHON_BOM, sbom_asset.installed_packages(root), sbom_asset.os_release(root), "my-app", "0.1.0"
    )
    text = json.dumps(bom)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    components = bom["components"]
    assert [c["name"] for c in components] == ["granian", "libc6", "python3.11-minimal", "debian"]
    assert {"type": "operating-system", "name": "debian", "version": "12"}.items() <= components[-1].items()
    libc = components[1]
    assert libc["properties"] == [{"name": "imgtool:deb:source", "value": "glibc"}]
    assert bom["metadata"]["component"] == {"type": "container", "bom-ref": "imgtool:image", "name": "my-app"}
    assert [tool["name"] for tool in bom["metadata"]["tools"]["components"]] == ["cyclonedx-py", "imgtool"]
    root_entry = next(entry for entry in bom["dependencies"] if entry["ref"] == "imgtool:image")
    assert set(root_entry["dependsOn"]) == {c["bom-ref"] for c in components}
    # Same input, same bytes: nothing time- or order-dependent.
    again = sbom_asset.complete(
        PYTHON_BOM, list(reversed(sbom_asset.installed_packages(root))), sbom_asset.os_release(root), "my-app", "0.1.0"
    )
    assert json.dumps(again) == text


def test_an_interpreter_no_debian_package_provides_is_listed_too(tmp_path):
    root = rootfs(tmp_path, status=STATUS.replace("python3.11-minimal", "zlib1g"))
    venv = root / "opt/venv"
    venv.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/local/bin\nimplementation = CPython\nversion_info = 3.12.7\n")
    config = sbom_asset.interpreter(root, "/opt/venv")
    packages = sbom_asset.installed_packages(root)
    bom = sbom_asset.complete(PYTHON_BOM, packages, sbom_asset.os_release(root), "app", "0", config)
    python = [c for c in bom["components"] if c["name"] == "cpython"]
    assert [c["purl"] for c in python] == ["pkg:generic/cpython@3.12.7"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    # Debian's own python3.11 is a package already: not listed twice.
    debian = sbom_asset.installed_packages(rootfs(tmp_path / "debian"))
    assert sbom_asset.python_component({"version_info": "3.11.2"}, debian) is None


def test_the_script_writes_a_valid_file_and_refuses_an_invalid_one(tmp_path, capsys):
    root = rootfs(tmp_path)
    source, output = tmp_path / "python.json", tmp_path / "sbom.json"
    source.write_text(json.dumps(PYTHON_BOM))
    assert sbom_asset.main([str(source), str(root), str(output), "--name", "app", "--tool-version", "0.1.0"]) == 0
    assert json.loads(output.read_text())["specVersion"] == "1.6"
    broken = {**PYTHON_BOM, "components": [{"type": "nonsense", "name": "x", "bom-ref": "x"}]}
    source.write_text(json.dumps(broken))
    output.unlink()
    assert sbom_asset.main([str(source), str(root), str(output), "--name", "app", "--tool-version", "0.1.0"]) == 1
    assert "does not validate against CycloneDX 1.6" in capsys.readouterr().out
    assert not output.exists()


def test_the_generator_pins_are_exact_and_hashed():
    text = (IMAGES_DIR / "assets" / "sbom-tool.txt").read_text()
    requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert any(line.startswith("cyclonedx-bom==") for line in requirements)
    assert all("==" in line for line in requirements), requirements
    assert "--hash=sha256:" in text and "://" not in text.replace("# ", "")
    assert IMAGES_DIR / "assets" / "sbom-tool.txt" in [path for _, path in assets.sources()]


def test_sbom_output_path_needs_server_with_several_servers(tmp_path):
    assert sbom.output_path(tmp_path / "sbom.json", "granian", several=False) == tmp_path / "sbom.json"
    assert sbom.output_path(tmp_path / "{server}.json", "uvicorn", several=True) == tmp_path / "uvicorn.json"
    with pytest.raises(UsageError, match=r"\{server\}"):
        sbom.output_path(tmp_path / "sbom.json", "granian", several=True)
    with pytest.raises(UsageError, match="does not exist"):
        sbom.output_path(tmp_path / "missing" / "sbom.json", "granian", several=False)


def test_sbom_summary_counts_python_and_debian_components():
    data = json.dumps(sbom_asset.complete(PYTHON_BOM, [], {}, "app", "0")).encode()
    assert sbom.summary(data) == {"bytes": len(data), "components": 1, "python": 1, "debian": 0}


# ---- the epoch ----


def test_epoch_from_the_environment_wins_and_is_checked(tmp_path):
    assert reproducible.source_date_epoch(tmp_path, {"SOURCE_DATE_EPOCH": "1700000000"}).seconds == 1700000000
    for bad in ("yesterday", "-5"):
        with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
            reproducible.source_date_epoch(tmp_path, {"SOURCE_DATE_EPOCH": bad})


def test_epoch_is_the_newest_file_outside_caches_and_git(tmp_path):
    (tmp_path / "app.py").write_text("")
    os.utime(tmp_path / "app.py", (1_600_000_000, 1_600_000_000))
    for skipped in (".git", "__pycache__", ".venv"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "newer").write_text("")
    epoch = reproducible.source_date_epoch(tmp_path, {})
    assert epoch.seconds == 1_600_000_000 and "newest file" in epoch.source


def _git(path: Path, *args: str, when: int | None = None) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"@{when} +0000"
    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, env=env)


def test_epoch_of_a_clean_checkout_is_its_last_commit_and_a_dirty_one_falls_back(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "app.py").write_text("app = 1\n")
    _git(tmp_path, "add", "app.py")
    _git(tmp_path, "commit", "-q", "-m", "one", when=1_650_000_000)
    epoch = reproducible.source_date_epoch(tmp_path, {})
    assert epoch == reproducible.Epoch(1_650_000_000, "the last commit of the context")
    (tmp_path / "app.py").write_text("app = 2\n")
    assert "newest file" in reproducible.source_date_epoch(tmp_path, {}).source


# ---- OCI archives ----


def _oci_archive(path: Path, with_attestation: bool) -> dict[str, str]:
    blobs: dict[str, bytes] = {}

    def add(document: dict) -> tuple[str, int]:
        data = json.dumps(document).encode()
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest, len(data)

    config, _ = add({"architecture": "amd64"})
    image, size = add({"config": {"digest": config}, "layers": []})
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": size}
    top = descriptor
    if with_attestation:
        attestation, asize = add({"config": {"digest": config}, "layers": []})
        nested = {
            "manifests": [
                {**descriptor, "platform": {"architecture": "amd64", "os": "linux"}},
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": attestation,
                    "size": asize,
                    "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
                },
            ]
        }
        index, isize = add(nested)
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index, "size": isize}
    with tarfile.open(path, "w") as archive:
        for name, data in [("index.json", json.dumps({"manifests": [top]}).encode())] + [
            (f"blobs/sha256/{digest.split(':')[1]}", data) for digest, data in blobs.items()
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return {"top": top["digest"], "image": image, "config": config}


@pytest.mark.parametrize("with_attestation", [False, True])
def test_oci_digests_name_the_image_manifest_with_or_without_attestations(tmp_path, with_attestation):
    expected = _oci_archive(tmp_path / "image.tar", with_attestation)
    digests = reproducible.oci_digests(tmp_path / "image.tar")
    assert (digests.top, digests.image, digests.config) == (expected["top"], expected["image"], expected["config"])
    assert (digests.top == digests.image) is (not with_attestation)


def test_oci_output_rewrites_timestamps():
    assert (
        reproducible.oci_output(Path("/t/i.tar"), "app:1") == "type=oci,dest=/t/i.tar,name=app:1,rewrite-timestamp=true"
    )


# ---- build options and the engine's abilities ----


def test_build_options_become_buildx_flags():
    from toolkit.plan import BuildOptions

    assert BuildOptions().flags("granian") == ("--load",)
    assert BuildOptions(epoch=1700000000, network="host").flags("granian") == (
        "--load",
        "--provenance=false",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
        "--network",
        "host",
    )
    assert BuildOptions(provenance=True, no_cache=True).flags("granian") == (
        "--load",
        "--attest",
        "type=provenance,mode=max",
        "--no-cache",
    )
    exported = BuildOptions(epoch=1, output=("--output", "type=oci,dest=/t/i.tar"))
    assert exported.flags("granian")[:2] == ("--output", "type=oci,dest=/t/i.tar")
    assert "--load" not in exported.flags("granian")


class FakeClient:
    def __init__(self, driver_status):
        self._status = driver_status

    def info(self):
        return {"DriverStatus": self._status}


CLASSIC = [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]
CONTAINERD = [["driver-type", "io.containerd.snapshotter.v1"]]


def test_attestations_need_the_containerd_store_or_another_driver():
    problem = engine.attestation_problem(FakeClient(CLASSIC), "docker")
    assert problem and '{"features": {"containerd-snapshotter": true}}' in problem and "restart" in problem
    assert engine.attestation_problem(FakeClient(CONTAINERD), "docker") is None
    assert engine.attestation_problem(FakeClient(CLASSIC), "docker-container") is None


# ---- cosign ----


@pytest.mark.parametrize(
    ("ref", "repository"),
    [
        ("localhost:5000/app:granian", "localhost:5000/app"),
        ("localhost:5000/app@sha256:" + "a" * 64, "localhost:5000/app"),
        ("ghcr.io/o/r/granian:v1@sha256:" + "b" * 64, "ghcr.io/o/r/granian"),
        ("app", "app"),
    ],
)
def test_references_are_signed_by_repository_and_digest(ref, repository):
    assert signing.repository(ref) == repository
    assert signing.pinned(ref, "sha256:" + "c" * 64) == f"{repository}@sha256:{'c' * 64}"


def test_cosign_commands_offline_and_with_the_log(tmp_path):
    config = tmp_path / "signing-config.json"
    assert signing.sign_argv("cosign", "k.key", "r@sha256:1", config) == [
        "cosign", "sign", "--key", "k.key", "--yes", "--signing-config", str(config), "r@sha256:1"
    ]  # fmt: skip
    assert signing.sign_argv("cosign", "k.key", "r@sha256:1", None)[-2:] == ["--yes", "r@sha256:1"]
    assert "--type" in signing.attest_argv("cosign", "k.key", "r@sha256:1", Path("s.json"), None)
    assert signing.verify_argv("cosign", "k.pub", "r:1", tlog=False) == [
        "cosign", "verify", "--key", "k.pub", "--insecure-ignore-tlog=true", "r:1"
    ]  # fmt: skip
    assert signing.verify_argv("cosign", "k.pub", "r:1", tlog=True, attestation=True) == [
        "cosign", "verify-attestation", "--key", "k.pub", "--type", "cyclonedx", "r:1"
    ]  # fmt: skip
    assert signing.OFFLINE_SIGNING_CONFIG["rekorTlogConfig"] == {}


def test_cosign_errors_and_verified_digests_are_read_from_its_output():
    stderr = "WARNING: Skipping tlog verification\nError: no signatures found\nerror during command execution: x\n"
    assert signing.cosign_error(stderr) == "no signatures found"
    digest = "sha256:" + "d" * 64
    stdout = "\n" + json.dumps([{"critical": {"image": {"docker-manifest-digest": digest}}}]) + "\n"
    assert signing.signed_digest(stdout) == digest
    assert signing.signed_digest("not json") is None


def test_missing_cosign_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(signing.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentProblem, match="scripts/provision-cosign"):
        signing.verify("localhost:5000/app:1", "cosign.pub")


def test_a_missing_key_file_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(signing.shutil, "which", lambda name: "/usr/bin/cosign")
    with pytest.raises(UsageError, match="generate-key-pair"):
        signing.verify("localhost:5000/app:1", str(tmp_path / "nope.pub"))
    assert signing.check_key("awskms:///alias/x", "the public key") == "awskms:///alias/x"


def test_staged_helper_files_have_one_fixed_time(tmp_path, monkeypatch):
    wheel = tmp_path / "uv-0.0.0-py3-none-manylinux_2_17_x86_64.whl"
    import zipfile

    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("uv-0.0.0.data/scripts/uv", b"#!/bin/sh\n")
    monkeypatch.setattr(assets, "uv_wheel", lambda arch: wheel)
    staged = assets.stage(tmp_path / "ctx", ("amd64",))
    times = {path.lstat().st_mtime for path in [staged, *staged.rglob("*")]}
    assert times == {assets.STAGED_MTIME}


def test_verify_without_cosign_is_one_line_naming_how_to_get_it(tmp_path):
    (tmp_path / "cosign.pub").write_text("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
    result = run_cli(
        "verify", "localhost:5000/app:1", "--key", str(tmp_path / "cosign.pub"), env={"PATH": "/nonexistent"}
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("imgtool: error: cosign is not installed")
    assert "scripts/provision-cosign" in lines[0]
