"""WSGI apps are served, not refused: real images per server that serves WSGI, real requests through the smoke suite.

A small WSGI app with the reference routes (/, /health, /info, /stream, /slow), written here at test time, is built
with no flags for granian (discovery finds `def app(environ, start_response)`), hypercorn and gunicorn, then checked
with `imgtool test`: HTTP/1.1, h2c where the server claims it over WSGI (granian, hypercorn) and `n/a` where it
does not (gunicorn), h2 over TLS, graceful shutdown, non-root, read-only; ws and lifespan `n/a` with the reason.
A `django-admin startproject` project with only wsgi.py is served as WSGI. Bad input (an object that is neither
ASGI nor WSGI, a module that cannot be imported) fails the build with one line, exit 2, nothing left.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import textwrap
from pathlib import Path

import docker.errors
import pytest

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import single_line_error

PROJECTS = Path(__file__).resolve().parent.parent / "projects"

WSGI_APP = '''\
"""A WSGI app with imgtool's reference routes."""
import json
import os
import time
from urllib.parse import parse_qs


def _version(environ):
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/")
    return protocol.removesuffix(".0") if protocol.startswith("2") else protocol


def _stream():
    for number in range(5):
        yield f"chunk {number}\\n".encode()
        time.sleep(0.05)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/info":
        body = json.dumps(
            {
                "server": environ.get("SERVER_SOFTWARE", ""),
                "http_version": _version(environ),
                "scheme": environ["wsgi.url_scheme"],
                "pid": os.getpid(),
            }
        ).encode()
        start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("content-type", "text/plain")])
        return _stream()
    if path == "/slow":
        milliseconds = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["2000"])[0])
        time.sleep(milliseconds / 1000)
        body = f"slept {milliseconds} ms".encode()
        start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
        return [body]
    body = b"ok" if path in ("/", "/health") else b"not found"
    status = "404 Not Found" if body == b"not found" else "200 OK"
    start_response(status, [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
'''
PYPROJECT = """\
[project]
name = "wsgi-sample"
version = "0"
dependencies = []

[tool.imgtool]
routes = "reference"
health-path = "/health"
"""
WSGI_SERVERS = ("granian", "hypercorn", "gunicorn")
# What each server claims over WSGI; the rest must be n/a with a reason.
H2C = {"granian": True, "hypercorn": True, "gunicorn": False}
# hypercorn 0.18 serving WSGI now and then waits out its whole --graceful-timeout after SIGTERM (2 of 6 runs here;
# serving ASGI it exits at once): the registry does not claim graceful for it and marks it intermittent, so the
# check is n/a with the reason whichever way this run went.
GRACEFUL = {"granian": True, "hypercorn": False, "gunicorn": True}


def _image(name: str, server: str) -> str:
    return f"{TAG_PREFIX}imgtool-{name}:{server}"


def _remove(docker_client, *tags: str) -> None:
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def wsgi_project(tmp_path_factory, docker_client):
    project = tmp_path_factory.mktemp("wsgi") / "wsgi-sample"
    project.mkdir()
    (project / "wsgiapp.py").write_text(WSGI_APP)
    (project / "pyproject.toml").write_text(PYPROJECT)
    yield project
    _remove(docker_client, *(_image("wsgi-sample", server) for server in WSGI_SERVERS))


@pytest.fixture(scope="module")
def built(wsgi_project):
    """Build once per server: granian with no flags at all (the default server), the others with --server."""
    outputs = {}
    for server in WSGI_SERVERS:
        args = ("build",) if server == "granian" else ("build", "--server", server)
        result = run_cli(*args, timeout=900, cwd=wsgi_project)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[server] = result.stderr
    return outputs


def test_the_wsgi_app_is_found_and_said_in_one_line(built):
    lines = [line for line in built["granian"].splitlines() if line.startswith("app: ")]
    assert lines == ["app: wsgiapp:app (WSGI), detected (def app(environ, start_response) in wsgiapp)"], lines


@pytest.mark.parametrize("server", WSGI_SERVERS)
def test_each_wsgi_server_passes_what_applies_and_shows_ws_and_lifespan_na(built, wsgi_project, docker_client, server):
    labels = docker_client.images.get(_image("wsgi-sample", server)).labels
    assert labels["imgtool.interface"] == "wsgi" and labels["imgtool.server"] == server
    result = run_cli("test", "--server", server, "--json", timeout=300, cwd=wsgi_project)
    report = json.loads(result.stdout)
    checks = {c["check"]: c for c in report["servers"][0]["results"]}
    status = {name: c["status"] for name, c in checks.items()}
    for name in ("health", "http1", "h2-tls", "nonroot", "readonly"):
        assert status[name] == "pass", (name, checks[name], result.stderr[-2000:])
    # graceful: two requests held in the app (the probe wraps the WSGI app too) across SIGTERM, plus a burst.
    if GRACEFUL[server]:
        assert status["graceful"] == "pass" and "held" in checks["graceful"]["detail"], checks["graceful"]
    else:
        assert status["graceful"] == "n/a" and "graceful-timeout" in checks["graceful"]["detail"], checks["graceful"]
    # h2c: a server that claims it over WSGI gives it (the check spoke HTTP/2 with prior knowledge and the app
    # saw SERVER_PROTOCOL HTTP/2); gunicorn's is n/a with its reason, and the check proved it is refused.
    if H2C[server]:
        assert status["h2c"] == "pass" and "app saw http_version 2" in checks["h2c"]["detail"], checks["h2c"]
    else:
        assert status["h2c"] == "n/a" and "forwarded-allow-ips" in checks["h2c"]["detail"], checks["h2c"]
    assert status["ws"] == "n/a" and "WSGI" in checks["ws"]["detail"], checks["ws"]
    assert status["lifespan"] == "n/a" and "WSGI has no lifespan" in checks["lifespan"]["detail"], checks["lifespan"]
    assert result.returncode == 0, result.stderr[-2000:]


def test_uvicorn_and_daphne_refuse_a_wsgi_app_in_one_line(wsgi_project, docker_client):
    for server in ("uvicorn", "daphne"):
        result = run_cli("build", "--server", server, timeout=120, cwd=wsgi_project)
        assert result.returncode == 2, result.stderr
        line = single_line_error(result.stderr)
        assert f"{server} does not serve WSGI apps" in line and "hypercorn, granian, gunicorn" in line, line
        assert not docker_client.images.list(name=_image("wsgi-sample", server).rsplit(":", 1)[0] + f":{server}")


def test_a_django_project_with_only_wsgi_py_is_served_as_wsgi(tmp_path, docker_client):
    project = tmp_path / "django-startproject"
    shutil.copytree(PROJECTS / "django-startproject", project)
    (project / "mysite" / "asgi.py").unlink()
    tag = f"{TAG_PREFIX}imgtool-wsgi-django:granian"
    try:
        result = run_cli("build", "--tag", tag, timeout=900, cwd=project)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "app: mysite.wsgi:application (WSGI)" in result.stderr, result.stderr
        assert docker_client.images.get(tag).labels["imgtool.interface"] == "wsgi"
        tested = run_cli("test", "--image", tag, "--json", timeout=300, cwd=project)
        status = {c["check"]: c["status"] for c in json.loads(tested.stdout)["servers"][0]["results"]}
        assert status["health"] == "pass" and status["http1"] == "pass" and status["h2c"] == "pass", tested.stdout
        assert status["ws"] == "n/a" and status["lifespan"] == "n/a", tested.stdout
    finally:
        _remove(docker_client, tag)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def app(request):\n    return request\n", "broken:app is neither an ASGI app"),
        ("import no_such_package_here\n\ndef app(environ, start_response):\n    pass\n", "No module named"),
    ],
    ids=["neither-asgi-nor-wsgi", "not-importable"],
)
def test_bad_apps_fail_the_build_in_one_line_and_leave_nothing(tmp_path, docker_client, source, message):
    (tmp_path / "broken.py").write_text(textwrap.dedent(source))
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace("wsgi-sample", "wsgi-broken"))
    tag = f"{TAG_PREFIX}imgtool-wsgi-broken:granian"
    # --json: no build progress on stderr (it would show the app's own traceback, printed for the user above).
    args = ("build", "--app", "broken:app", "--interface", "wsgi", "--tag", tag, "--json")
    result = run_cli(*args, timeout=600, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    line = single_line_error(result.stderr)
    assert message in line and "Traceback" not in line, line
    assert not docker_client.images.list(name=tag)
