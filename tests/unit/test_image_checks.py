"""What the image checks about itself: the HEALTHCHECK (images/assets/healthcheck.py), the build-time import
check (images/assets/import_check.py), each run as the image runs it: a separate Python process. (The smoke
suite's probe, toolkit/smoke/imgtool_probe.py, has its own tests in test_smoke_probe.py.)"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit import IMAGES_DIR
from toolkit.smoke.checks import health_ok

HEALTHCHECK = IMAGES_DIR / "assets" / "healthcheck.py"
IMPORT_CHECK = IMAGES_DIR / "assets" / "import_check.py"


# ---- the HEALTHCHECK ----


@pytest.fixture
def server():
    """A local HTTP server answering each path with the status in `routes` (404 otherwise); it records Host."""
    routes: dict[str, int] = {}
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Host", "")))
            status = routes.get(self.path, 404)
            self.send_response(status)
            if status in (301, 302):
                self.send_header("Location", "/health")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], routes, seen
    httpd.shutdown()


def healthcheck(port: int, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("HEALTH_PATH", "HEALTH_HOST")}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**environment, "PORT": str(port), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "routes", "healthy"),
    [
        ({}, {"/": 200}, True),
        ({}, {}, True),  # no health route configured: a 404 at / still proves the app answers
        ({}, {"/": 302}, True),  # a redirect is an answer too (it is not followed)
        ({}, {"/": 500}, False),
        ({}, {"/": 503}, False),
        ({"HEALTH_PATH": "/health"}, {"/health": 200}, True),
        ({"HEALTH_PATH": "/health"}, {"/health": 204}, True),
        ({"HEALTH_PATH": "/health"}, {}, False),  # a configured route must exist
        ({"HEALTH_PATH": "/health"}, {"/health": 301}, False),
        ({"HEALTH_PATH": ""}, {}, True),  # empty is unset: what `-e HEALTH_PATH=` gives
    ],
)
def test_health_rule(server, env, routes, healthy):
    port, table, _ = server
    table.update(routes)
    result = healthcheck(port, **env)
    assert (result.returncode == 0) is healthy, result.stderr
    if not healthy:
        assert result.stderr.startswith("unhealthy: ")


def test_health_host_is_localhost_unless_set(server):
    port, table, seen = server
    table["/"] = 200
    healthcheck(port)
    healthcheck(port, HEALTH_HOST="api.example.com", HEALTH_PATH="/")
    assert seen == [("/", f"localhost:{port}"), ("/", f"api.example.com:{port}")]


def test_nothing_listening_is_unhealthy():
    result = healthcheck(1)  # nothing listens on port 1
    assert result.returncode == 1 and "unhealthy" in result.stderr


@pytest.mark.parametrize(("status", "configured", "ok"), [(404, False, True), (404, True, False), (500, False, False)])
def test_the_smoke_suite_uses_the_same_rule(status, configured, ok):
    assert health_ok(status, configured) is ok


# ---- the build-time import check ----


def import_check(tmp_path: Path, *args: str, secret: dict | None = None) -> subprocess.CompletedProcess:
    """Run import_check.main(args) in its own process; `secret` stands in for the BuildKit secret file."""
    secret_path = tmp_path / "check-env.json"
    if secret is not None:
        secret_path.write_text(json.dumps(secret))
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('import_check', {str(IMPORT_CHECK)!r})\n"
        "check = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(check)\n"
        f"check.CHECK_ENV = {str(secret_path)!r}\n"
        f"sys.exit(check.main({list(args)!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def marker(result: subprocess.CompletedProcess, kind: str) -> str | None:
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"imgtool-{kind}: ")]
    return lines[-1].split(": ", 1)[1] if lines else None


@pytest.mark.parametrize(
    ("source", "ref", "fails_with"),
    [
        ("import not_installed_anywhere\napp = 1\n", "web:app", "ModuleNotFoundError: No module named"),
        ("def app(:\n", "web:app", "SyntaxError"),
        ("async def app(scope, receive, send): pass\n", "web:application", "AttributeError"),
        ("async def app(scope, receive, send): pass\n", "nowhere:app", "ModuleNotFoundError"),
        ("from os import no_such_name\n", "web:app", "ImportError"),
        ("app = 42\n", "web:app", "TypeError: web:app is not callable"),
    ],
)
def test_code_that_cannot_load_fails_the_build(tmp_path, source, ref, fails_with):
    (tmp_path / "web.py").write_text(source)
    result = import_check(tmp_path, ref)
    assert result.returncode == 1
    assert fails_with in marker(result, "import-check")


@pytest.mark.parametrize(
    ("source", "warns_with"),
    [
        (
            "import os\nURL = os.environ['DATABASE_URL']\n",
            "KeyError: 'DATABASE_URL' (a missing setting: read by os.environ[...])",
        ),
        (
            "class ImproperlyConfigured(Exception): pass\nraise ImproperlyConfigured('SECRET_KEY must be set')\n",
            "ImproperlyConfigured: SECRET_KEY must be set (a missing setting: ImproperlyConfigured)",
        ),
    ],
)
def test_an_app_needing_run_time_settings_builds_with_one_warning(tmp_path, source, warns_with):
    (tmp_path / "web.py").write_text(source + "async def app(scope, receive, send): pass\n")
    result = import_check(tmp_path, "web:app")
    assert result.returncode == 0
    assert marker(result, "import-check-warning") == warns_with and marker(result, "import-check") is None


def test_check_env_secret_lets_the_import_run_for_real(tmp_path):
    (tmp_path / "web.py").write_text(
        "import os\nURL = os.environ['DATABASE_URL']\nasync def app(scope, receive, send): pass\n"
    )
    result = import_check(tmp_path, "web:app", secret={"DATABASE_URL": "sqlite://"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker(result, "import-check-warning") is None
    assert marker(result, "import-check-ok") == "web:app imported with check-env DATABASE_URL"
