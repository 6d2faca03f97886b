"""The distroless runtime: Python and what the app links, from Debian packages; no shell, no package manager.

The Debian runtime stays for apps that need a shell or apt, and a Python that no Debian package owns (a
published python:X.Y-slim keeps its own build in /usr/local) is copied by path.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import docker.errors
import httpx
import pytest

from tests.conftest import RUN_ID, TAG_PREFIX, run_cli
from tests.integration.conftest import copy_reference_app, edit, running, wait_for_health
from toolkit.servers import SERVERS

PROJECTS = Path(__file__).resolve().parent.parent / "projects"

# What the image's filesystem holds, seen by its own Python (the only program in it besides the server).
INVENTORY = (
    "import json, os, shutil\n"
    "names = ('sh', 'bash', 'dash', 'busybox', 'apt', 'apt-get', 'dpkg', 'perl', 'ls', 'find', 'curl')\n"
    "print(json.dumps({\n"
    "    'on_path': {n: shutil.which(n) for n in names if shutil.which(n)},\n"
    "    'usr_bin': sorted(os.listdir('/usr/bin')) if os.path.isdir('/usr/bin') else [],\n"
    "    'sbin': sorted(os.listdir('/usr/sbin')) if os.path.isdir('/usr/sbin') else [],\n"
    "    'packages': sorted(n for n in os.listdir('/var/lib/dpkg/status.d') if not n.endswith('.md5sums')),\n"
    "    'dpkg_database': os.path.exists('/var/lib/dpkg/status'),\n"
    "    'os_release': open('/etc/os-release').read().splitlines()[0],\n"
    "    'passwd': open('/etc/passwd').read().splitlines(),\n"
    "    'tmp_mode': oct(os.stat('/tmp').st_mode & 0o7777),\n"
    "}))\n"
)


def inventory(client, tag: str) -> dict:
    output = client.containers.run(
        tag,
        entrypoint=["python3", "-c", INVENTORY],
        remove=True,
        network_disabled=True,
        labels={"imgtool.test": RUN_ID},
    )
    return json.loads(output)


@pytest.mark.parametrize("server", SERVERS)
def test_no_shell_no_package_manager_only_python(docker_client, reference_images, server):
    tag = reference_images[server]
    image = docker_client.images.get(tag)
    assert image.labels["imgtool.runtime"] == "distroless"
    # `docker run --entrypoint sh IMAGE` fails: there is nothing to start.
    container = docker_client.containers.create(tag, entrypoint=["sh"], labels={"imgtool.test": RUN_ID})
    try:
        with pytest.raises(docker.errors.APIError, match="executable file not found"):
            container.start()
    finally:
        container.remove(force=True)
    found = inventory(docker_client, tag)
    assert found["on_path"] == {}, f"{server}: programs besides Python: {found['on_path']}"
    assert found["usr_bin"] == ["python3", "python3.11"] and found["sbin"] == []
    packages = set(found["packages"])
    assert {"python3.11-minimal", "libpython3.11-stdlib", "libc6", "libssl3", "tzdata", "ca-certificates"} <= packages
    assert not packages & {"bash", "dash", "coreutils", "apt", "dpkg", "perl-base", "util-linux"}
    assert not found["dpkg_database"]  # the per-package status.d stanzas are for scanners; there is no dpkg
    assert found["os_release"].startswith("PRETTY_NAME=") and "app:x:10001:10001:" in "\n".join(found["passwd"])
    assert found["tmp_mode"] == "0o1777"
    # Half the Debian base the packages came from, or less, for every server.
    base = docker_client.images.get(image.labels["org.opencontainers.image.base.name"])
    print(f"\n{server}: {image.attrs['Size'] / 1e6:.0f} MB (base {base.attrs['Size'] / 1e6:.0f} MB)")
    assert image.attrs["Size"] < base.attrs["Size"]


def test_tls_time_zones_and_mime_types_work_in_the_runtime(docker_client, reference_images):
    probe = (
        "import mimetypes, ssl, zoneinfo, datetime, sqlite3, ctypes, decimal, lzma, bz2, uuid\n"
        "context = ssl.create_default_context()\n"
        "assert context.cert_store_stats()['x509_ca'] > 100, context.cert_store_stats()\n"
        "paris = datetime.datetime(2026, 7, 1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))\n"
        "print(paris.utcoffset(), mimetypes.guess_type('x.webp')[0])\n"
    )
    output = docker_client.containers.run(
        reference_images["granian"], entrypoint=["python3", "-c", probe], remove=True, labels={"imgtool.test": RUN_ID}
    )
    assert output.decode().split() == ["2:00:00", "image/webp"]


@pytest.fixture
def scratch_tag(docker_client):
    tags: list[str] = []

    def make(name: str) -> str:
        tags.append(f"{TAG_PREFIX}imgtool-test-{name}-{secrets.token_hex(3)}:granian")
        return tags[-1]

    yield make
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def test_the_debian_runtime_is_one_setting_away_and_has_its_shell(
    docker_client, reference_images, scratch_tag, tmp_path
):
    context = copy_reference_app(tmp_path / "app")
    edit(context / "pyproject.toml", "[tool.imgtool]\n", '[tool.imgtool]\nruntime = "debian"\n')
    tag = scratch_tag("debian-runtime")
    result = run_cli("build", "--context", str(context), "--tag", tag, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert docker_client.images.get(tag).labels["imgtool.runtime"] == "debian"
    with running(docker_client, tag) as (container, target):
        wait_for_health(target.url("/health"))
        assert container.exec_run(["sh", "-c", "command -v apt-get"]).exit_code == 0
        assert "reference app" in httpx.get(target.url("/"), timeout=5).text


def test_an_app_whose_wheels_link_c_libraries_gets_them_with_no_flag(docker_client, scratch_tag, tmp_path):
    """pyodbc links Debian's libodbc2 (not in the base: installed in the throw-away stage, then copied);
    Pillow vendors its own libraries (left to the wheel). Both load and work in the distroless runtime."""
    context = tmp_path / "native-libs"
    shutil.copytree(PROJECTS / "native-libs", context)
    tag = scratch_tag("native-libs")
    result = run_cli("build", "--tag", tag, "--json", cwd=context)
    assert result.returncode == 0, result.stderr[-3000:]
    assert docker_client.images.get(tag).labels["imgtool.runtime"] == "distroless"
    found = inventory(docker_client, tag)
    assert "libodbc2" in found["packages"] and found["on_path"] == {}
    with running(docker_client, tag) as (_, target):
        wait_for_health(target.url("/health"))
        assert httpx.get(target.url("/"), timeout=5).text == "native-libs sample: odbc drivers []"
        for kind, magic in (("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")):
            image = httpx.get(target.url(f"/image.{kind}"), timeout=5)
            assert image.status_code == 200 and image.content.startswith(magic), kind


LOCAL_PYTHON_STAND_IN = f"{TAG_PREFIX}imgtool-test-local-python:3.11"


@pytest.fixture(scope="session")
def local_python_base(docker_client) -> str:
    """A base whose Python no Debian package owns: python:3.11-slim where it can be had, else a stand-in built
    in seconds from tests/fixtures/local-python.Dockerfile on the offline base (Debian's Python moved to
    /usr/local, its packages purged)."""
    from toolkit.base import pull
    from toolkit.engine import image_exists

    if image_exists(docker_client, "python:3.11-slim") or pull(docker_client, "python:3.11-slim") is None:
        return "python:3.11-slim"
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "local-python.Dockerfile"
    built = subprocess.run(
        ["docker", "buildx", "build", "--load", "--tag", LOCAL_PYTHON_STAND_IN, "--file", str(fixture), "."],
        cwd=fixture.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return LOCAL_PYTHON_STAND_IN


def test_a_python_no_debian_package_owns_is_copied_by_path(docker_client, local_python_base, scratch_tag):
    """As on a published python:X.Y-slim: Python in /usr/local with its libpython, outside dpkg."""
    tag = scratch_tag("local-python")
    result = run_cli("build", "--demo", "--base", local_python_base, "--tag", tag, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    found = inventory(docker_client, tag)
    assert "python3.11-minimal" not in found["packages"] and {"libc6", "libssl3"} <= set(found["packages"])
    assert found["on_path"] == {}
    probe = "import sys, ssl, sqlite3; print(sys.base_prefix, ssl.OPENSSL_VERSION.split()[0], sys.version_info[:2])"
    output = docker_client.containers.run(
        tag, entrypoint=["python3", "-c", probe], remove=True, labels={"imgtool.test": RUN_ID}
    )
    assert output.decode().split(" ", 2)[:2] == ["/usr/local", "OpenSSL"]
    with running(docker_client, tag) as (_, target):
        wait_for_health(target.url("/health"))
        assert "reference app" in httpx.get(target.url("/"), timeout=5).text
