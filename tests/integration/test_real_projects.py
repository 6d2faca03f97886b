"""Real public projects, zero config: each is copied to a temporary directory and, from that directory
(the current directory is the project), built with nothing but `imgtool build --server S` for granian
and uvicorn, then passes `imgtool test` (run-time settings with --env, as one would pass them).
The images must serve the project's own routes, with exactly the packages its lock pins.

Fixtures (tests/projects/, provenance in tests/projects/README.md):
- litestar-hello-world: litestar-org/litestar-hello-world, PDM (pdm.lock 4.4, [project] dependencies)
- full-stack-fastapi-poetry: fastapi/full-stack-fastapi-template 889a9bf5 backend (poetry.lock 1.8, no [project])
- full-stack-fastapi-uv: the same template at 9ec63eae, a uv workspace whose member `backend` is the app;
  its uv.lock names a package index, so it is generated here (`uv lock --exclude-newer` the commit's date)
- django-startproject: `django-admin startproject mysite .` (Django 5.2) plus requirements.txt
- quart-chat: pallets/quart 657bca7 examples/chat (Poetry 1.x `[tool.poetry.dependencies]`, no lock, src layout)
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import docker.errors
import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.conftest import RUN_ID, TAG_PREFIX, run_cli
from tests.integration.conftest import running
from tests.integration.test_projects import lock_with_uv
from toolkit import engine

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
SERVERS = ("granian", "uvicorn")
# What pydantic-settings in the full-stack template requires at import; one worker keeps a loaded
# 2-core machine from timing out three imports of a large app at once.
FULL_STACK_ENV = {
    "PROJECT_NAME": "imgtool full-stack check",
    "POSTGRES_SERVER": "db.invalid",
    "POSTGRES_USER": "app",
    "FIRST_SUPERUSER": "admin@example.com",
    "FIRST_SUPERUSER_PASSWORD": "not-changethis",
    "WEB_CONCURRENCY": "1",
}


@pytest.fixture
def tags(docker_client):
    """Tags a test builds, removed at its end also when it fails."""
    built: set[str] = set()
    yield built
    for tag in built:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)


def copy_project(name: str, tmp_path: Path, as_name: str | None = None) -> Path:
    destination = tmp_path / (as_name or name)
    shutil.copytree(PROJECTS / name, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def bust_app_layer(project: Path) -> None:
    """A file no earlier run had: the app layer (and its import check) run again, so their output shows."""
    (project / "imgtool-test-run.txt").write_text(uuid.uuid4().hex)


def build(cwd: Path, server: str, *extra: str) -> str:
    result = run_cli("build", "--server", server, *extra, cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


def smoke(cwd: Path, env: dict[str, str], *extra: str) -> dict[str, dict[str, tuple[str, str]]]:
    args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    servers = [arg for server in SERVERS for arg in ("--server", server)]
    result = run_cli("test", *servers, *args, *extra, "--timeout", "90", "--json", cwd=cwd, timeout=600)
    report = json.loads(result.stdout)
    found = {
        entry["server"]: {r["check"]: (r["status"], r["detail"]) for r in entry["results"]}
        for entry in report["servers"]
    }
    logs = "\n".join(entry["logs"][-1500:] for entry in report["servers"])
    assert result.returncode == 0, f"{found}\n{logs}"
    assert set(found) == set(SERVERS)
    for server, checks in found.items():
        for check in ("health", "nonroot", "http1", "readonly"):
            assert checks[check][0] == "pass", (server, check, checks[check])
        # Proven on the project's own routes, as on the bundled app: requests held in the app across SIGTERM.
        status, detail = checks["graceful"]
        assert status == "pass" and detail.startswith("2 requests held 2 s in the app across SIGTERM"), (server, detail)
        # Lifespan from the server's side: ran, or the app refuses it (n/a); never skipped.
        assert checks["lifespan"][0] in ("pass", "n/a"), (server, checks["lifespan"])
    return found


# `ls DIR` with the image's own Python: a distroless image has no ls.
LIST = ("python", "-c", "import os, sys; print(*sorted(os.listdir(sys.argv[1])), sep=chr(10))")


def run_once(docker_client, tag: str, *argv: str, **options) -> str:
    """Run a command in the image instead of its server (labelled with the session's run id, removed)."""
    output = docker_client.containers.run(
        tag, list(argv), entrypoint=[], remove=True, labels={"imgtool.test": RUN_ID}, **options
    )
    return output.decode()


def installed(docker_client, tag: str) -> dict[str, str]:
    """Distribution name (lower case) -> version, as the image's Python sees them."""
    probe = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower(): d.version "
    probe += "for d in m.distributions()}))"
    return json.loads(run_once(docker_client, tag, "python", "-c", probe).strip().splitlines()[-1])


def get(docker_client, tag: str, path: str, env: dict[str, str] | None = None) -> httpx.Response:
    with running(docker_client, tag, environment=env or {}) as (_, target):
        wait_for_health_any(target.url("/"))
        response = httpx.get(target.url(path), timeout=10)
        assert "imgtool's reference app" not in httpx.get(target.url("/"), timeout=10).text
        return response


def wait_for_health_any(url: str) -> None:
    """The server answers at all (any status): these apps have no /health route."""
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_litestar_hello_world_pdm_lock(docker_client, tags, tmp_path):
    project = copy_project("litestar-hello-world", tmp_path)
    tags.update(f"{TAG_PREFIX}imgtool-litestar-hello-world:{server}" for server in SERVERS)
    for server in SERVERS:
        stderr = build(project, server)
        assert "app: app:app (ASGI), detected (app = Litestar(...) (Litestar) in app)" in stderr
        assert (
            "dependencies: pdm.lock (lock_version 4.4, default dependencies and what they need): 38 pinned, "
            "hashes required" in stderr
        )
    results = smoke(project, {})
    assert results["granian"]["h2c"][0] == "pass"
    for server in SERVERS:
        assert results[server]["lifespan"][0] == "pass", results[server]["lifespan"]
        # Litestar's route table, read through the probe: no WebSocket route, so nothing to prove.
        assert results[server]["ws"] == ("skip", "the app's route table (litestar) has no WebSocket route")
    # Its own route, not the bundled app's (which would answer /health).
    assert get(docker_client, f"{TAG_PREFIX}imgtool-litestar-hello-world:granian", "/sync").json() == {"hello": "world"}
    assert get(docker_client, f"{TAG_PREFIX}imgtool-litestar-hello-world:uvicorn", "/health").status_code == 404
    packages = installed(docker_client, f"{TAG_PREFIX}imgtool-litestar-hello-world:granian")
    assert (packages["litestar"], packages["msgspec"], packages["uvicorn"]) == ("2.4.1", "0.18.4", "0.24.0.post1")
    assert not {"pytest", "ruff", "mypy", "pdm", "pip"} & set(packages), "dev groups and tools stay out"
    # A second build downloads nothing: uv's cache mount holds what the first one fetched. A build arg no
    # earlier run had makes the install run for real (the layers above may come from BuildKit's layer cache,
    # whose cache mount another build may have left empty), then again with uv offline.
    pyproject = project / "pyproject.toml"
    original = pyproject.read_text()
    for extra in ("", ', UV_OFFLINE = "1"'):
        run = uuid.uuid4().hex
        pyproject.write_text(original + f'\n[tool.imgtool]\nbuild-args = {{ TEST_RUN = "{run}"{extra} }}\n')
        build(project, "granian")


def test_full_stack_template_poetry_1_8_lock(docker_client, tags, tmp_path):
    project = copy_project("full-stack-fastapi-poetry", tmp_path)
    bust_app_layer(project)
    image = f"{TAG_PREFIX}imgtool-full-stack-fastapi-poetry"  # no [project] name: the directory's
    tags.update(f"{image}:{server}" for server in SERVERS)
    stderr = build(project, "granian")
    assert "app: app.main:app (ASGI), detected (app = FastAPI(...) (FastAPI) in app.main)" in stderr
    assert "dependencies: poetry.lock (lock-version 2.0, main dependencies and what they need): 64 pinned" in stderr
    # pydantic-settings raises at import without its environment: a warning, not a failed build.
    assert (
        "note: app.main:app raised ValidationError: 5 validation errors for Settings (a missing setting: read by "
        "pydantic_settings) while importing" in re.sub(r"\s+", " ", stderr)
    )
    stderr = build(project, "uvicorn")
    assert "poetry.lock pins uvicorn 0.24.0.post1" in stderr  # the lock wins over imgtool's tested range
    results = smoke(project, FULL_STACK_ENV)
    for server in SERVERS:
        assert results[server]["lifespan"][0] == "pass", results[server]["lifespan"]
        assert results[server]["ws"] == ("skip", "the app's route table (fastapi) has no WebSocket route")
    health = get(docker_client, f"{image}:uvicorn", "/api/v1/utils/health-check/", FULL_STACK_ENV)
    assert health.status_code == 200 and health.json() is True
    packages = installed(docker_client, f"{image}:uvicorn")
    assert (packages["fastapi"], packages["uvicorn"], packages["bcrypt"]) == ("0.114.2", "0.24.0.post1", "4.0.1")
    assert not {"pytest", "mypy", "ruff", "poetry", "pip"} & set(packages)


def test_check_env_lets_the_import_check_run_for_real_and_never_reaches_the_image(docker_client, tags, tmp_path):
    project = copy_project("full-stack-fastapi-poetry", tmp_path, as_name="checked")
    secret = f"imgtool-check-env-{uuid.uuid4().hex[:8]}"
    values = {**{k: v for k, v in FULL_STACK_ENV.items() if k != "WEB_CONCURRENCY"}, "PROJECT_NAME": secret}
    table = ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'\n[tool.imgtool]\nname = "checked"\ncheck-env = {{ {table} }}\n')
    bust_app_layer(project)
    tags.add(f"{TAG_PREFIX}imgtool-checked:granian")
    stderr = build(project, "granian")
    names = ", ".join(sorted(values))
    assert f"imgtool-import-check-ok: app.main:app imported with check-env {names}" in stderr
    assert "imgtool-import-check-warning" not in stderr and "while importing at build time" not in stderr
    image = docker_client.images.get(f"{TAG_PREFIX}imgtool-checked:granian")
    assert secret not in json.dumps(image.history()) + json.dumps(image.attrs)
    # Not in a layer either: the image itself cannot import the app without run-time settings.
    with pytest.raises(docker.errors.ContainerError, match="PROJECT_NAME"):
        run_once(docker_client, f"{TAG_PREFIX}imgtool-checked:granian", "python", "-c", "import app.main")


