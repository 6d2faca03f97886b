"""The app as the smoke suite serves it: the image's own app, wrapped so the server's side can be seen.

The smoke runner mounts this file into the main container, puts its directory first on PYTHONPATH and
runs the image's own command with only the app reference replaced (`module:attr` → `imgtool_probe:app`,
`module:create_app()` → `imgtool_probe:factory()`); IMGTOOL_PROBE_APP names the real app and
IMGTOOL_PROBE_INTERFACE its interface (`asgi`, or `wsgi`: then the wrapper is a WSGI app, and only
`first-request` and `hold` are written). Stdlib only and
Python 3.8 syntax: it runs on the image's interpreter, in a runtime with nothing else.

It passes every message through unchanged and writes one line per fact to stderr, `imgtool-probe: {json}`
(one os.write each, so workers' lines never interleave), which the runner reads from the container's logs:
  routes                   at import: the WebSocket routes of the app's route table (or why there is none)
  lifespan.scope           the server opened the lifespan scope
  lifespan.startup, ...    a lifespan message, from the server (`from`: server) or the app (`from`: app)
  lifespan.unsupported     the app raised on the lifespan scope before answering (Django, Channels)
  first-request            a worker's first HTTP/WebSocket scope, with the last lifespan message it had seen
  hold                     a request carrying `imgtool-hold-ms: N` reached the app's side; it is passed on after
                           N ms, so it is in flight for sure when the runner sends SIGTERM (graceful check)
"""

import asyncio
import importlib
import inspect
import json
import os
import time

APP_ENV = "IMGTOOL_PROBE_APP"
INTERFACE_ENV = "IMGTOOL_PROBE_INTERFACE"
MARK = "imgtool-probe: "
HOLD_HEADER = b"imgtool-hold-ms"
HOLD_ID_HEADER = b"imgtool-hold-id"
# Attributes through which ASGI middleware reaches the app it wraps: Starlette-style middleware (`app`),
# Channels' middleware (`inner`) and origin validators (`application`).
WRAPPED = ("app", "inner", "application", "_app")
MAX_DEPTH = 12


def emit(event, **fields):
    line = MARK + json.dumps(dict(pid=os.getpid(), event=event, **fields), default=str) + "\n"
    os.write(2, line.encode())


def load(ref):
    module_name, _, attribute = ref.partition(":")
    factory = attribute.endswith("()")
    target = importlib.import_module(module_name)
    for part in (attribute[:-2] if factory else attribute).split("."):
        target = getattr(target, part)
    return target() if factory else target


# ---- the route table ----


def _names(obj):
    return {cls.__name__ for cls in type(obj).__mro__}


def _framework(obj):
    return type(obj).__module__.split(".")[0]


def _django_route(pattern):
    """A Django path()/re_path() pattern as (template, syntax)."""
    if hasattr(pattern, "_route"):
        return str(pattern._route), "angle"
    return str(getattr(pattern, "_regex", pattern)), "regex"


def _channels(router, prefix, syntax, found):
    for route in getattr(router, "routes", ()):
        template, kind = _django_route(route.pattern)
        kind = "regex" if "regex" in (kind, syntax) else kind
        callback = _unwrap(route.callback)
        if getattr(callback, "_path_routing", False):
            _channels(callback, prefix + template, kind, found)
        else:
            found.append({"path": "/" + prefix + template, "syntax": kind})


def _starlette_like(routes, prefix, found, depth):
    """Starlette, FastAPI (route classes named WebSocketRoute, Mount) and Litestar (WebSocketRoute)."""
    for route in routes:
        names = _names(route)
        if "WebSocketRoute" in names:
            found.append({"path": prefix + str(route.path), "syntax": "brace"})
        elif "Mount" in names and depth < MAX_DEPTH:
            _starlette_like(getattr(route, "routes", None) or (), prefix + str(route.path), found, depth + 1)


def _unwrap(obj, depth=0):
    """Through middleware to the first object with a route table (or the innermost app)."""
    seen = set()
    while depth < MAX_DEPTH and id(obj) not in seen:
        seen.add(id(obj))
        if _has_table(obj):
            return obj
        inner = next((_inner(obj, name) for name in WRAPPED if _inner(obj, name) is not None), None)
        if inner is None:
            return obj
        obj, depth = inner, depth + 1
    return obj


def _inner(obj, name):
    """The app a middleware wraps under `name`, if any; a bound method (`app.asgi_app = Middleware(app.asgi_app)`,
    Quart's pattern) stands for the object it is bound to."""
    value = getattr(obj, name, None)
    if value is None or not callable(value) or inspect.isclass(value):
        return None
    return value.__self__ if inspect.ismethod(value) else value


