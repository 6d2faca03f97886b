"""Integration fixtures: the five reference images, and deliberately broken variants of them."""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import ROOT, RUN_ID, TAG_PREFIX, cli_env, run_cli
from toolkit.config import BUNDLED_APP_CONTEXT
from toolkit.servers import SERVERS
from toolkit.smoke.checks import Target

BROKEN_PREFIX = f"{TAG_PREFIX}imgtool-test-broken"


@pytest.fixture(scope="session")
def reference_images(docker_client) -> dict[str, str]:
    """Build the bundled app for all five servers once, as a user would: `imgtool build --all`."""
    result = run_cli("build", "--all", "--json")
    assert result.returncode == 0, f"imgtool build --all failed:\n{result.stderr[-3000:]}"
    built = {entry["server"]: entry["tag"] for entry in json.loads(result.stdout)}
    assert set(built) == set(SERVERS)
    return built


def copy_reference_app(destination: Path) -> Path:
    shutil.copytree(BUNDLED_APP_CONTEXT, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="session")
def broken_images(docker_client, reference_images, tmp_path_factory) -> dict[str, str]:
    """Images that must fail one check each; removed at the end of the session."""
    root = tmp_path_factory.mktemp("broken")
    images: dict[str, str] = {}

    def build(name: str, server: str, context: Path) -> None:
        tag = f"{BROKEN_PREFIX}-{name}:{server}"
        result = run_cli("build", "--server", server, "--context", str(context), "--tag", tag, "--json")
        assert result.returncode == 0, f"building {tag} failed:\n{result.stderr[-3000:]}"
        images[name] = tag

    wrong_health = copy_reference_app(root / "wrong-health")
    edit(wrong_health / "pyproject.toml", 'routes = "reference"', 'routes = "reference"\nhealth-path = "/missing"')
    build("wrong-health", "granian", wrong_health)

    crash = copy_reference_app(root / "crash")
    edit(
        crash / "app.py",
        "on_startup=[startup],",
        "on_startup=[startup, crash_on_purpose],",
    )
    edit(
        crash / "app.py",
        "app = Litestar(",
        "def crash_on_purpose() -> None:\n"
        '    raise RuntimeError("imgtool-test: startup crashed on purpose")\n\n\n'
        "app = Litestar(",
    )
    build("crash", "uvicorn", crash)

    no_ws = copy_reference_app(root / "no-ws")
    edit(
        no_ws / "app.py",
        "route_handlers=[index, health, info, stream, slow, error, echo]",
        "route_handlers=[index, health, info, stream, slow, error]",
    )
    build("no-ws", "granian", no_ws)

    # PID 1 ignores SIGTERM and never passes it on (like `sh -c 'trap "" TERM; ...'`; the image has no shell):
    # no graceful shutdown. The ignored signal is inherited by the server it starts.
    ignores_term = f"{BROKEN_PREFIX}-ignores-sigterm:granian"
    pid1 = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.call([sys.executable, '/opt/imgtool/launch.py', *sys.argv[1:]]); time.sleep(3600)"
    )
    dockerfile = (
        f"FROM {reference_images['granian']}\n"
        f"ENTRYPOINT {json.dumps(['/opt/venv/bin/python', '-c', pid1])}\n"
        # A new ENTRYPOINT resets CMD: keep the server command.
        f"CMD {json.dumps(docker_client.images.get(reference_images['granian']).attrs['Config']['Cmd'])}\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ignores_term, rm=True)
    images["ignores-sigterm"] = ignores_term

    yield images
    for tag in images.values():
        docker_client.images.remove(tag, force=True)


def leftover_test_containers(client: docker.DockerClient) -> list[str]:
    return [c.name for c in client.containers.list(all=True, filters={"label": f"imgtool.test={RUN_ID}"})]


def single_line_error(stderr: str) -> str:
    """The one `imgtool: error:` line (notes printed before it are information, not errors)."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.strip().splitlines() if line.startswith("imgtool: error:")]
    assert len(errors) == 1, f"expected one error line, got:\n{stderr}"
    return re.sub(r"\s+", " ", errors[0])


def wait_for_health(url: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout}s")
        time.sleep(0.1)


def interrupt_once_running(docker_client, *args: str, settle: float = 0.0) -> str:
    """Run `imgtool ARGS`, send SIGINT once its first container is up (plus `settle` s); its stderr.

    Asserts it exits 130 without a traceback and leaves none of this session's containers behind.
    """
    assert leftover_test_containers(docker_client) == [], "an earlier test left containers"
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    deadline = time.monotonic() + 30
    while not leftover_test_containers(docker_client):
        assert time.monotonic() < deadline, f"imgtool {args[0]} never started a container"
        time.sleep(0.05)
    time.sleep(settle)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert leftover_test_containers(docker_client) == []
    return stderr


@contextlib.contextmanager
def running(client, tag: str, **options):
    """A container of `tag` published on 127.0.0.1, labelled with this session's run id, always removed.

    Yields the container and a Target for its published port.
    """
    container = client.containers.run(
        tag,
        detach=True,
        labels={"imgtool.test": RUN_ID},
        ports={"8000/tcp": ("127.0.0.1", None)},
        **options,
    )
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])
        yield container, Target(port=port)
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def second_engine(root: Path):
    """A second Docker engine beside the first: its own dockerd, socket, data-root, exec-root and bridge.

    Stands for a remote builder or another machine with an empty cache. Its bridge has no NAT
    (`--iptables=false`), so builds there that download packages need `--network host`. Everything
    is removed afterwards, also on failure. Yields the engine's DOCKER_HOST.
    """
    suffix = secrets.token_hex(3)
    bridge = f"imgt{suffix}"
    # A /24 of its own; `--bridge none` would delete the first engine's docker0 (ENVIRONMENT.md).
    subnet = f"172.30.{200 + int(suffix, 16) % 50}"
    socket_path = root / "docker.sock"
    pidfile = root / "docker.pid"
    data_root, exec_root = root / "data", Path(f"/run/imgtool-test-{suffix}")
    log = (root / "dockerd.log").open("w")
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    process = None
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        process = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(data_root),
                "--exec-root", str(exec_root),
                "--pidfile", str(pidfile),
                "--host", f"unix://{socket_path}",
                "--bridge", bridge,
                "--iptables=false",
                "--ip6tables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        host = f"unix://{socket_path}"
        client = docker.DockerClient(base_url=host, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.ping()
                break
            except docker.errors.DockerException:
                said = (root / "dockerd.log").read_text()[-2000:]
                assert process.poll() is None, f"the second dockerd exited:\n{said}"
                assert time.monotonic() < deadline, "the second dockerd did not answer within 60 s"
                time.sleep(0.3)
        yield host
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        subprocess.run(["umount", "-R", str(data_root)], capture_output=True)
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
