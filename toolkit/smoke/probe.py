"""The host's side of imgtool_probe.py: serve an image's app through it, and read what it saw.

The probe is mounted into the main container (read-only, like the TLS container's certificates) and the
image's own command runs with only the app reference replaced, so the server, its flags, the launcher and
the worker count are the image's. What the probe writes to the logs is the server's side of the story:
which lifespan messages the server sent and when, which requests reached the app, and the app's own
route table (WebSocket routes). The functions below are pure: commands, log lines and route templates in,
decisions out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROBE_FILE = Path(__file__).with_name("imgtool_probe.py")
PROBE_DIR = "/imgtool-probe"
APP_ENV = "IMGTOOL_PROBE_APP"
INTERFACE_ENV = "IMGTOOL_PROBE_INTERFACE"
# Prefixes a server puts before the app reference to name its interface (hypercorn's `wsgi:module:app`).
_INTERFACE_PREFIXES = ("", "asgi:", "wsgi:")
MARK = "imgtool-probe: "
# How many WebSocket routes the ws check opens at most.
WS_ROUTES_TRIED = 3


def probe_command(command: Sequence[str], app: str) -> list[str] | None:
    """The image's command serving the probe instead of `app` (`module:attr` or `module:factory()`), in the
    same syntax the command uses for it; None when no argument of the command is the app."""
    target = app.removesuffix("()")
    probe = "imgtool_probe:factory" if app.endswith("()") else "imgtool_probe:app"
    forms = {
        f"{prefix}{target}{call}": f"{prefix}{probe}{call}" for prefix in _INTERFACE_PREFIXES for call in ("", "()")
    }
    replaced = [forms.get(part, part) for part in command]
    return replaced if replaced != list(command) else None


def probe_environment(app: str, pythonpath: str | None, interface: str = "asgi") -> dict[str, str]:
    return {
        APP_ENV: app,
        INTERFACE_ENV: interface,
        "PYTHONPATH": f"{PROBE_DIR}:{pythonpath}" if pythonpath else PROBE_DIR,
    }


def events(logs: str) -> list[dict]:
    """The probe's lines in a container's logs, in order."""
    found = []
    for line in logs.splitlines():
        at = line.find(MARK)
        if at < 0:
            continue
        try:
            event = json.loads(line[at + len(MARK) :])
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            found.append(event)
    return found


def holds_seen(logs: str) -> set[str]:
    return {str(event.get("id")) for event in events(logs) if event["event"] == "hold"}


# ---- lifespan, as the server ran it ----


class Lifespan:
    """Outcomes of `lifespan_verdict`."""

    RAN = "ran"  # startup before the first request in every worker, shutdown after SIGTERM
    MISSING = "missing"  # the server did not run it (or not all of it)
    REFUSED = "refused"  # the app raised on the lifespan scope: it does not support lifespan
    FAILED = "failed"  # the app answered startup.failed / shutdown.failed, or raised after answering


@dataclass
class _Worker:
    messages: list[str] = field(default_factory=list)
    first_request: str | None = "never"  # the last lifespan message before the first request


def lifespan_verdict(found: list[dict], stopped: bool = True) -> tuple[str, str]:
    """(outcome, detail) from the probe's events; `stopped`: the container was stopped with SIGTERM."""
    workers: dict[int, _Worker] = {}
    for event in found:
        kind = event["event"]
        worker = workers.setdefault(event.get("pid", 0), _Worker())
        if kind == "lifespan.unsupported":
            error = event.get("error", "")
            return Lifespan.REFUSED, f"it raised {error} on the lifespan scope"
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            # Frameworks send the traceback: its last line names the exception.
            lines = [line.strip() for line in str(event.get("message") or "").splitlines() if line.strip()]
            return Lifespan.FAILED, f"the app answered {kind} ({lines[-1][:200] if lines else 'no message'})"
        if kind == "lifespan.raised":
            return Lifespan.FAILED, f"the app raised {event.get('error')} after {', '.join(event.get('after', []))}"
        if kind.startswith("lifespan.") and kind != "lifespan.scope":
            worker.messages.append(kind)
        if kind == "first-request" and worker.first_request == "never":
            worker.first_request = event.get("lifespan")
    serving = {pid: worker for pid, worker in workers.items() if worker.first_request != "never"}
    if not serving:
        return Lifespan.MISSING, "no request reached the app"
    for pid, worker in sorted(serving.items()):
        if worker.first_request != "lifespan.startup.complete":
            before = worker.first_request or "no lifespan scope from the server"
            return Lifespan.MISSING, f"pid {pid} served its first request after {before}"
    started = {pid: worker for pid, worker in workers.items() if "lifespan.startup.complete" in worker.messages}
    if stopped:
        for pid, worker in sorted(started.items()):
            if "lifespan.shutdown" not in worker.messages:
                return Lifespan.MISSING, f"pid {pid} ran lifespan startup; the server sent it no lifespan.shutdown"
            if "lifespan.shutdown.complete" not in worker.messages:
                return Lifespan.MISSING, f"pid {pid}: the app did not complete lifespan.shutdown"
    count = f"{len(started)} process{'es' if len(started) != 1 else ''}"
    shutdown = "; lifespan.shutdown after SIGTERM, completed" if stopped else ""
    return Lifespan.RAN, f"the server sent lifespan.startup, completed before the first request ({count}){shutdown}"


