"""The smoke suite's probe: imgtool_probe.py (run as the image runs it, a separate Python process serving a
small ASGI app to a stand-in server) and the host's side of it (toolkit/smoke/probe.py: commands, log lines,
verdicts, route templates). The same probe on real servers and frameworks: tests/integration/test_smoke*.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from toolkit.servers import SERVERS
from toolkit.smoke import imgtool_probe, probe
from toolkit.smoke.probe import Lifespan, RouteTable, WsRoute

# ---- the image's command, with the probe in the app's place ----


# Every server with a plain app, and each that can call factories with a factory (daphne cannot).
COMMANDS = [(name, "web:app", "imgtool_probe:app") for name in SERVERS] + [
    (name, "web:create()", "imgtool_probe:factory()") for name, spec in SERVERS.items() if spec.factory is not None
]


@pytest.mark.parametrize(("server", "app", "wrapped"), COMMANDS)
def test_the_probe_takes_the_apps_place_in_each_servers_own_syntax(server, app, wrapped):
    spec = SERVERS[server]
    assert probe.probe_command(spec.argv(app), app) == spec.argv(wrapped)


@pytest.mark.parametrize("server", [name for name, spec in SERVERS.items() if spec.wsgi is not None])
def test_the_probe_takes_a_wsgi_apps_place_too_behind_an_interface_prefix(server):
    spec = SERVERS[server].serving("wsgi")
    assert probe.probe_command(spec.argv("web:app"), "web:app") == spec.argv("imgtool_probe:app")
    assert probe.probe_command(["hypercorn", "wsgi:web:app"], "web:app") == ["hypercorn", "wsgi:imgtool_probe:app"]


def test_a_command_that_names_no_app_gets_no_probe():
    assert probe.probe_command(["/start-server", "--port", "8000"], "web:app") is None
    assert probe.probe_command(["uvicorn", "web:application"], "web:app") is None


def test_the_probe_directory_comes_first_on_the_images_pythonpath():
    assert probe.probe_environment("web:app", "/app:/app/src") == {
        "IMGTOOL_PROBE_APP": "web:app",
        "IMGTOOL_PROBE_INTERFACE": "asgi",
        "PYTHONPATH": "/imgtool-probe:/app:/app/src",
    }
    assert probe.probe_environment("web:app", None, "wsgi")["IMGTOOL_PROBE_INTERFACE"] == "wsgi"
    assert probe.probe_environment("web:app", None)["PYTHONPATH"] == "/imgtool-probe"


# ---- imgtool_probe.py, serving an app to a stand-in server ----

# The server's side: a lifespan cycle, then one HTTP request (held when asked), then shutdown; it prints
# what the app sent back, as JSON, on stdout.
SERVER = """
import asyncio, json, sys
import imgtool_probe

app = imgtool_probe.factory() if sys.argv[1].endswith("()") else imgtool_probe.app
hold = sys.argv[2]
result = {"lifespan": [], "http": [], "raised": None}


async def lifespan():
    inbox = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    answered = asyncio.Event()

    async def send(message):
        result["lifespan"].append(message["type"])
        answered.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await asyncio.wait([task, asyncio.ensure_future(answered.wait())], return_when=asyncio.FIRST_COMPLETED)
    return task, inbox


async def request():
    headers = [(b"host", b"test")] + ([(b"imgtool-hold-ms", hold.encode()), (b"imgtool-hold-id", b"7")] if hold else [])
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        result["http"].append(message.get("status", message["type"]))

    await app(scope, receive, send)


async def main():
    task, inbox = await lifespan()
    if task.done() and task.exception() is not None:
        result["raised"] = repr(task.exception())
    await request()
    if not task.done():
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5)