def test_full_stack_template_uv_workspace_member(docker_client, tags, tmp_path):
    root = copy_project("full-stack-fastapi-uv", tmp_path)
    lock_with_uv(docker_client, root, exclude_newer="2026-06-17T00:00:00Z")
    project = root / "backend"
    bust_app_layer(project)
    tags.update(f"{TAG_PREFIX}imgtool-app:{server}" for server in SERVERS)
    for server in SERVERS:
        stderr = build(project, server)
        assert (
            "dependencies: uv.lock (uv sync --frozen --no-default-groups --package app --no-install-workspace)"
            in stderr
        )
        assert f"context: {root} (uv workspace), project backend" in stderr
    # The health route is the project's own, chosen at test time: the image's HEALTHCHECK asks it too.
    results = smoke(project, FULL_STACK_ENV, "--health-path", "/api/v1/utils/health-check/")
    assert "GET /api/v1/utils/health-check/: 200" in results["granian"]["health"][1]
    spec = get(docker_client, f"{TAG_PREFIX}imgtool-app:granian", "/api/v1/openapi.json", FULL_STACK_ENV).json()
    assert spec["info"]["title"] == FULL_STACK_ENV["PROJECT_NAME"]
    packages = installed(docker_client, f"{TAG_PREFIX}imgtool-app:granian")
    assert "fastapi" in packages and "sqlmodel" in packages
    # The root's dev group (zizmor) and the member's (pytest) stay out; only the member's directory is the app.
    assert not {"zizmor", "pytest", "mypy"} & set(packages)
    listing = run_once(docker_client, f"{TAG_PREFIX}imgtool-app:granian", *LIST, "/app")
    assert sorted(listing.split()) == ["app", "imgtool-test-run.txt", "pyproject.toml"]


