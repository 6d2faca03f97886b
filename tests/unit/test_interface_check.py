"""The import check confirms the object is a callable of the interface the image serves (images/assets/import_check.py),
the smoke suite shows ws and lifespan n/a for a WSGI image, and the launcher fills $THREADS."""

from __future__ import annotations

import pytest

from tests.unit.test_image_checks import import_check, marker
from tests.unit.test_launcher import launch  # noqa: F401  (the fixture)
from toolkit.servers import SERVERS, WSGI_NOT_APPLICABLE
from toolkit.smoke.model import CHECKS
from toolkit.smoke.runner import ImageUnderTest, plan_checks

ASGI = "async def app(scope, receive, send):\n    pass\n"
WSGI = "def app(environ, start_response):\n    return []\n"
EMMETT_LIKE = "class App:\n    def __call__(self, scope, receive, send):\n        return None\napp = App()\n"


@pytest.mark.parametrize(
    ("source", "interface"),
    [
        (ASGI, "asgi"),
        (WSGI, "wsgi"),
        (EMMETT_LIKE, "asgi"),
        ("import functools\n" + WSGI.replace("app", "f", 1) + "app = functools.partial(f)\n", "wsgi"),
    ],
    ids=["async-def", "wsgi-def", "sync-call-returning-coroutine", "partial"],
)
def test_an_app_of_the_planned_interface_passes(tmp_path, source, interface):
    (tmp_path / "web.py").write_text(source)
    result = import_check(tmp_path, "web:app", "--interface", interface)
    assert result.returncode == 0, result.stdout
    assert marker(result, "import-check-ok")


@pytest.mark.parametrize(
    ("source", "interface", "says"),
    [
        (
            ASGI,
            "wsgi",
            "web:app is an ASGI app (async (scope, receive, send)) and this image serves it as WSGI: set",
        ),
        (WSGI, "asgi", 'serves it as ASGI: set [tool.imgtool] interface = "wsgi" (or --interface wsgi)'),
        ("def app(request):\n    return request\n", "asgi", "web:app is neither an ASGI app"),
        ("def app():\n    return 1\n", "wsgi", "it is a function; point --app at the app object"),
    ],
    ids=["asgi-as-wsgi", "wsgi-as-asgi", "one-argument", "no-argument"],
)
def test_the_wrong_interface_or_neither_fails_with_one_line_naming_the_fix(tmp_path, source, interface, says):
    (tmp_path / "web.py").write_text(source)
    result = import_check(tmp_path, "web:app", "--interface", interface)
    assert result.returncode == 1
    line = marker(result, "import-check")
    assert line.startswith("InterfaceError: ") and says in line, line
    assert "Traceback" not in result.stdout


def test_a_factory_is_not_called_at_build_time(tmp_path):
    (tmp_path / "web.py").write_text("def create():\n    raise SystemExit('called')\n")
    assert import_check(tmp_path, "web:create()", "--interface", "wsgi").returncode == 0


def test_a_wsgi_image_shows_ws_and_lifespan_not_applicable():
    spec = SERVERS["granian"].serving("wsgi")
    image = ImageUnderTest(
        ref="x",
        name="granian",
        port=8000,
        health_path="/health",
        reference_routes=True,
        ws_path="/ws",
        spec=spec,
        app="app:app",
        claimed=frozenset(spec.claims | {"health", "nonroot", "readonly"}),
        not_applicable=dict(WSGI_NOT_APPLICABLE),
    )
    plan = plan_checks(image, set(CHECKS))
    assert plan["ws"] == WSGI_NOT_APPLICABLE["ws"] and plan["lifespan"] == WSGI_NOT_APPLICABLE["lifespan"]
    assert all(plan[check] is None for check in ("health", "http1", "h2c", "h2-tls", "graceful", "nonroot", "readonly"))
    assert "ws" not in image.claimed and "lifespan" not in image.claimed


def test_threads_come_from_web_threads_else_the_image_default(launch, monkeypatch):  # noqa: F811
    calls = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, argv: calls.append(argv))
    monkeypatch.setenv("IMGTOOL_DEFAULT_THREADS", "8")
    monkeypatch.delenv("WEB_THREADS", raising=False)
    launch.main(["gunicorn", "--threads", "$THREADS"])
    monkeypatch.setenv("WEB_THREADS", "32")
    launch.main(["gunicorn", "--threads", "$THREADS"])
    assert calls == [["gunicorn", "--threads", "8"], ["gunicorn", "--threads", "32"]]
