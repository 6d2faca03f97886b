"""`imgtool compose` on a real engine: emitted stacks come up healthy with `docker compose up --wait`,
answer on their 127.0.0.1 ports, and `docker compose down -v` leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
import yaml

from tests.conftest import ROOT, TAG_PREFIX, run_cli
from tests.integration.conftest import single_line_error
from toolkit.servers import SERVERS

pytestmark = pytest.mark.docker

REFERENCE = ROOT / "compose.yaml"
WAIT_TIMEOUT = 180


# ---- helpers ----


def free_port_base(count: int) -> int:
    """A run of `count` consecutive ports nobody listens on at 127.0.0.1."""
    for _ in range(50):
        base = random.randrange(20000, 40000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError("no free run of ports on 127.0.0.1")


def require_free(ports: list[int]) -> None:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                pytest.fail(f"127.0.0.1:{port} is taken; the reference compose.yaml publishes 8001-8005")


class Stack:
    """One `docker compose` project, under a name no other run uses."""

    def __init__(self, file: Path, profiles: tuple[str, ...] = ()):
        self.file = file
        self.project = f"imgtool-compose-test-{uuid.uuid4().hex[:8]}"
        self.profiles = profiles
        self.up_seconds: float | None = None

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        profiles = [arg for name in self.profiles for arg in ("--profile", name)]
        command = ["docker", "compose", "-p", self.project, "-f", str(self.file), *profiles, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def up(self, *extra: str) -> None:
        started = time.monotonic()
        result = self.compose("up", "-d", "--wait", "--wait-timeout", str(WAIT_TIMEOUT), *extra)
        self.up_seconds = time.monotonic() - started
        if result.returncode != 0:
            logs = self.compose("logs", "--no-color", "--tail", "30").stdout
            pytest.fail(f"docker compose up --wait failed:\n{result.stderr[-3000:]}\n--- logs ---\n{logs[-4000:]}")

    def down(self, *extra: str) -> subprocess.CompletedProcess:
        return self.compose("down", "-v", "--remove-orphans", *extra, timeout=300)

    def containers(self, client: docker.DockerClient) -> list:
        label = f"com.docker.compose.project={self.project}"
        return client.containers.list(all=True, filters={"label": label})

    def leftovers(self, client: docker.DockerClient) -> list[str]:
        label = f"com.docker.compose.project={self.project}"
        found = [f"container {c.name}" for c in self.containers(client)]
        found += [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
        found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": label})]
        found += [f"image {tag}" for i in client.images.list(filters={"label": label}) for tag in i.tags]
        return found


@contextlib.contextmanager
def running(
    client: docker.DockerClient, file: Path, profiles: tuple[str, ...] = (), build: bool = False
) -> Iterator[Stack]:
    """Up with --wait, yield, and always `down -v` (plus the images compose built); nothing may remain."""
    stack = Stack(file, profiles)
    try:
        stack.up(*(["--build"] if build else []))
        yield stack
    finally:
        result = stack.down(*(["--rmi", "local"] if build else []))
        assert result.returncode == 0, result.stderr[-2000:]
    assert stack.leftovers(client) == []


def without_build_command(dockerfile: str) -> str:
    return "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#   docker buildx build "))


def emit(*args: str) -> subprocess.CompletedProcess:
    result = run_cli("compose", "--demo", *args)
    assert result.returncode == 0, result.stderr
    return result


def assert_serving(client: docker.DockerClient, stack: Stack, expected: dict[str, int]) -> None:
    """Every service healthy, published on 127.0.0.1 only, answering /health and naming its server."""
    containers = {c.labels["com.docker.compose.service"]: c for c in stack.containers(client)}
    assert sorted(containers) == sorted(expected)
    for server, port in expected.items():
        container = containers[server]
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "healthy", server
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        bindings = host["PortBindings"]["8000/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 200, server
        assert health.json()["status"] == "ok"
        info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=5).json()
        assert info["server"] == server


# ---- emitted stacks ----


def test_emitted_five_server_stack_comes_up_healthy(docker_client, reference_images, tmp_path, record_property):
    base = free_port_base(len(SERVERS))
    output = tmp_path / "compose.yaml"
    emit("--all", "-o", str(output), "--port-base", str(base))
    model = yaml.safe_load(output.read_text())
    assert [s["image"] for s in model["services"].values()] == list(reference_images.values())
    expected = {name: base + index for index, name in enumerate(SERVERS)}
    with running(docker_client, output) as stack:
        record_property("up_to_healthy_seconds", round(stack.up_seconds, 2))
        print(f"\n5-service stack: up -> all healthy in {stack.up_seconds:.2f} s")
        assert_serving(docker_client, stack, expected)


def test_one_server_stack_with_json_summary(docker_client, reference_images, tmp_path):
    base = free_port_base(1)
    output = tmp_path / "one.yaml"
    result = emit("-s", "granian", "-o", str(output), "--port-base", str(base), "--json")
    summary = json.loads(result.stdout)
    assert summary["mode"] == "image"
    assert summary["services"] == [
        {
            "server": "granian",
            "port": base,
            "url": f"http://127.0.0.1:{base}",
            "image": reference_images["granian"],
            "dockerfile": None,
        }
    ]
    with running(docker_client, output) as stack:
        assert_serving(docker_client, stack, {"granian": base})


def test_profile_starts_only_its_server(docker_client, reference_images, tmp_path):
    base = free_port_base(len(SERVERS))
    output = tmp_path / "compose.yaml"
    emit("--all", "--profile", "-o", str(output), "--port-base", str(base))
    with running(docker_client, output, profiles=("daphne",)) as stack:
        assert_serving(docker_client, stack, {"daphne": base + list(SERVERS).index("daphne")})


def test_build_mode_builds_from_the_generated_dockerfile(docker_client, tmp_path):
    base = free_port_base(1)
    output = tmp_path / "compose.yaml"
    emit("-s", "granian", "--build", "-o", str(output), "--port-base", str(base))
    dockerfile = tmp_path / ".imgtool" / "compose" / "granian.Dockerfile"
    # The same Dockerfile; only the build command in its header names where this copy lives.
    assert without_build_command(dockerfile.read_text()) == without_build_command(
        run_cli("render", "--demo", "-s", "granian").stdout
    )
    service = yaml.safe_load(output.read_text())["services"]["granian"]
    assert service["build"]["dockerfile"] == str(dockerfile)
    with running(docker_client, output, build=True) as stack:
        assert_serving(docker_client, stack, {"granian": base})
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{stack.project}-granian")


# ---- the repository's reference stack ----


def test_reference_compose_is_up_to_date(reference_images, tmp_path):
    output = tmp_path / "reference.yaml"  # any name and place: image mode writes no path into the file
    emit("--all", "-o", str(output))
    # The committed file names the default tags; a session's IMGTOOL_TAG_PREFIX is its own.
    emitted = output.read_text().replace(f"image: {TAG_PREFIX}imgtool-", "image: imgtool-")
    assert emitted == REFERENCE.read_text(), (
        "compose.yaml is stale: regenerate it with `imgtool compose --all -o compose.yaml`"
    )


def test_reference_compose_comes_up_healthy(docker_client, reference_images, record_property):
    expected = {name: 8001 + index for index, name in enumerate(SERVERS)}
    require_free(list(expected.values()))
    with running(docker_client, REFERENCE) as stack:
        record_property("up_to_healthy_seconds", round(stack.up_seconds, 2))
        print(f"\nreference compose.yaml: up -> all healthy in {stack.up_seconds:.2f} s")
        assert_serving(docker_client, stack, expected)


# ---- bad input: exit 2, one line, no traceback, no file ----


def assert_usage_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    line = single_line_error(result.stderr)
    assert line.startswith("imgtool: error: ")
    assert fragment in line
    assert "Traceback" not in result.stdout


def test_unknown_server(tmp_path):
    output = tmp_path / "compose.yaml"
    assert_usage_error(run_cli("compose", "--demo", "-s", "nginx", "-o", str(output)), "unknown server 'nginx'")
    assert list(tmp_path.iterdir()) == []


def test_output_in_missing_directory(tmp_path):
    output = tmp_path / "missing" / "compose.yaml"
    assert_usage_error(run_cli("compose", "--demo", "--all", "-o", str(output)), "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("port_base", "message"),
    [
        ("65533", "--port-base 65533 puts 5 services on host ports 65533-65537"),
        ("80", "80 is not a TCP port: use 1024"),
    ],
)
def test_port_range_collision(tmp_path, port_base, message):
    output = tmp_path / "compose.yaml"
    result = run_cli("compose", "--demo", "--all", "-o", str(output), "--port-base", port_base)
    assert_usage_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_keeps_an_existing_file(tmp_path):
    output = tmp_path / "compose.yaml"
    output.write_text("services: {}\n")
    assert_usage_error(run_cli("compose", "--demo", "--all", "-o", str(output), "--port-base", "65535"), "65535")
    assert output.read_text() == "services: {}\n"
    assert [path.name for path in tmp_path.iterdir()] == ["compose.yaml"]
