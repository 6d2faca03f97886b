"""Issue 20, the daily loop, on a real engine: `imgtool dev` (hot reload under Compose Watch), a private
package index behind a password (and the password in no layer, history or label), and a compose stack
with the app and Postgres that comes up healthy, the app reaching the database.

Names: images, containers and compose projects start with $IMGTOOL_TEST_PREFIX (default imgtool-test)
plus a random part, so runs beside each other on one shared engine never touch each other's things.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
import yaml

from tests.conftest import ROOT, cli_env, run_cli
from tests.integration.conftest import copy_reference_app, edit, running, wait_for_health
from tests.integration.test_compose import Stack, free_port_base
from toolkit.base import BOOTSTRAP_IMAGE
from toolkit.engine import image_exists

pytestmark = pytest.mark.docker

PREFIX = os.environ.get("IMGTOOL_TEST_PREFIX", "imgtool-test")
STANDINS = Path(__file__).parent / "standins"
# Edit → served: about two seconds is the goal (one uvicorn restart of the Litestar app); the bound
# leaves room for a shared, loaded 2-core machine.
EDIT_SERVED_WITHIN = 10.0
REBUILD_WITHIN = 240.0


def unique(kind: str) -> str:
    return f"{PREFIX}-{kind}-{secrets.token_hex(4)}"


# ---- 1. imgtool dev: an edit is served without a rebuild; a dependency change rebuilds ----


def compose_containers(client: docker.DockerClient, project: str, service: str = "app") -> list:
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    return client.containers.list(filters={"label": labels})


def healthy_container(client: docker.DockerClient, project: str, not_id: str | None, timeout: float):
    """The service's running, healthy container (other than `not_id`), waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for container in compose_containers(client, project):
            if container.id != not_id and (container.attrs["State"].get("Health") or {}).get("Status") == "healthy":
                return container
        time.sleep(0.25)
    raise AssertionError(f"no healthy new container in {project} within {timeout:.0f} s")


def served_within(url: str, text: str, timeout: float) -> float:
    """Seconds until GET url answers with `text` in its body."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.TransportError):
            if text in httpx.get(url, timeout=2).text:
                return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} did not serve {text!r} within {timeout} s")


def test_dev_serves_an_edit_without_rebuilding_and_rebuilds_on_a_dependency_change(
    docker_client, tmp_path, record_property
):
    project_dir = copy_reference_app(tmp_path / "proj")
    output = tmp_path / "compose.dev.yaml"
    port = free_port_base(1)
    project = unique("dev")
    log = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "dev", "--context", str(project_dir), "-o", str(output), "--port", str(port)],
        cwd=ROOT,
        env=cli_env({"COMPOSE_PROJECT_NAME": project}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The emitted file runs on its own: develop.watch syncs the code, rebuilds on pyproject.toml.
        wait_for_health(f"http://127.0.0.1:{port}/health", timeout=300)
        watch = yaml.safe_load(output.read_text())["services"]["app"]["develop"]["watch"]
        assert [rule["action"] for rule in watch] == ["sync", "rebuild"]
        first = healthy_container(docker_client, project, None, timeout=60)
        host = first.attrs["HostConfig"]
        assert first.attrs["Config"]["User"] == "10001:10001"
        assert host["ReadonlyRootfs"] is False and host["CapDrop"] == ["ALL"]
        assert host["PortBindings"]["8000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]

        # An edited route is served by the same container, within seconds.
        edit(project_dir / "app.py", "Hello from imgtool's reference app", "Hello from an edit on the host")
        latency = served_within(f"http://127.0.0.1:{port}/", "Hello from an edit on the host", EDIT_SERVED_WITHIN)
        record_property("edit_to_served_seconds", round(latency, 2))
        assert [c.id for c in compose_containers(docker_client, project)] == [first.id], "an edit must not rebuild"
        owner = first.exec_run(["stat", "-c", "%u", "/app/app.py"]).output.decode().strip()
        assert owner == "10001", "the synced file is written by the app user"

        # A new dependency rebuilds the image and replaces the container; the package is then importable.
        # (A comment unique to this run: no earlier run's install layer can be reused.)
        edit(
            project_dir / "pyproject.toml",
            '"litestar>=2.12,<3"',
            f'"litestar>=2.12,<3", "six>=1.16",  # run {project}\n',
        )
        started = time.monotonic()
        second = healthy_container(docker_client, project, first.id, timeout=REBUILD_WITHIN)
        rebuild = time.monotonic() - started
        record_property("dependency_change_to_healthy_seconds", round(rebuild, 1))
        check = second.exec_run(["python", "-c", "import six; print(six.__version__)"])
        assert check.exit_code == 0, check.output.decode()
        # The rebuilt image has the edit too (it was synced into the context's copy all along).
        assert "Hello from an edit on the host" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        print(
            f"\nimgtool dev: edit -> served in {latency:.2f} s; "
            f"pyproject.toml edit -> rebuilt and healthy in {rebuild:.1f} s"
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.close()
        down = subprocess.run(
            ["docker", "compose", "-p", project, "-f", str(output), "down", "-v", "--rmi", "local", "--remove-orphans"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    said = (tmp_path / "dev.log").read_text()
    assert code == 130, f"imgtool dev exited {code}:\n{said[-3000:]}"
    assert "Traceback" not in said
    assert down.returncode == 0, down.stderr
    assert docker_client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}) == []


# ---- 2. a private index behind a password; the password in no layer, history or label ----


def probe_wheel(name: str, version: str, module: str, body: str) -> tuple[str, bytes]:
    """A pure-Python wheel, written by hand (no build tools needed)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": body,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: imgtool-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record, buffer = [], io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