# ---- WebSocket routes from the app's route table ----

# What a path parameter gets, by its converter (Starlette/Litestar `{name:type}`, werkzeug/Django `<type:name>`).
SAMPLES = {
    "": "imgtool",
    "str": "imgtool",
    "string": "imgtool",
    "slug": "imgtool",
    "path": "imgtool",
    "int": "1",
    "float": "1.0",
    "decimal": "1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "date": "2026-01-01",
    "datetime": "2026-01-01T00:00:00",
    "time": "00:00:00",
}
_BRACE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]*))?\}")
_ANGLE = re.compile(r"<(?:([A-Za-z_][A-Za-z0-9_]*)(?:\(([^)]*)\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")
_REGEX_SPECIAL = re.compile(r"[.^$*+?{}\[\]\\|()]")


@dataclass(frozen=True)
class WsRoute:
    path: str  # what the ws check opens
    template: str  # as the route table has it
    filled: tuple[str, ...] = ()  # `name=value` for each parameter filled with a sample

    @property
    def note(self) -> str:
        return f" ({', '.join(self.filled)} in {self.template})" if self.filled else ""


def concrete(template: str, syntax: str) -> WsRoute | None:
    """A path that matches the route, path parameters filled with samples; None when imgtool cannot make one."""
    filled: list[str] = []
    unknown = False

    def brace(match: re.Match) -> str:
        nonlocal unknown
        value = SAMPLES.get(match.group(2) or "")
        unknown |= value is None
        filled.append(f"{match.group(1)}={value}")
        return value or ""

    def angle(match: re.Match) -> str:
        nonlocal unknown
        converter, arguments, name = match.group(1) or "", match.group(2), match.group(3)
        if converter == "any" and arguments:
            value = arguments.split(",")[0].strip().strip("'\"")
        else:
            value = SAMPLES.get(converter)
        unknown |= not value
        filled.append(f"{name}={value}")
        return value or ""

    if syntax == "brace":
        path = _BRACE.sub(brace, template)
    elif syntax == "angle":
        path = _ANGLE.sub(angle, template)
    elif syntax == "regex":
        # Channels joins nested re_path() patterns as they are: anchors may sit in the middle.
        path = template.replace("^", "").replace("$", "").replace(r"\Z", "")
        if _REGEX_SPECIAL.search(path):
            return None
    else:
        return None
    if unknown:
        return None
    return WsRoute(path if path.startswith("/") else f"/{path}", template, tuple(filled))


@dataclass(frozen=True)
class RouteTable:
    """What the probe found: the framework, whether it read a route table, the WebSocket routes in it."""

    framework: str
    readable: bool
    routes: tuple[tuple[str, str], ...] = ()  # (template, syntax)
    kind: str = ""  # the app's type where no table was found
    error: str = ""


def route_table(found: list[dict]) -> RouteTable | None:
    """The probe's `routes` line (every worker writes the same one); None when it wrote none."""
    line = next((event for event in found if event["event"] == "routes"), None)
    if line is None:
        return None
    routes = tuple((str(route.get("path", "")), str(route.get("syntax", ""))) for route in line.get("ws") or ())
    return RouteTable(
        framework=str(line.get("framework", "")),
        readable=bool(line.get("table")),
        routes=routes,
        kind=str(line.get("type", "")),
        error=str(line.get("error", "")),
    )


def choose_ws_routes(table: RouteTable, limit: int = WS_ROUTES_TRIED) -> tuple[list[WsRoute], str]:
    """The routes the ws check opens, and why there are none: every route without parameters (a browser opens
    those without knowing the app's data), up to `limit`; else the first one whose parameters take a sample."""
    usable = [route for route in (concrete(template, syntax) for template, syntax in table.routes) if route]
    literal = [route for route in usable if not route.filled]
    chosen = literal[:limit] or usable[:1]
    if chosen:
        return chosen, ""
    fix = "name one with --ws-path or [tool.imgtool] ws-path"
    if table.error:
        return [], f"reading the app's route table failed ({table.error}): {fix}"
    if not table.readable:
        return [], f"no route table imgtool can read in {table.kind or table.framework}: {fix}"
    if not table.routes and table.framework == "django":
        return [], "a Django app without Channels (ProtocolTypeRouter) has no WebSocket route"
    if not table.routes:
        return [], f"the app's route table ({table.framework}) has no WebSocket route"
    templates = ", ".join(template for template, _ in table.routes)
    return [], f"the app's WebSocket routes ({templates}) take parameters imgtool cannot fill: {fix}"