def test_django_startproject(docker_client, tags, tmp_path):
    project = copy_project("django-startproject", tmp_path, as_name="mysite")
    tags.update(f"{TAG_PREFIX}imgtool-mysite:{server}" for server in SERVERS)
    for server in SERVERS:
        stderr = build(project, server)
        assert "app: mysite.asgi:application (ASGI), detected (application = get_asgi_application(...) (Django (ASGI))" in stderr
        assert "django: settings mysite.settings, no STATIC_ROOT, no collectstatic" in stderr
    results = smoke(project, {})
    for server in SERVERS:
        # Django refuses the lifespan scope: the app's fact, shown as such, and the server served it anyway.
        status, detail = results[server]["lifespan"]
        assert status == "n/a" and detail.startswith("the app does not support lifespan"), (server, detail)
        assert "Django can only handle ASGI/HTTP connections, not lifespan." in detail
        assert results[server]["ws"] == (
            "skip",
            "a Django app without Channels (ProtocolTypeRouter) has no WebSocket route",
        )
    welcome = get(docker_client, f"{TAG_PREFIX}imgtool-mysite:uvicorn", "/")
    assert welcome.status_code == 200 and "The install worked successfully" in welcome.text
    login = get(docker_client, f"{TAG_PREFIX}imgtool-mysite:granian", "/admin/login/")
    assert login.status_code == 200 and "Django administration" in login.text