class PrivateIndex:
    """A PEP 503 simple index of one wheel on 127.0.0.1, answering 401 to every request without the login."""

    def __init__(self, project: str, wheel_name: str, wheel: bytes, username: str, password: str):
        self.requests: list[tuple[str, str, bool]] = []
        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        sha256 = hashlib.sha256(wheel).hexdigest()
        page = f'<html><body><a href="/files/{wheel_name}#sha256={sha256}">{wheel_name}</a></body></html>'.encode()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, with_body: bool) -> None:
                authorized = self.headers.get("Authorization") == expected
                index.requests.append((self.command, self.path, authorized))
                if not authorized:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, kind = {
                    f"/simple/{project}/": (page, "text/html"),
                    f"/files/{wheel_name}": (wheel, "application/octet-stream"),
                }.get(self.path, (None, None))
                if body is None:
                    self.send_response(404)  # not here: uv goes on to the next index
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self):
                self.answer(True)

            def do_HEAD(self):
                self.answer(False)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PrivateIndex:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _layer_bytes(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    assert data[:4] != b"\x28\xb5\x2f\xfd", "a zstd layer: this scan cannot read it"
    return data


def scan_image(client: docker.DockerClient, ref: str, needles: list[bytes]) -> dict:
    """Every layer of `docker save` (manifest.json's Layers, OCI layout or not), the image config
    (history, labels, env), `docker history` and the labels, searched for each needle."""
    found: list[str] = []
    saved = io.BytesIO()
    for chunk in client.images.get(ref).save(named=True):
        saved.write(chunk)
    saved.seek(0)
    with tarfile.open(fileobj=saved) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        assert len(manifest) == 1
        layers = manifest[0]["Layers"]
        assert layers, "no layers listed in manifest.json"
        for layer in layers:
            content = _layer_bytes(archive.extractfile(layer).read())
            found += [f"layer {layer}" for needle in needles if needle in content]
        config = archive.extractfile(manifest[0]["Config"]).read()
        found += ["image config" for needle in needles if needle in config]
        image_config = json.loads(config)
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref], capture_output=True, check=True
    ).stdout
    found += ["docker history" for needle in needles if needle in history]
    labels = json.dumps(client.images.get(ref).labels).encode()
    found += ["labels" for needle in needles if needle in labels]
    return {"layers": len(layers), "history": len(image_config.get("history", [])), "found": found}


def test_private_index_package_installs_and_the_password_is_in_no_layer(docker_client, tmp_path, record_property):
    username, password = "imgtool-probe", secrets.token_urlsafe(24)
    wheel_name, wheel = probe_wheel(
        "imgtool-probe-private", "1.0", "imgtool_probe_private", 'VALUE = "served from the private index"\n'
    )
    project_dir = tmp_path / "private"
    project_dir.mkdir()
    (project_dir / "main.py").write_text(
        "import imgtool_probe_private\n\n\n"
        "async def app(scope, receive, send):\n"
        '    if scope["type"] != "http":\n'
        "        return\n"
        "    body = imgtool_probe_private.VALUE.encode()\n"
        '    headers = [(b"content-type", b"text/plain")]\n'
        '    await send({"type": "http.response.start", "status": 200, "headers": headers})\n'
        '    await send({"type": "http.response.body", "body": body})\n'
    )
    tag = f"{unique('private')}:granian"
    with PrivateIndex("imgtool-probe-private", wheel_name, wheel, username, password) as index:
        (project_dir / "pyproject.toml").write_text(
            '[project]\nname = "private-probe"\nversion = "0"\ndependencies = ["imgtool-probe-private==1.0"]\n\n'
            f'[tool.imgtool]\napp = "main:app"\nextra-index-url = ["{index.url}"]\n'
        )
        # A build reaches the host's 127.0.0.1 only on the host network (a real index is not on localhost).
        result = run_cli(
            "build", "-s", "granian", "--context", str(project_dir), "--tag", tag, "--network", "host", "--json",
            env={"IMGTOOL_INDEX_USERNAME": username, "IMGTOOL_INDEX_PASSWORD": password},
        )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert password not in result.stdout + result.stderr
        # The wheel came from the index, with the login; nothing was served without it.
        assert ("GET", f"/files/{wheel_name}", True) in index.requests
        assert all(authorized for _, path, authorized in index.requests if path.startswith("/files/"))

        with running(docker_client, tag) as (_, target):
            response = wait_for_health(f"http://127.0.0.1:{target.port}/")
            assert response.text == "served from the private index"

        login = base64.b64encode(f"{username}:{password}".encode())
        scan = scan_image(docker_client, tag, [password.encode(), login])
        record_property("layers_scanned", scan["layers"])
        print(
            f"\nsecret scan: {scan['layers']} layers, the config ({scan['history']} history entries), "
            f"docker history and labels; found in: {scan['found'] or 'none'}"
        )
        assert scan["found"] == [], f"the index password leaked into {scan['found']}"
        # The same scan does find what it looks for: the wheel's text is in one of the layers.
        assert scan_image(docker_client, tag, [b"served from the private index"])["found"]
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


