"""The registry of ASGI servers: everything imgtool knows about each one, as data.

Adding a server means adding one `ServerSpec` here. Claims (protocols, lifespan, graceful
shutdown) are verified facts from ../shared/SERVERS.md; the smoke suite keeps them honest.

Commands are exec-form argv lists. Three tokens are filled in:
  `{app}`   by the planner, at render time (the `module:attr` of the ASGI app);
  `$PORT`, `$WORKERS`  by the image's launcher, at container start (env `PORT`, and
  `WEB_CONCURRENCY` or the container's CPU limit), so `docker run -e PORT=...` just works.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from enum import StrEnum

from toolkit.errors import UsageError

PROTOCOLS = ("http1", "h2c", "h2-tls", "ws")
# `--protocol`'s choices, from the tuple above.
Protocol = StrEnum("Protocol", {name.replace("-", "_"): name for name in PROTOCOLS})
BEHAVIOURS = ("lifespan", "graceful")

# Seconds a server is given to drain in-flight requests; runtimes get a longer stop grace period.
GRACEFUL_TIMEOUT = 25


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

    @property
    def claims(self) -> frozenset[str]:
        behaviours = {name for name in BEHAVIOURS if getattr(self, name)}
        return self.protocols | behaviours

    def _expand(self, command: tuple[str, ...], app: str) -> list[str]:
        if not app.endswith("()"):
            return [part.replace("{app}", app) for part in command]
        target = app.removesuffix("()")
        if self.factory is None:
            module, attr = target.split(":", 1)
            raise UsageError(
                f"{self.name} cannot call an app factory ({app}): add `app = {attr}()` to {module} "
                f"and pass --app {module}:app, or choose another --server"
            )
        argv: list[str] = []
        for part in command:
            if "{app}" in part:
                argv += [item.replace("{app}", target) for item in self.factory]
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
        ),
    )
}


def get_server(name: str) -> ServerSpec:
    try:
        return SERVERS[name]
    except KeyError:
        raise UsageError(f"unknown server {name[:40]!r}: choose one of {', '.join(SERVERS)}") from None


def select_servers(
    names: list[str] | None, all_servers: bool, configured: tuple[str, ...] = (), default: str = "granian"
) -> list[ServerSpec]:
    """The servers a command acts on: `--all`, or each `--server`, or the project's configured ones
    (`[tool.imgtool] servers`), or the default."""
    if all_servers and names:
        raise UsageError("--all and --server exclude each other: pass one of them")
    if all_servers:
        return list(SERVERS.values())
    chosen = names or list(configured) or [default]
    return [get_server(name) for name in dict.fromkeys(chosen)]
