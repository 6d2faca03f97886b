"""Integration fixtures: the five reference images, and deliberately broken variants of them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import ROOT, RUN_ID, TAG_PREFIX, cli_env, run_cli
from toolkit import containers
from toolkit.config import BUNDLED_APP_CONTEXT
from toolkit.servers import SERVERS
from toolkit.smoke.checks import Target

BROKEN_PREFIX = f"{TAG_PREFIX}imgtool-test-broken"
REGISTRY_BINARY = "docker-registry"
REGISTRY_IMAGE = os.environ.get("IMGTOOL_TEST_REGISTRY_IMAGE", "registry:2")


@pytest.fixture(scope="session")
def reference_images(docker_client) -> dict[str, str]:
    """Build the bundled app for all five servers once, as a user would: `imgtool build --demo --all`."""
    result = run_cli("build", "--demo", "--all", "--json")
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
    edit(wrong_health / "pyproject.toml", 'health-path = "/health"', 'health-path = "/missing"')
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
    return [c.name for c in client.containers.list(all=True, filters={"label": f"{containers.TEST_LABEL}={RUN_ID}"})]


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
    """A container of `tag` on imgtool's container contract: published on 127.0.0.1, labelled with this
    session's run id, always removed.

    Yields the container and a Target for its published port.
    """
    with containers.run_container(
        client, tag, run_id=RUN_ID, role=containers.Role.MAIN, port=8000, subject=tag, **options
    ) as container:
        yield container, Target(port=containers.host_port(container, 8000))


def _unmount_under(*roots: Path) -> None:
    """Unmount whatever an engine left mounted below these directories (deepest first): netns, overlays."""
    prefixes = [str(root).rstrip("/") + "/" for root in roots] + [str(root) for root in roots]
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if len(line.split()) > 1]
    for point in sorted({m for m in mounts if any(m == p or m.startswith(p) for p in prefixes)}, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@contextlib.contextmanager
def second_engine(root: Path, *, containerd_snapshotter: bool = False):
    """A second Docker engine beside the first: its own dockerd, socket, data-root, exec-root and bridge.

    Stands for a remote builder or another machine with an empty cache. Its bridge has no NAT
    (`--iptables=false`), so builds there that download packages need `--network host`. It reads its
    own daemon.json, never the first engine's; `containerd_snapshotter` turns on the containerd image
    store there (what registry cache export with the docker driver needs). Everything is removed
    afterwards, also on failure. Yields the engine's DOCKER_HOST.
    """
    suffix = secrets.token_hex(3)
    bridge = f"imgt{suffix}"
    # A /24 of its own; `--bridge none` would delete the first engine's docker0 (ENVIRONMENT.md).
    subnet = f"172.30.{200 + int(suffix, 16) % 50}"
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    pidfile = root / "docker.pid"
    config_file = root / "daemon.json"
    config_file.write_text(json.dumps({"features": {"containerd-snapshotter": True}} if containerd_snapshotter else {}))
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
                "--config-file", str(config_file),
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
        deadline = time.monotonic() + 60
        while True:
            try:
                # Made in the loop: the client asks the API version as it is made, before the socket exists.
                docker.DockerClient(base_url=host, timeout=120).ping()
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
        _unmount_under(data_root, exec_root)
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)


# ---- a registry on 127.0.0.1 (session), shared by test_registry, test_remote and test_swarm ----


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


def registry_digest(registry: str, repository: str, tag: str) -> str:
    """The digest the registry serves for repository:tag (what `docker pull` would get), via its HTTP API."""
    accept = ", ".join(
        (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    )
    response = httpx.head(f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=10)
    assert response.status_code == 200, f"{registry}/{repository}:{tag}: HTTP {response.status_code}"
    return response.headers["Docker-Content-Digest"]


def docker_config(root: Path, contexts: dict[str, str]) -> dict[str, str]:
    """A Docker CLI configuration of its own with a context per engine; the environment that selects it.

    The user's ~/.docker stays untouched (no context is created or switched there); the CLI plugins
    (buildx, compose) are linked in, since DOCKER_CONFIG also moves where the CLI looks for them.
    """
    root.mkdir(parents=True)
    plugins = Path.home() / ".docker" / "cli-plugins"
    if plugins.is_dir():
        (root / "cli-plugins").symlink_to(plugins)
    env = {key: value for key, value in os.environ.items() if key not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(root)
    for name, host in contexts.items():
        subprocess.run(
            ["docker", "context", "create", name, "--docker", f"host={host}"], check=True, capture_output=True, env=env
        )
    return env


def load_image(source: docker.DockerClient, target_host: str, ref: str) -> None:
    """Copy an image from one engine to another (`docker save | docker load`), as a registry pull would."""
    target = docker.DockerClient(base_url=target_host, timeout=600)
    try:
        # named: a save by image id (the default) loads as an untagged image in the containerd store.
        target.images.load(source.images.get(ref).save(named=ref))
    finally:
        target.close()


@contextlib.contextmanager
def single_node_swarm(host: str):
    """`docker swarm init` on the engine at `host` (a second engine), left again afterwards, also on failure.

    Everything the swarm binds is its own, so it never meets another swarm on this machine (the first
    engine's, another test run's): it listens on an address of its own in 127.0.0.0/8 (manager and gossip
    ports), its VXLAN port is random (within the 1024-49151 Docker accepts), and its `docker_gwbridge`
    (which Swarm otherwise creates with a fixed Linux bridge name) is made beforehand with a bridge name
    of its own. The ingress routing mesh does not work on this kernel (no IPVS): stacks here use
    endpoint_mode dnsrr. Yields a client.
    """
    client = docker.DockerClient(base_url=host, timeout=300)
    suffix = secrets.token_hex(3)
    number = int(suffix, 16)
    address = f"127.{100 + number % 150}.{(number >> 8) % 250 + 1}.{(number >> 16) % 250 + 1}"
    gateway_bridge = f"imgw{suffix}"
    env = {**os.environ, "DOCKER_HOST": host}
    env.pop("DOCKER_CONTEXT", None)
    client.networks.create(
        "docker_gwbridge",
        driver="bridge",
        options={
            "com.docker.network.bridge.name": gateway_bridge,
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.enable_ip_masquerade": "false",
        },
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"172.30.{250 + number % 5}.0/24")]),
    )
    try:
        init = subprocess.run(
            [
                "docker", "swarm", "init",
                "--advertise-addr", f"{address}:2377",
                "--listen-addr", f"{address}:2377",
                "--data-path-port", str(40000 + number % 9000),
                "--default-addr-pool", "10.231.0.0/16",
            ],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert init.returncode == 0, f"docker swarm init failed: {init.stderr}"
        yield client
    finally:
        subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, env=env, timeout=120)
        with contextlib.suppress(docker.errors.DockerException):
            client.networks.get("docker_gwbridge").remove()
        subprocess.run(["ip", "link", "delete", gateway_bridge], capture_output=True)
        client.close()


@pytest.fixture(scope="session")
def pushed_app(docker_client, registry):
    """The bundled app for granian, built once and pushed to the session registry as a cluster would pull it:
    yields (`<registry>/<name>` repository, the pushed digest). Its local name is removed right away: the
    image is in the registry, and other tests expect no local image under the registry's name."""
    repository = f"{registry}/imgtool-test-app-{RUN_ID}"
    try:
        built = run_cli(
            "build", "-s", "granian", "--context", "images/app", "--tag", f"{repository}:{{server}}", "--push",
            "--json", timeout=900,
        )  # fmt: skip
        assert built.returncode == 0, f"imgtool build --push failed:\n{built.stderr[-3000:]}"
        digest = json.loads(built.stdout)[0]["digest"]
        assert digest and digest == registry_digest(registry, repository.split("/", 1)[1], "granian")
        forget_names(docker_client, repository)
        yield repository, digest
    finally:
        forget_names(docker_client, repository)


def forget_names(client: docker.DockerClient, repository: str) -> None:
    """Remove every local name under `repository`, tags and digest references (a pull by digest, a push
    add those). Never by image id: a fully cached build shares its id with other tags, which stay."""
    for image in client.images.list():
        for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if name.startswith(f"{repository}:") or name.startswith(f"{repository}@"):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(name)