# ---- 3. compose --with postgres: the stack comes up healthy and the app reaches the database ----

DB_APP = '''\
"""A tiny ASGI app that proves it reaches Postgres: /health, and /db (a write, then a read)."""

import json
import os

import psycopg


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = {"status": "ok"}
    if scope["path"] == "/db":
        async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"]) as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY)")
            await conn.execute("INSERT INTO visits DEFAULT VALUES")
            visits = (await (await conn.execute("SELECT count(*) FROM visits")).fetchone())[0]
            version = (await (await conn.execute("SHOW server_version")).fetchone())[0]
        body = {"visits": visits, "server_version": version}
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
'''


@pytest.fixture(scope="module")
def postgres_standin(docker_client) -> Iterator[str]:
    """PostgreSQL 15 from Debian's packages on the offline base: no registry can be reached here, so
    the official image cannot be pulled; this one takes the same POSTGRES_* variables and data dir."""
    # The offline base where no registry answers; any Debian bookworm image with apt will do.
    base = BOOTSTRAP_IMAGE if image_exists(docker_client, BOOTSTRAP_IMAGE) else "python:3.11-slim"
    tag = f"{unique('postgres-standin')}:15"
    result = subprocess.run(
        ["docker", "buildx", "build", "--load", "--quiet", "--tag", tag,
         "--build-arg", f"BASE={base}", str(STANDINS / "postgres")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, f"building the Postgres stand-in failed:\n{result.stderr[-3000:]}"
    yield tag
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag, force=True)


def test_stack_with_postgres_comes_up_healthy_and_the_app_reaches_the_database(
    docker_client, postgres_standin, tmp_path, record_property
):
    project_dir = tmp_path / "dbapp"
    project_dir.mkdir()
    (project_dir / "main.py").write_text(DB_APP)
    (project_dir / "pyproject.toml").write_text(
        '[project]\nname = "dbapp"\nversion = "0"\ndependencies = ["psycopg[binary]>=3.2,<4"]\n\n'
        '[tool.imgtool]\napp = "main:app"\n'
    )
    output = tmp_path / "compose.yaml"
    port = free_port_base(1)
    result = run_cli(
        "compose", "-s", "granian", "--build", "--context", str(project_dir), "-o", str(output),
        "--port-base", str(port), "--with", f"postgres={postgres_standin}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    model = yaml.safe_load(output.read_text())
    app, db = model["services"]["granian"], model["services"]["postgres"]
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert db["image"] == postgres_standin and db["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "ports" not in db and model["volumes"] == {"postgres-data": {}}

    stack = Stack(output)
    stack.project = unique("stack")
    try:
        stack.up("--build")
        record_property("up_to_healthy_seconds", round(stack.up_seconds, 2))
        print(f"\napp + postgres stand-in: up --build --wait -> healthy in {stack.up_seconds:.1f} s")
        services = {c.labels["com.docker.compose.service"]: c for c in stack.containers(docker_client)}
        assert sorted(services) == ["granian", "postgres"]
        for container in services.values():
            container.reload()
            assert container.attrs["State"]["Health"]["Status"] == "healthy"
        first = httpx.get(f"http://127.0.0.1:{port}/db", timeout=10).json()
        second = httpx.get(f"http://127.0.0.1:{port}/db", timeout=10).json()
        assert re.match(r"15\.", first["server_version"]), first
        assert second["visits"] == first["visits"] + 1
    finally:
        down = stack.down("--rmi", "local")
    assert down.returncode == 0, down.stderr[-2000:]
    assert stack.leftovers(docker_client) == []