def _has_table(obj):
    if hasattr(obj, "application_mapping") or "URLRouter" in _names(obj) or "ASGIHandler" in _names(obj):
        return True
    if hasattr(getattr(obj, "url_map", None), "iter_rules"):
        return True
    routes = getattr(obj, "routes", None)
    return isinstance(routes, (list, tuple))


def websocket_routes(app):
    """{framework, table, ws: [{path, syntax}]}: table False when no route table imgtool can read was found."""
    target = _unwrap(app)
    framework = _framework(target)
    found = []
    if hasattr(target, "application_mapping"):  # Channels' ProtocolTypeRouter
        socket_app = target.application_mapping.get("websocket")
        if socket_app is not None:
            inner = _unwrap(socket_app)
            if "URLRouter" in _names(inner):
                _channels(inner, "", "angle", found)
            else:
                # One consumer for every path: any path opens it.
                found.append({"path": "/", "syntax": "brace"})
        return {"framework": "channels", "table": True, "ws": found}
    if "URLRouter" in _names(target):
        _channels(target, "", "angle", found)
        return {"framework": "channels", "table": True, "ws": found}
    if "ASGIHandler" in _names(target):
        # Django without Channels serves HTTP only.
        return {"framework": framework, "table": True, "ws": []}
    url_map = getattr(target, "url_map", None)
    if hasattr(url_map, "iter_rules"):  # Quart (werkzeug rules with websocket=True)
        for rule in url_map.iter_rules():
            if getattr(rule, "websocket", False):
                found.append({"path": str(rule.rule), "syntax": "angle"})
        return {"framework": framework, "table": True, "ws": found}
    routes = getattr(target, "routes", None)
    if isinstance(routes, (list, tuple)):
        _starlette_like(routes, "", found, 0)
        return {"framework": framework, "table": True, "ws": found}
    return {
        "framework": framework,
        "table": False,
        "ws": [],
        "type": type(target).__module__ + "." + type(target).__qualname__,
    }


# ---- the wrapper ----


def _header(scope, name):
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class Probe:
    def __init__(self, app):
        self.app = app
        self.lifespan = None  # the last lifespan message this process saw
        self.served = False

    async def __call__(self, scope, receive, send):
        kind = scope.get("type")
        if kind == "lifespan":
            return await self._lifespan(scope, receive, send)
        if not self.served:
            self.served = True
            emit("first-request", scope=kind, lifespan=self.lifespan)
        hold = _header(scope, HOLD_HEADER) if kind == "http" else None
        if hold:
            emit("hold", id=_header(scope, HOLD_ID_HEADER), ms=int(hold), path=scope.get("path"))
            await asyncio.sleep(int(hold) / 1000)
        return await self.app(scope, receive, send)

    async def _lifespan(self, scope, receive, send):
        emit("lifespan.scope")
        answered = []

        async def server_says():
            message = await receive()
            self.lifespan = message.get("type")
            emit(self.lifespan, **{"from": "server"})
            return message

        async def app_says(message):
            kind = message.get("type")
            answered.append(kind)
            self.lifespan = kind
            # Frameworks send a traceback: its end names the exception.
            emit(kind, **{"from": "app", "message": str(message.get("message") or "")[-300:]})
            await send(message)

        try:
            await self.app(scope, server_says, app_says)
        except Exception as exc:
            if not answered:
                self.lifespan = "lifespan.unsupported"
                emit("lifespan.unsupported", error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            else:
                emit("lifespan.raised", error=f"{type(exc).__name__}: {exc}"[:300], after=answered)
            raise


class WsgiProbe:
    """The same hold and first-request facts for a WSGI app (the server runs it in a thread: sleeping is fine)."""

    def __init__(self, app):
        self.app = app
        self.served = False

    def __call__(self, environ, start_response):
        if not self.served:
            self.served = True
            emit("first-request", scope="http", lifespan=None)
        hold = environ.get("HTTP_" + HOLD_HEADER.decode().upper().replace("-", "_"))
        if hold:
            ident = environ.get("HTTP_" + HOLD_ID_HEADER.decode().upper().replace("-", "_"))
            emit("hold", id=ident, ms=int(hold), path=environ.get("PATH_INFO"))
            time.sleep(int(hold) / 1000)
        return self.app(environ, start_response)


def _wrap(app):
    if os.environ.get(INTERFACE_ENV) == "wsgi":
        return WsgiProbe(app)
    try:
        emit("routes", **websocket_routes(app))
    except Exception as exc:  # discovery must never keep the app from being served
        emit("routes", framework=_framework(app), table=False, ws=[], error=f"{type(exc).__name__}: {exc}"[:300])
    return Probe(app)


_REF = os.environ.get(APP_ENV, "")
if _REF.endswith("()"):

    def factory():
        return _wrap(load(_REF))

elif _REF:
    app = _wrap(load(_REF))