def test_django_collectstatic_fills_static_root_in_the_build(docker_client, tags, tmp_path):
    project = copy_project("django-startproject", tmp_path, as_name="staticsite")
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\nSTATIC_ROOT = BASE_DIR / 'staticfiles'\n")
    tags.add(f"{TAG_PREFIX}imgtool-staticsite:granian")
    stderr = build(project, "granian")
    assert "django: settings mysite.settings, collectstatic in the build" in stderr
    listing = run_once(docker_client, f"{TAG_PREFIX}imgtool-staticsite:granian", *LIST, "/app/staticfiles/admin/css")
    assert "base.css" in listing.split()


def test_quart_chat_poetry_without_a_lock_serves_its_page_and_its_websocket(docker_client, tags, tmp_path):
    project = copy_project("quart-chat", tmp_path, as_name="chat")
    tags.update(f"{TAG_PREFIX}imgtool-chat:{server}" for server in SERVERS)
    for server in SERVERS:
        stderr = build(project, server)
        assert "app: chat:app (ASGI), detected (app = Quart(...) (Quart) in chat)" in stderr
        # Poetry's own syntax, read by its build backend (poetry-core) through uv: not re-implemented here.
        assert "dependencies: pyproject.toml [tool.poetry.dependencies] (1), read by uv through" in stderr
    # The smoke suite's ws check on the route it finds in Quart's route table: the upgrade and a clean close.
    results = smoke(project, {})
    for server in SERVERS:
        assert results[server]["ws"] == ("pass", "upgrade at /ws, close 1000; found in the app's route table (quart)")
        assert results[server]["lifespan"][0] == "pass", results[server]["lifespan"]
    # ... and it fails where the route is no WebSocket (the page at /).
    failed = run_cli("test", "-s", "granian", "--ws-path", "/", "--check", "ws", "--json", cwd=project, timeout=300)
    assert failed.returncode == 1, failed.stderr
    ws = next(r for r in json.loads(failed.stdout)["servers"][0]["results"] if r["check"] == "ws")
    assert ws["status"] == "FAIL" and ws["detail"].startswith("WebSocket /: "), ws
    tag = f"{TAG_PREFIX}imgtool-chat:granian"
    packages = installed(docker_client, tag)
    assert "quart" in packages and not {"pytest", "pytest-asyncio", "poetry"} & set(packages)
    page = get(docker_client, tag, "/")
    assert page.status_code == 200 and "new WebSocket(`ws://${location.host}/ws`)" in page.text
    for server in SERVERS:
        with running(docker_client, f"{TAG_PREFIX}imgtool-chat:{server}") as (_, target):
            wait_for_health_any(target.url("/"))
            # The chat broadcasts each message to every subscriber, the sender included.
            with ws_connect(f"ws://{target.host}:{target.port}/ws", open_timeout=10) as socket:
                socket.send("hello from imgtool")
                assert socket.recv(timeout=10) == "hello from imgtool", server