asyncio.run(main())
print(json.dumps(result))
"""

APPS = {
    "lifespan": (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        while True:\n"
        "            message = await receive()\n"
        "            if message['type'] == 'lifespan.startup':\n"
        "                await send({'type': 'lifespan.startup.complete'})\n"
        "            elif message['type'] == 'lifespan.shutdown':\n"
        "                await send({'type': 'lifespan.shutdown.complete'})\n"
        "                return\n"
        "    await send({'type': 'http.response.start', 'status': 204, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b''})\n"
    ),
    "django-like": (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        raise ValueError(f\"Django can only handle ASGI/HTTP connections, not {scope['type']}.\")\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    ),
    "failing-startup": (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive()\n"
        "        await send({'type': 'lifespan.startup.failed', 'message': 'Traceback...\\nRuntimeError: no db'})\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b''})\n"
    ),
}


def serve(tmp_path, app: str, ref: str = "web:app", hold: str = "") -> tuple[dict, list[dict]]:
    """Run the stand-in server on the probe wrapping `app`: (what the server received, the probe's events)."""
    (tmp_path / "web.py").write_text(APPS[app] + "\ndef create():\n    return app\n")
    probe_dir = os.path.dirname(imgtool_probe.__file__)
    result = subprocess.run(
        [sys.executable, "-c", SERVER, ref, hold],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{probe_dir}:{tmp_path}", "IMGTOOL_PROBE_APP": ref},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), probe.events(result.stderr)


def test_the_probe_passes_everything_through_and_logs_the_servers_side(tmp_path):
    received, found = serve(tmp_path, "lifespan")
    assert received == {
        "lifespan": ["lifespan.startup.complete", "lifespan.shutdown.complete"],
        "http": [204, "http.response.body"],
        "raised": None,
    }
    kinds = [(event["event"], event.get("from")) for event in found]
    assert kinds == [
        ("routes", None),
        ("lifespan.scope", None),
        ("lifespan.startup", "server"),
        ("lifespan.startup.complete", "app"),
        ("first-request", None),
        ("lifespan.shutdown", "server"),
        ("lifespan.shutdown.complete", "app"),
    ]
    assert found[4]["lifespan"] == "lifespan.startup.complete"
    assert len({event["pid"] for event in found}) == 1
    assert probe.lifespan_verdict(found) == (
        Lifespan.RAN,
        "the server sent lifespan.startup, completed before the first request (1 process); "
        "lifespan.shutdown after SIGTERM, completed",
    )


def test_an_app_refusing_lifespan_is_seen_and_its_error_still_reaches_the_server(tmp_path):
    received, found = serve(tmp_path, "django-like")
    assert "ValueError" in received["raised"] and received["http"] == [200, "http.response.body"]
    outcome, detail = probe.lifespan_verdict(found)
    assert outcome == Lifespan.REFUSED
    assert "ValueError: Django can only handle ASGI/HTTP connections, not lifespan." in detail


def test_a_failing_startup_is_the_apps_last_line(tmp_path):
    _, found = serve(tmp_path, "failing-startup")
    assert probe.lifespan_verdict(found) == (
        Lifespan.FAILED,
        "the app answered lifespan.startup.failed (RuntimeError: no db)",
    )


def test_a_factory_is_called_through_the_probe(tmp_path):
    received, found = serve(tmp_path, "lifespan", ref="web:create()")
    assert received["http"][0] == 204 and probe.lifespan_verdict(found)[0] == Lifespan.RAN


def test_a_held_request_is_logged_on_arrival_then_kept_in_the_app(tmp_path):
    began = time.monotonic()
    received, found = serve(tmp_path, "lifespan", hold="600")
    assert time.monotonic() - began >= 0.6
    assert received["http"][0] == 204
    holds = [event for event in found if event["event"] == "hold"]
    assert holds == [{"pid": holds[0]["pid"], "event": "hold", "id": "7", "ms": 600, "path": "/"}]
    logs = "\n".join(f"[INFO] noise\nimgtool-probe: {json.dumps(event)}" for event in found)
    assert probe.holds_seen(logs) == {"7"}


# ---- lifespan verdicts from the events of real servers' shapes ----


def ev(pid, event, **fields):
    return {"pid": pid, "event": event, **fields}


def cycle(pid, shutdown=True):
    events = [ev(pid, "lifespan.scope"), ev(pid, "lifespan.startup"), ev(pid, "lifespan.startup.complete")]
    events.append(ev(pid, "first-request", lifespan="lifespan.startup.complete"))
    if shutdown:
        events += [ev(pid, "lifespan.shutdown"), ev(pid, "lifespan.shutdown.complete")]
    return events


def test_every_worker_must_run_startup_before_serving_and_shutdown_after_sigterm():
    assert probe.lifespan_verdict(cycle(7) + cycle(9))[0] == Lifespan.RAN
    assert "(2 processes)" in probe.lifespan_verdict(cycle(7) + cycle(9))[1]
    assert probe.lifespan_verdict(cycle(7) + cycle(9, shutdown=False)) == (
        Lifespan.MISSING,
        "pid 9 ran lifespan startup; the server sent it no lifespan.shutdown",
    )
    # Not stopped (the health check failed): shutdown is not asked for.
    assert probe.lifespan_verdict(cycle(7, shutdown=False), stopped=False)[0] == Lifespan.RAN


def test_a_server_without_lifespan_is_seen_at_the_first_request():
    # daphne, or uvicorn --lifespan off: the app's first request comes with no lifespan scope before it.
    assert probe.lifespan_verdict([ev(1, "routes"), ev(1, "first-request", lifespan=None)]) == (
        Lifespan.MISSING,
        "pid 1 served its first request after no lifespan scope from the server",
    )
    early = [ev(1, "lifespan.scope"), ev(1, "lifespan.startup"), ev(1, "first-request", lifespan="lifespan.startup")]
    assert probe.lifespan_verdict(early)[1] == "pid 1 served its first request after lifespan.startup"
    assert probe.lifespan_verdict([]) == (Lifespan.MISSING, "no request reached the app")


def test_events_ignore_other_lines():
    logs = (
        'INFO: ok\nimgtool-probe: {"pid": 1, "event": "hold", "id": "1"}\nimgtool-probe: {broken\nimgtool-probe: [1]\n'
    )
    assert probe.events(logs) == [{"pid": 1, "event": "hold", "id": "1"}]


# ---- WebSocket routes: the route table, then the paths the ws check opens ----


class Asgi:
    """Framework apps, routers and middleware are ASGI apps: callables."""

    async def __call__(self, scope, receive, send):
        pass


class WebSocketRoute:
    def __init__(self, path):
        self.path = path


class Mount:
    def __init__(self, path, routes):
        self.path, self.routes = path, routes


class Route:
    def __init__(self, path):
        self.path = path


class Starlette(Asgi):
    def __init__(self, routes):
        self.routes = routes


class Middleware(Asgi):
    def __init__(self, app):
        self.app = app


class Rule:
    def __init__(self, rule, websocket):
        self.rule, self.websocket = rule, websocket


class UrlMap:
    def __init__(self, rules):
        self.rules = rules

    def iter_rules(self):
        return iter(self.rules)


class Quart(Asgi):
    def __init__(self, rules):
        self.url_map = UrlMap(rules)

    async def asgi_app(self, scope, receive, send):
        pass


class RoutePattern:
    def __init__(self, route):
        self._route = route


class RegexPattern:
    def __init__(self, regex):
        self._regex = regex


class URLPattern:
    def __init__(self, pattern, callback):
        self.pattern, self.callback = pattern, callback


class URLRouter(Asgi):
    _path_routing = True

    def __init__(self, routes):
        self.routes = routes


class OriginValidator(Asgi):
    def __init__(self, application):
        self.application = application


class ProtocolTypeRouter(Asgi):
    def __init__(self, mapping):
        self.application_mapping = mapping


class ASGIHandler(Asgi):
    pass


async def consumer(scope, receive, send):
    pass


def test_routes_starlette_fastapi_litestar_shape_through_middleware_and_mounts():
    app = Middleware(
        Starlette([Route("/"), Mount("/live", [WebSocketRoute("/feed")]), WebSocketRoute("/rooms/{id:int}")])
    )
    assert imgtool_probe.websocket_routes(app) == {
        "framework": "tests",
        "table": True,
        "ws": [{"path": "/live/feed", "syntax": "brace"}, {"path": "/rooms/{id:int}", "syntax": "brace"}],
    }


def test_routes_quart_shape_also_behind_a_middleware_on_asgi_app():
    quart = Quart([Rule("/", False), Rule("/ws", True), Rule("/room/<int:n>", True)])
    expected = [{"path": "/ws", "syntax": "angle"}, {"path": "/room/<int:n>", "syntax": "angle"}]
    assert imgtool_probe.websocket_routes(quart)["ws"] == expected
    # `app.asgi_app = Middleware(app.asgi_app)`: the bound method stands for the app.
    assert imgtool_probe.websocket_routes(Middleware(quart.asgi_app))["ws"] == expected


def test_routes_channels_shape_nested_routers_behind_validators():
    inner = URLRouter([URLPattern(RoutePattern("<str:room>/"), consumer)])
    router = URLRouter([URLPattern(RoutePattern("ws/chat/"), inner), URLPattern(RegexPattern(r"^ws/raw/$"), consumer)])
    app = ProtocolTypeRouter({"http": ASGIHandler(), "websocket": OriginValidator(Middleware(router))})
    assert imgtool_probe.websocket_routes(app) == {
        "framework": "channels",
        "table": True,
        "ws": [{"path": "/ws/chat/<str:room>/", "syntax": "angle"}, {"path": r"/^ws/raw/$", "syntax": "regex"}],
    }
    assert imgtool_probe.websocket_routes(ProtocolTypeRouter({"http": ASGIHandler()}))["ws"] == []


def test_routes_plain_django_and_unknown_apps():
    assert imgtool_probe.websocket_routes(ASGIHandler()) == {"framework": "tests", "table": True, "ws": []}
    unknown = imgtool_probe.websocket_routes(consumer)
    assert unknown["table"] is False and unknown["type"] == "builtins.function"


@pytest.mark.parametrize(
    ("template", "syntax", "path", "filled"),
    [
        ("/ws", "brace", "/ws", ()),
        ("/rooms/{room}", "brace", "/rooms/imgtool", ("room=imgtool",)),
        (
            "/rooms/{id:int}/{key:uuid}",
            "brace",
            "/rooms/1/00000000-0000-4000-8000-000000000000",
            ("id=1", "key=00000000-0000-4000-8000-000000000000"),
        ),
        ("/room/<name>", "angle", "/room/imgtool", ("name=imgtool",)),
        ("/room/<int:n>", "angle", "/room/1", ("n=1",)),
        ("/feed/<any(live, replay):kind>", "angle", "/feed/live", ("kind=live",)),
        ("ws/chat/<slug:room>/", "angle", "/ws/chat/imgtool/", ("room=imgtool",)),
        (r"^ws/raw/$", "regex", "/ws/raw/", ()),
        (r"/^ws/^raw/$", "regex", "/ws/raw/", ()),
    ],
)
def test_path_parameters_get_samples(template, syntax, path, filled):
    assert probe.concrete(template, syntax) == WsRoute(path, template, filled)


@pytest.mark.parametrize(
    ("template", "syntax"),
    [("/x/{n:money}", "brace"), ("/x/<custom:n>", "angle"), (r"^ws/(?P<room>\w+)/$", "regex"), ("/x", "other")],
)
def test_parameters_imgtool_cannot_fill_leave_the_route_out(template, syntax):
    assert probe.concrete(template, syntax) is None


def table(*routes, framework="starlette", readable=True, **extra):
    return RouteTable(framework, readable, tuple(routes), **extra)


def test_routes_without_parameters_are_opened_first_then_one_with_samples():
    routes, _ = probe.choose_ws_routes(table(("/rooms/{id:int}", "brace"), ("/a", "brace"), ("/b", "brace")))
    assert [route.path for route in routes] == ["/a", "/b"]
    many = table(*((f"/{n}", "brace") for n in range(5)))
    assert len(probe.choose_ws_routes(many)[0]) == probe.WS_ROUTES_TRIED
    routes, _ = probe.choose_ws_routes(table(("/x/{n:money}", "brace"), ("/rooms/{id:int}", "brace")))
    assert routes == [WsRoute("/rooms/1", "/rooms/{id:int}", ("id=1",))]


def test_why_no_websocket_route_is_opened():
    assert probe.choose_ws_routes(table()) == ([], "the app's route table (starlette) has no WebSocket route")
    assert probe.choose_ws_routes(table(framework="django"))[1] == (
        "a Django app without Channels (ProtocolTypeRouter) has no WebSocket route"
    )
    unknown = probe.choose_ws_routes(table(framework="blacksheep", readable=False, kind="blacksheep.Application"))
    assert unknown[1] == (
        "no route table imgtool can read in blacksheep.Application: name one with --ws-path or [tool.imgtool] ws-path"
    )
    regex = probe.choose_ws_routes(table((r"^ws/(?P<room>\w+)/$", "regex"), framework="channels"))
    assert regex[1].startswith("the app's WebSocket routes (^ws/(?P<room>\\w+)/$) take parameters imgtool cannot fill")
    broken = probe.choose_ws_routes(table(readable=False, error="AttributeError: boom"))
    assert broken[1].startswith("reading the app's route table failed (AttributeError: boom)")


def test_the_route_table_is_read_from_the_first_routes_line():
    found = [ev(7, "routes", framework="quart", table=True, ws=[{"path": "/ws", "syntax": "angle"}]), ev(9, "routes")]
    assert probe.route_table(found) == RouteTable("quart", True, (("/ws", "angle"),))
    assert probe.route_table([ev(1, "hold")]) is None


WSGI_SERVER = """
import json, sys, time
import imgtool_probe

environ = {"PATH_INFO": "/health", "REQUEST_METHOD": "GET"}
if sys.argv[1]:
    environ.update({"HTTP_IMGTOOL_HOLD_MS": sys.argv[1], "HTTP_IMGTOOL_HOLD_ID": "9"})
statuses = []
started = time.monotonic()
body = b"".join(imgtool_probe.app(environ, lambda status, headers: statuses.append(status)))
print(json.dumps({"status": statuses, "body": body.decode(), "seconds": time.monotonic() - started}))
"""


@pytest.mark.parametrize("hold", ["", "300"])
def test_the_wsgi_probe_passes_requests_through_and_holds_the_ones_asked(tmp_path, hold):
    (tmp_path / "web.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('content-type', 'text/plain')])\n"
        "    return [environ['PATH_INFO'].encode()]\n"
    )
    probe_dir = os.path.dirname(imgtool_probe.__file__)
    result = subprocess.run(
        [sys.executable, "-c", WSGI_SERVER, hold],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": f"{probe_dir}:{tmp_path}",
            "IMGTOOL_PROBE_APP": "web:app",
            "IMGTOOL_PROBE_INTERFACE": "wsgi",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == ["200 OK"] and answer["body"] == "/health"
    found = [(event["event"], event.get("id")) for event in probe.events(result.stderr)]
    if hold:
        assert found == [("first-request", None), ("hold", "9")] and answer["seconds"] >= 0.3
    else:
        assert found == [("first-request", None)]
