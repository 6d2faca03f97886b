"""Per-server bases through a real registry: build, push, drop locally, lock, build from the lock, test.

The registry is distribution 2.x on 127.0.0.1, started by the session fixture below with throw-away
storage; no mocks. Whichever way works here, without needing root where there is none:
1. Debian's `docker-registry` binary when it is installed (run as the current user);
2. else the `registry:2` image, present or pulled (GitHub's runners: not root, but Docker Hub answers),
   as a container published on 127.0.0.1 and removed with its volume afterwards;
3. else `apt-get install docker-registry` (no registry image can be pulled here), as root or through
   `sudo -n` (never a password prompt), then 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import httpx
import pytest

from tests.conftest import RUN_ID, run_cli
from tests.integration.conftest import copy_reference_app, single_line_error
from toolkit.lock import read_lock

SERVERS = ("granian", "uvicorn")
PYTHON = "3.11"
APP_TAG = "imgtool-test-locked:{server}"
REGISTRY_BINARY = "docker-registry"
REGISTRY_IMAGE = os.environ.get("IMGTOOL_TEST_REGISTRY_IMAGE", "registry:2")


def _fail_or_skip(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def as_root(argv: list[str]) -> list[str]:
    """argv as root: directly when we are root, else through `sudo -n` (fails rather than prompting)."""
    return argv if os.geteuid() == 0 else ["sudo", "-n", *argv]


def _registry_binary() -> str | None:
    return shutil.which(REGISTRY_BINARY) or next(
        (path for path in (f"/usr/bin/{REGISTRY_BINARY}", f"/usr/sbin/{REGISTRY_BINARY}") if Path(path).exists()), None
    )


def _install_registry() -> str:
    """apt-get install docker-registry, quietly; `apt-get update` only when the first try cannot find it."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", REGISTRY_BINARY])
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(as_root(["apt-get", "update", "-qq"]), capture_output=True, env=env)
        result = subprocess.run(install, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            _fail_or_skip(
                f"no {REGISTRY_BINARY} binary, no {REGISTRY_IMAGE} image, and apt-get cannot install it: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
    binary = _registry_binary()
    if binary is None:
        _fail_or_skip(f"apt-get installed {REGISTRY_BINARY} but no such binary is on PATH")
    return binary


def _registry_image(client) -> bool:
    """Is the registry image here, or can it be pulled? (No registry answers on this kind of machine.)"""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(REGISTRY_IMAGE)
        return True
    try:
        client.images.pull(REGISTRY_IMAGE)
    except docker.errors.APIError:
        return False
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _free_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(port: int, alive, log) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            _fail_or_skip(f"the registry did not start: {log()[-500:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def _registry_process(binary: str, root: Path) -> Iterator[int]:
    """The registry binary as a child process of this session: yields its port."""
    storage = root / "storage"
    storage.mkdir()
    port = _free_port(5000)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log_path = root / "registry.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_until_serving(port, lambda: process.poll() is None, log_path.read_text)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(storage, ignore_errors=True)


@contextlib.contextmanager
def _registry_container(client) -> Iterator[int]:
    """The registry image as a container on 127.0.0.1 (a port Docker picks): yields that port.

    Labelled apart from the session's test containers (imgtool.test), which tests expect to be gone.
    """
    container = client.containers.run(
        REGISTRY_IMAGE,
        detach=True,
        name=f"imgtool-test-registry-{RUN_ID}",
        labels={"imgtool.test-registry": RUN_ID},
        ports={"5000/tcp": ("127.0.0.1", None)},
        environment={
            "REGISTRY_LOG_LEVEL": "error",
            "REGISTRY_LOG_ACCESSLOG_DISABLED": "true",
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        },
    )
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])

        def alive() -> bool:
            container.reload()
            return container.status == "running"

        _wait_until_serving(port, alive, lambda: container.logs().decode(errors="replace"))
        yield port
    finally:
        container.remove(force=True, v=True)  # v: the image's anonymous storage volume too


@pytest.fixture(scope="session")
def registry(docker_client, tmp_path_factory):
    """A distribution 2.x registry on 127.0.0.1: yields `localhost:<port>`."""
    binary = _registry_binary()
    if binary is None and _registry_image(docker_client):
        serving = _registry_container(docker_client)
    else:
        serving = _registry_process(binary or _install_registry(), tmp_path_factory.mktemp("registry"))
    with serving as port:
        yield f"localhost:{port}"


def _untag_bases(client, registry: str) -> None:
    """Remove this run's base names (tags and digests) under `registry`; other names of the same image stay."""
    prefix = f"{registry}/imgtool-base"
    for image in client.images.list(name=prefix):
        for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if name.startswith(prefix):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(name)


@pytest.fixture(scope="module")
def pushed_bases(docker_client, registry):
    """`imgtool base build` + `imgtool base push` for granian and uvicorn; the pushed digests by server."""
    selection = [arg for server in SERVERS for arg in ("--server", server)]
    try:
        built = run_cli("base", "build", *selection, "--registry", registry, "--json")
        assert built.returncode == 0, f"imgtool base build failed:\n{built.stderr[-3000:]}"
        sizes = {entry["server"]: entry["size_bytes"] for entry in json.loads(built.stdout)}
        for server in SERVERS:
            labels = docker_client.images.get(f"{registry}/imgtool-base:{server}-py{PYTHON}").labels
            assert labels["imgtool.base"] == "server" and labels["imgtool.server"] == server
            assert labels["imgtool.python"] == PYTHON and labels["org.opencontainers.image.version"]
        pushed = run_cli("base", "push", *selection, "--registry", registry, "--json")
        assert pushed.returncode == 0, f"imgtool base push failed:\n{pushed.stderr[-3000:]}"
        digests = {entry["server"]: entry["digest"] for entry in json.loads(pushed.stdout)}
        assert set(digests) == set(SERVERS) and all(d.startswith("sha256:") for d in digests.values())
        print(f"per-server base sizes: {sizes}")
        # Nothing local any more: the app build must get each base from the registry, by digest.
        _untag_bases(docker_client, registry)
        yield digests
    finally:
        _untag_bases(docker_client, registry)


@pytest.fixture
def app_images(docker_client):
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(tag, force=True)


def test_build_from_the_lock_pulls_the_bases_by_digest_and_passes_health(
    docker_client, registry, pushed_bases, tmp_path, app_images
):
    context = copy_reference_app(tmp_path / "app")
    selection = [arg for server in SERVERS for arg in ("--server", server)]
    locked = run_cli("base", "lock", *selection, "--registry", registry, "--context", str(context), "--json")
    assert locked.returncode == 0, locked.stderr
    lock = read_lock(context)
    for server in SERVERS:
        entry = lock.entry(server, PYTHON)
        assert entry.ref == f"{registry}/imgtool-base:{server}-py{PYTHON}"
        assert entry.digest == pushed_bases[server]
        assert not any(name.startswith(registry) for name in _all_names(docker_client))

    app_images.extend(APP_TAG.format(server=server) for server in SERVERS)
    build = run_cli("build", *selection, "--context", str(context), "--tag", APP_TAG, "--frozen", "--json", timeout=900)
    assert build.returncode == 0, f"imgtool build --frozen failed:\n{build.stderr[-3000:]}"
    assert build.stderr.count("pulling the locked base") == len(SERVERS)
    for server in SERVERS:
        tag = APP_TAG.format(server=server)
        labels = docker_client.images.get(tag).labels
        assert labels["org.opencontainers.image.base.digest"] == pushed_bases[server]
        assert labels["org.opencontainers.image.base.name"] == lock.entry(server, PYTHON).ref
        # The app image is the base plus the app's own layers: the server was not installed again.
        base = docker_client.images.get(f"{registry}/imgtool-base@{pushed_bases[server]}")
        assert (
            docker_client.images.get(tag).attrs["RootFS"]["Layers"][: len(base.attrs["RootFS"]["Layers"])]
            == (base.attrs["RootFS"]["Layers"])
        )
        tested = run_cli("test", "--image", tag, "--check", "health", "--check", "nonroot")
        assert tested.returncode == 0, f"{server}:\n{tested.stdout}\n{tested.stderr[-2000:]}"


def _all_names(client) -> list[str]:
    return [name for image in client.images.list() for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]]


