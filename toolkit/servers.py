"""The registry of servers: everything imgtool knows about each one, as data.

Adding a server means adding one `ServerSpec` here. Claims (protocols, lifespan, graceful
shutdown) are verified facts from ../shared/SERVERS.md; the smoke suite keeps them honest.
Every server serves ASGI; one that also serves WSGI apps says how in its `wsgi` entry (`WsgiMode`), and
`spec.serving("wsgi")` is the same server set up for a WSGI app, read by everything downstream alike.

Commands are exec-form argv lists. Three tokens are filled in:
  `{app}`   by the planner, at render time (the `module:attr` of the ASGI app);
  `$PORT`, `$WORKERS`  by the image's launcher, at container start (env `PORT`, and
  `WEB_CONCURRENCY` or the container's CPU limit), so `docker run -e PORT=...` just works;
  `$THREADS` likewise (env `WEB_THREADS`, else the server's `default_threads`), for threaded WSGI workers.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from enum import StrEnum

from toolkit.errors import UsageError

PROTOCOLS = ("http1", "h2c", "h2-tls", "ws")
# `--protocol`'s choices, from the tuple above.
Protocol = StrEnum("Protocol", {name.replace("-", "_"): name for name in PROTOCOLS})
BEHAVIOURS = ("lifespan", "graceful")

# Seconds a server is given to drain in-flight requests; runtimes get a longer stop grace period.
GRACEFUL_TIMEOUT = 25
INTERFACES = ("asgi", "wsgi")
# Why a WSGI app has no WebSocket and no lifespan, whatever the server: shown as `n/a (reason)`.
WSGI_NOT_APPLICABLE = {
    "ws": "a WSGI app has no WebSocket (WSGI is request/response only)",
    "lifespan": "WSGI has no lifespan protocol",
}


@dataclass(frozen=True)
class WsgiMode:
    """How a server serves a WSGI app: what differs from its ASGI setup (the rest is the same)."""

    summary: str
    command: tuple[str, ...]
    protocols: frozenset[str]
    packages: tuple[str, ...] | None = None  # None: the ASGI packages
    tls_flags: tuple[str, ...] | None = None  # None: the ASGI ones
    limitations: dict[str, str] = field(default_factory=dict)
    # Whether SIGTERM drains and exits in time when serving WSGI (the ASGI claim may not carry over).
    graceful: bool = True
    # Unclaimed behaviours that fail only some of the time: a pass proves nothing, so it is no news for the registry.
    intermittent: frozenset[str] = frozenset()
    # Threads per worker for $THREADS (WEB_THREADS overrides it at run time); None: the server sizes its own pool.
    default_threads: str | None = None


@dataclass(frozen=True)
class ServerSpec:
    name: str
    summary: str
    packages: tuple[str, ...]
    command: tuple[str, ...]
    protocols: frozenset[str]
    # The flags that switch the same command to TLS; {cert} and {key} are paths in the container.
    tls_flags: tuple[str, ...] = ()
    # A server whose TLS is a different listener, not extra flags, gives its whole TLS command.
    tls_command: tuple[str, ...] = ()
    lifespan: bool = True
    # What the server does with an app that refuses the lifespan scope (Django, Channels: they raise on it),
    # measured with a fresh `django-admin startproject` app (Django 5.2): none of them may refuse to serve it.
    without_lifespan: str = ""
    graceful: bool = True
    # Why a protocol or behaviour is not claimed; shown as `n/a (reason)` by the smoke suite.
    limitations: dict[str, str] = field(default_factory=dict)
    # Unclaimed behaviours that fail only some of the time: a pass proves nothing, so it is no news for the registry.
    intermittent: frozenset[str] = frozenset()
    # Exit codes that mean "stopped cleanly after SIGTERM".
    clean_exit_codes: frozenset[int] = frozenset({0})
    # "auto" = one worker per CPU the container may use; a number where more workers hurt.
    default_workers: str = "auto"
    # Whether the server replaces a worker that died; else the container's restart policy must.
    respawns_workers: bool = True
    # Whether it needs an init process as PID 1 (compose: `init: true`) to reap its workers and pass
    # SIGTERM on. None of these does: each handles SIGTERM and reaps its own workers, exec'd as PID 1.
    needs_init: bool = False
    # Import the app in the launcher before exec'ing the server, from this many workers up, for
    # servers that mishandle an app failing to import: the container must exit non-zero at once,
    # with the traceback in its log. 0: never needed (it costs the app's import time at start).
    preflight_import: int = 0
    # The worker count that makes the server serve in its own process, used when one worker is wanted: no
    # supervisor process, one import of the app (the launcher fills it in for $WORKERS). None: no such mode.
    single_process_workers: str | None = None
    deprecation: str | None = None
    # How `{app}` is written for an app factory (`module:create_app()`): the argv items that replace it,
    # where `{app}` is the plain `module:create_app`. None: the server cannot call factories.
    # The default, call syntax, is what hypercorn (eval of the attribute part in
    # hypercorn.utils.load_application) and gunicorn (gunicorn.util.import_app) accept.
    factory: tuple[str, ...] | None = ("{app}()",)
    # Whether `module:attr.sub` reaches an attribute of an attribute (gunicorn takes `name` or `name()` only).
    dotted_refs: bool = True
    # The interface this spec serves; `serving("wsgi")` gives the WSGI one.
    interface: str = "asgi"
    # How it serves WSGI apps; None, with the reason in `no_wsgi`: it does not.
    wsgi: WsgiMode | None = None
    no_wsgi: str = ""
    default_threads: str | None = None

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interfaces this server serves."""
        return ("asgi", "wsgi") if self.wsgi is not None or self.interface == "wsgi" else ("asgi",)

    def serving(self, interface: str) -> ServerSpec:
        """This server set up for an app of `interface`: itself for ASGI, its WSGI mode for WSGI."""
        if interface == self.interface:
            return self
        if interface != "wsgi" or self.wsgi is None:
            able = ", ".join(spec.name for spec in SERVERS.values() if interface in spec.interfaces)
            why = f" ({self.no_wsgi})" if self.no_wsgi else ""
            raise UsageError(f"{self.name} does not serve {interface.upper()} apps{why}: choose --server {able}")
        mode = self.wsgi
        return replace(
            self,
            summary=mode.summary,
            command=mode.command,
            protocols=mode.protocols,
            packages=mode.packages if mode.packages is not None else self.packages,
            tls_flags=mode.tls_flags if mode.tls_flags is not None else self.tls_flags,
            lifespan=False,
            without_lifespan="",
            graceful=self.graceful and mode.graceful,
            limitations={**mode.limitations, **WSGI_NOT_APPLICABLE},
            intermittent=mode.intermittent,
            deprecation=None,
            interface="wsgi",
            wsgi=None,
            default_threads=mode.default_threads,
        )

    @property
    def claims(self) -> frozenset[str]:
        behaviours = {name for name in BEHAVIOURS if getattr(self, name)}
        return self.protocols | behaviours

    def _expand(self, command: tuple[str, ...], app: str) -> list[str]:
        target = app.removesuffix("()")
        module, attr = target.split(":", 1)
        if "." in attr and not self.dotted_refs:
            raise UsageError(
                f"{self.name} imports only module:name or module:name() ({app}): add `application = {attr}"
                f"{'()' if app.endswith('()') else ''}` to {module} and pass --app {module}:application, "
                "or choose another --server"
            )
        if not app.endswith("()"):
            return [part.replace("{app}", app) for part in command]
        if self.factory is None:
            raise UsageError(
                f"{self.name} cannot call an app factory ({app}): add `app = {attr}()` to {module} "
                f"and pass --app {module}:app, or choose another --server"
            )
        argv: list[str] = []
        for part in command:
            if "{app}" in part:
                # The part keeps what surrounds {app} (hypercorn's `wsgi:{app}`); extra items (--factory) follow.
                argv += [
                    part.replace("{app}", item.replace("{app}", target)) if "{app}" in item else item
                    for item in self.factory
                ]
            else:
                argv.append(part)
        return argv

    def argv(self, app: str) -> list[str]:
        """The run command for `module:attr`, or for `module:factory()` with the server's factory syntax."""
        return self._expand(self.command, app)

    def tls_argv(self, app: str, cert: str, key: str) -> list[str]:
        """The command serving TLS on $PORT with the given certificate and PKCS#8 key."""
        if self.tls_command:
            base = list(self.tls_command)
        elif self.tls_flags:
            base = [*self.command, *self.tls_flags]
        else:
            base = [*self.command]
        return [part.replace("{cert}", cert).replace("{key}", key) for part in self._expand(tuple(base), app)]