def test_a_tampered_lock_fails_the_build_in_one_line(registry, pushed_bases, tmp_path, app_images):
    context = copy_reference_app(tmp_path / "app")
    locked = run_cli("base", "lock", "--server", "granian", "--registry", registry, "--context", str(context))
    assert locked.returncode == 0, locked.stderr
    lock_file = context / "imgtool.lock"
    lock_file.write_text(lock_file.read_text().replace(pushed_bases["granian"], "sha256:" + "0" * 64))
    app_images.append("imgtool-test-tampered:granian")

    build = run_cli("build", "--server", "granian", "--context", str(context), "--tag", "imgtool-test-tampered:granian")
    assert build.returncode == 2, build.stderr
    line = single_line_error(build.stderr)
    assert "tampered" in line and "imgtool base lock" in line

    frozen = run_cli("build", "--server", "granian", "--context", str(context), "--frozen")
    assert frozen.returncode == 2, frozen.stderr
    line = single_line_error(frozen.stderr)
    assert "--frozen" in line and "imgtool base lock" in line


def test_frozen_without_a_lock_is_a_usage_error(tmp_path):
    context = copy_reference_app(tmp_path / "app")
    result = run_cli("build", "--server", "granian", "--context", str(context), "--frozen")
    assert result.returncode == 2
    assert "imgtool base lock" in single_line_error(result.stderr)


def test_pushing_to_an_unreachable_registry_fails_in_one_line(docker_client, pushed_bases, registry):
    # The bases were untagged after the push: pull one back so there is something to push.
    pulled = run_cli("base", "pull", "--server", "granian", "--registry", registry, "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)[0]["digest"] == pushed_bases["granian"]
    port = _free_port(5999)
    assert _port_free(port)
    result = run_cli("base", "push", "--server", "granian", "--registry", f"localhost:{port}")
    assert result.returncode == 2, result.stderr
    line = single_line_error(result.stderr)
    assert "unreachable" in line and f"localhost:{port}" in line
    # The temporary name for the push is gone again.
    assert not any(name.startswith(f"localhost:{port}/") for name in _all_names(docker_client))


def test_plain_http_is_refused_for_a_registry_elsewhere():
    result = run_cli("base", "push", "--server", "granian", "--registry", "registry.example.com")
    assert result.returncode == 2
    assert "https://" in single_line_error(result.stderr)