def _argv(text: str) -> tuple[str, ...]:
    """Commands are written as shell-like text for reading; they run as exec-form argv."""
    return tuple(shlex.split(text))


_UVICORN_PACKAGES = ("uvicorn>=0.30,<1", "uvloop>=0.19,<1", "httptools>=0.6,<1", "websockets>=13,<18")

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            name="uvicorn",
            summary="uvicorn with uvloop and httptools",
            packages=_UVICORN_PACKAGES,
            command=_argv(
                "uvicorn {app} --host 0.0.0.0 --port $PORT --workers $WORKERS --loop uvloop --http httptools"
                f" --ws auto --lifespan auto --no-access-log --timeout-graceful-shutdown {GRACEFUL_TIMEOUT}"
            ),
            protocols=frozenset({"http1", "ws"}),
            # `--lifespan on` made Django exit 3 at start ("Application startup failed. Exiting.").
            without_lifespan="serves it (--lifespan auto logs \"ASGI 'lifespan' protocol appears unsupported.\"); "
            "an app whose startup fails (lifespan.startup.failed) still stops it, exit 3",
            tls_flags=_argv("--ssl-certfile {cert} --ssl-keyfile {key}"),
            factory=("{app}", "--factory"),
            limitations={
                "h2c": "uvicorn speaks HTTP/1.1 only (HTTP/2 needs the experimental zttp extra)",
                "h2-tls": "uvicorn speaks HTTP/1.1 only, also over TLS",
            },
            # A single uvicorn process re-raises SIGTERM after draining: 128 + 15.
            clean_exit_codes=frozenset({0, 143}),
            # With --workers > 1 uvicorn respawns a child that fails to import, forever (tested);
            # a single uvicorn process exits 1 by itself.
            preflight_import=2,
            # `--interface wsgi` works (tested, HTTP/1.1) but uvicorn deprecates it: its WSGIMiddleware warns
            # "Uvicorn's native WSGI implementation is deprecated, you should switch to a2wsgi".
            no_wsgi="uvicorn deprecates its own WSGI interface in favour of a2wsgi",
        ),
        ServerSpec(
            name="hypercorn",
            summary="hypercorn on uvloop; HTTP/2 always on",
            packages=("hypercorn[uvloop]>=0.17,<1",),
            command=_argv(
                "hypercorn {app} --bind 0.0.0.0:$PORT --workers $WORKERS --worker-class uvloop"
                f" --graceful-timeout {GRACEFUL_TIMEOUT}"
            ),
            protocols=frozenset({"http1", "h2c", "h2-tls", "ws"}),
            # hypercorn serves WSGI natively (hypercorn.utils.wrap_app, the app run in the loop's thread pool):
            # h2c, h2 over TLS, and an in-flight request finished on SIGTERM, tested with `wsgi:module:app`. The
            # `wsgi:` prefix says the interface instead of letting hypercorn guess it from __call__.
            wsgi=WsgiMode(
                summary="hypercorn serving WSGI (its thread pool); HTTP/2 always on",
                command=_argv(
                    "hypercorn wsgi:{app} --bind 0.0.0.0:$PORT --workers $WORKERS --worker-class uvloop"
                    f" --graceful-timeout {GRACEFUL_TIMEOUT}"
                ),
                protocols=frozenset({"http1", "h2c", "h2-tls"}),
                # Measured with hypercorn 0.18 (a burst of keep-alive clients and two held requests across SIGTERM):
                # every request is answered, but in 2 of 6 runs the process then waits out its --graceful-timeout
                # (still running 10 s after SIGTERM); serving ASGI it exits in about 1 s every time.
                graceful=False,
                intermittent=frozenset({"graceful"}),
                limitations={
                    "graceful": "serving WSGI, hypercorn 0.18 answers in-flight requests but now and then waits out "
                    f"its whole --graceful-timeout ({GRACEFUL_TIMEOUT} s) after SIGTERM (2 of 6 runs)"
                },
            ),
            tls_flags=_argv("--certfile {cert} --keyfile {key}"),
            without_lifespan='serves it (logs "ASGI Framework Lifespan error, continuing without Lifespan support")',
            # With several workers, hypercorn's parent kills busy workers when an idle one exits
            # first, losing in-flight requests (SERVERS.md): one worker unless WEB_CONCURRENCY says.
            default_workers="1",
            # One worker is `--workers 0`: hypercorn serves in its own process (hypercorn.run: workers == 0), so a
            # start costs one interpreter and one import of the app, and an app that fails to import exits 1.
            single_process_workers="0",
            # With worker processes hypercorn exits 0 when the app fails to import (tested).
            preflight_import=2,
            # A dead worker stops the whole server, exit code 0 (tested): recovery is the restart
            # policy, and it must be unless-stopped or always, not on-failure.
            respawns_workers=False,
        ),
        ServerSpec(
            name="daphne",
            summary="daphne (Twisted); HTTP/2 only over TLS",
            packages=("daphne>=4.1,<5", "twisted[tls,http2]>=24"),
            command=_argv("daphne --bind 0.0.0.0 --port $PORT {app}"),
            protocols=frozenset({"http1", "h2-tls", "ws"}),
            tls_command=_argv("daphne -e ssl:$PORT:interface=0.0.0.0:privateKey={key}:certKey={cert} {app}"),
            lifespan=False,
            without_lifespan="serves it (daphne never sends the lifespan scope)",
            graceful=False,
            # daphne imports `module:attr` and never calls it (daphne.utils.import_by_path).
            factory=None,
            limitations={
                "h2c": "daphne serves HTTP/2 only through its TLS endpoint",
                "lifespan": "daphne does not run the ASGI lifespan protocol",
                "graceful": "daphne kills in-flight requests on SIGTERM",
            },
            default_workers="1",
            respawns_workers=False,
            no_wsgi="it is an ASGI server, Django Channels' own",
        ),
        ServerSpec(
            name="granian",
            summary="granian (Rust) ASGI interface, HTTP/1.1 + HTTP/2 auto",
            packages=("granian>=2.5,<3",),
            # Without --respawn-failed-workers one crashed worker takes the whole server down (tested).
            command=_argv(
                "granian --interface asgi --host 0.0.0.0 --port $PORT --workers $WORKERS --http auto"
                " --respawn-failed-workers --respawn-interval 1 {app}"
            ),
            protocols=frozenset({"http1", "h2c", "h2-tls", "ws"}),
            tls_flags=_argv("--ssl-certificate {cert} --ssl-keyfile {key}"),
            factory=_argv("--factory {app}"),
            without_lifespan='serves it (logs "ASGI Lifespan errored, continuing without Lifespan support"; '
            "--interface asginl would skip lifespan altogether)",
            # `--interface wsgi`: h2c and h2 over TLS with --http auto, SIGTERM finishes the in-flight request
            # (tested, --workers 1 and 2); its blocking-thread pool defaults to half the backpressure (512).
            wsgi=WsgiMode(
                summary="granian (Rust) WSGI interface, HTTP/1.1 + HTTP/2 auto",
                command=_argv(
                    "granian --interface wsgi --host 0.0.0.0 --port $PORT --workers $WORKERS --http auto"
                    " --respawn-failed-workers --respawn-interval 1 {app}"
                ),
                protocols=frozenset({"http1", "h2c", "h2-tls"}),
            ),
        ),
        ServerSpec(
            name="gunicorn",
            summary="gunicorn managing uvicorn workers (legacy)",
            packages=("gunicorn>=23,<28", "uvicorn-worker>=0.3,<1", *_UVICORN_PACKAGES),
            command=_argv(
                "gunicorn {app} --worker-class uvicorn_worker.UvicornWorker --bind 0.0.0.0:$PORT"
                f" --workers $WORKERS --graceful-timeout {GRACEFUL_TIMEOUT}"
            ),
            protocols=frozenset({"http1", "ws"}),
            tls_flags=_argv("--certfile {cert} --keyfile {key}"),
            # uvicorn_worker.UvicornWorker keeps uvicorn's default, --lifespan auto.
            without_lifespan="serves it (the worker logs \"ASGI 'lifespan' protocol appears unsupported.\")",
            limitations={
                "h2c": "gunicorn's uvicorn worker speaks HTTP/1.1 only",
                "h2-tls": "gunicorn's uvicorn worker speaks HTTP/1.1 only, also over TLS",
            },
            deprecation=(
                "gunicorn + uvicorn workers is legacy: uvicorn --workers now manages processes itself "
                "(use --server uvicorn)"
            ),
            # gunicorn.util.import_app takes `name` or `name(literal args)`, nothing dotted (read in its source).
            dotted_refs=False,
            # Its own gthread worker (the sync worker answers one request at a time: a health check waited 1.5 s
            # behind a slow request, tested). `--http-protocols h2,h1` (gunicorn 25+, h2 from the http2 extra)
            # gives h2 over TLS by ALPN (tested); h2c it serves only to peers in --forwarded-allow-ips
            # (`--http2-cleartext`, gunicorn 26.2+: an untrusted peer's preface was refused, tested).
            wsgi=WsgiMode(
                summary="gunicorn with its own threaded (gthread) WSGI workers",
                command=_argv(
                    "gunicorn {app} --worker-class gthread --threads $THREADS --bind 0.0.0.0:$PORT"
                    f" --workers $WORKERS --graceful-timeout {GRACEFUL_TIMEOUT} --http-protocols h2,h1"
                ),
                protocols=frozenset({"http1", "h2-tls"}),
                packages=("gunicorn[http2]>=25,<28",),
                limitations={
                    "h2c": "gunicorn serves h2c only to peers trusted with --forwarded-allow-ips; imgtool trusts none"
                },
                default_threads="8",
            ),
        ),
    )
}


def get_server(name: str) -> ServerSpec:
    try:
        return SERVERS[name]
    except KeyError:
        raise UsageError(f"unknown server {name[:40]!r}: choose one of {', '.join(SERVERS)}") from None


def select_servers(
    names: list[str] | None,
    all_servers: bool,
    configured: tuple[str, ...] = (),
    default: str = "granian",
    interface: str = "asgi",
) -> list[ServerSpec]:
    """The servers a command acts on: `--all` (those serving the app's interface), or each `--server`, or the
    project's configured ones (`[tool.imgtool] servers`), or the default; one that cannot serve the interface is
    an error naming those that can."""
    if all_servers and names:
        raise UsageError("--all and --server exclude each other: pass one of them")
    if all_servers:
        return [spec for spec in SERVERS.values() if interface in spec.interfaces]
    chosen = names or list(configured) or [default]
    specs = [get_server(name) for name in dict.fromkeys(chosen)]
    for spec in specs:
        spec.serving(interface)
    return specs
