"""The app a server command line names: `uvicorn pkg.main:app --port 80`, `gunicorn -k gthread mysite.wsgi`,
`granian --interface wsgi --factory app:create`, `hypercorn asgi:main:app`, `daphne proj.asgi:application`,
`fastapi run app/main.py`, also behind `python -m`, `uv run`, `poetry run`, `exec`, env assignments or `sh -c`.

Pure text in, a `RunLine` out; nothing is imported or run. Options that take a value are skipped by knowing each
server's flags that take none (everything else that is not `--flag=value` takes the next word).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

SERVERS = ("uvicorn", "hypercorn", "daphne", "granian", "gunicorn", "fastapi")
# Words that run the next word as the command.
_WRAPPERS = {"exec", "uv", "run", "poetry", "pipenv", "pdm", "hatch", "rye", "nohup", "env", "--", "tini", "dumb-init"}
_PYTHON = re.compile(r"^python(\d(\.\d+)?)?$")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# `module:attr`, `module:attr.sub`, `module:factory()` or gunicorn's `module:factory(arg='x')`.
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REF = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})(?P<call>\(.*\))?$")
_MODULE = re.compile(rf"^{_DOTTED}$")

# Flags that take no value, per server (the rest take one unless written --flag=value).
_BOOLEAN = {
    "uvicorn": {
        "--reload",
        "--factory",
        "--use-colors",
        "--access-log",
        "--proxy-headers",
        "--server-header",
        "--date-header",
        "--reset-contextvars",
    },
    "hypercorn": {"--debug", "--reload", "--verbose", "-v", "--version"},
    "daphne": {"--proxy-headers", "--no-server-name", "--version"},
    "granian": {
        "--ws",
        "--reload",
        "--factory",
        "--access-log",
        "--log",
        "--respawn-failed-workers",
        "--http1-keep-alive",
        "--http2-adaptive-window",
        "--reuse-port",
        "--version",
        "--metrics",
    },
    "gunicorn": {
        "--reload",
        "--daemon",
        "-D",
        "--preload",
        "--check-config",
        "--print-config",
        "--capture-output",
        "--enable-stdio-inheritance",
        "--no-sendfile",
        "--reuse-port",
        "--spew",
        "--strip-header-spaces",
        "-R",
        "--version",
        "--do-handshake-on-connect",
    },
    "fastapi": {"--reload", "--proxy-headers"},
}
# Worker classes of gunicorn that serve ASGI (everything else is one of its WSGI workers).
_ASGI_WORKERS = ("uvicorn", "asgi", "UvicornWorker", "UvicornH11Worker")


@dataclass(frozen=True)
class RunLine:
    server: str  # the server the command runs
    module: str
    attr: str  # may be dotted (`app.server`)
    factory: bool = False
    # "asgi" / "wsgi" when the command says so (a gunicorn WSGI worker, --interface wsgi); None: the app decides.
    interface: str | None = None
    # `fastapi run` without an app name: the FastAPI app in `module`, whatever its name.
    attr_known: bool = True

    @property
    def ref(self) -> str:
        return f"{self.module}:{self.attr}()" if self.factory else f"{self.module}:{self.attr}"


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def _commands(words: list[str]) -> list[list[str]]:
    """The simple commands in a word list (split at &&, ;, |), with `sh -c "..."` opened up."""
    commands, current = [], []
    for word in [*words, ";"]:
        if word in _SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(word)
    opened = []
    for command in commands:
        if len(command) >= 3 and PurePosixPath(command[0]).name in ("sh", "bash", "dash") and command[1] == "-c":
            opened += _commands(_split(command[2]))
        else:
            opened.append(command)
    return opened


def _server_at(command: list[str]) -> tuple[str, list[str]] | None:
    """(server, its arguments) when this simple command runs one of the five servers or `fastapi`."""
    index = 0
    while index < len(command):
        word = command[index]
        name = PurePosixPath(word).name
        if _ASSIGNMENT.match(word) or name in _WRAPPERS:
            index += 1
        elif _PYTHON.match(name) and command[index + 1 : index + 2] == ["-m"]:
            index += 2
        elif name in SERVERS:
            return name, command[index + 1 :]
        else:
            return None
    return None


def _positionals(server: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The arguments that are not options, and the options' values (last one wins)."""
    boolean = _BOOLEAN[server]
    positionals, options = [], {}
    index = 0
    while index < len(args):
        word = args[index]
        if word.startswith("--") and "=" in word:
            key, _, value = word.partition("=")
            options[key] = value
        elif word.startswith("--no-") or word in boolean:
            options[word] = ""
        elif word.startswith("-") and len(word) > 1:
            # `-w4`: a short option with its value attached; else the next word is its value.
            if not word.startswith("--") and len(word) > 2:
                options[word[:2]] = word[2:]
            elif index + 1 < len(args):
                options[word] = args[index + 1]
                index += 1
        else:
            positionals.append(word)
        index += 1
    return positionals, options


def _gunicorn_interface(options: dict[str, str]) -> str:
    worker = options.get("-k", options.get("--worker-class", "sync"))
    return "asgi" if any(marker in worker for marker in _ASGI_WORKERS) else "wsgi"


def _fastapi(args: list[str]) -> RunLine | None:
    if not args or args[0] not in ("run", "dev"):
        return None
    positionals, options = _positionals("fastapi", args[1:])
    entrypoint = options.get("--entrypoint") or options.get("-e")
    if entrypoint and (match := _REF.match(entrypoint)):
        return RunLine("fastapi", match["module"], match["attr"], interface="asgi")
    path = positionals[0] if positionals else None
    if path is None:
        return None
    module = PurePosixPath(path.removeprefix("./"))
    dotted = ".".join(module.with_suffix("").parts) if module.suffix == ".py" else ".".join(module.parts)
    if not _MODULE.match(dotted):
        return None
    app = options.get("--app")
    return RunLine("fastapi", dotted.removesuffix(".__init__"), app or "app", interface="asgi", attr_known=bool(app))


def parse(text: str) -> RunLine | None:
    """The first app a command line serves, or None when it runs none of the servers (or names no app)."""
    for command in _commands(_split(text)):
        found = _server_at(command)
        if found is None:
            continue
        server, args = found
        if server == "fastapi":
            line = _fastapi(args)
            if line is not None:
                return line
            continue
        positionals, options = _positionals(server, args)
        if not positionals:
            continue
        target = positionals[0]
        interface = None
        if server == "hypercorn" and target.split(":", 1)[0] in ("asgi", "wsgi") and target.count(":") == 2:
            interface, target = target.split(":", 1)
        match = _REF.match(target)
        if match is not None:
            module, attr, call = match["module"], match["attr"], match["call"]
        elif _MODULE.match(target) and server in ("gunicorn", "hypercorn"):
            # gunicorn's default attribute is `application`, hypercorn's `app`.
            module, attr, call = target, "application" if server == "gunicorn" else "app", None
        else:
            continue
        factory = bool(call) or "--factory" in options
        if server == "gunicorn":
            interface = _gunicorn_interface(options)
        elif server == "daphne":
            interface = "asgi"
        elif server == "granian":
            chosen = options.get("--interface", "")
            interface = "wsgi" if chosen == "wsgi" else "asgi" if chosen in ("asgi", "asginl") else None
        elif server == "uvicorn":
            interface = "wsgi" if options.get("--interface") == "wsgi" else "asgi"
        return RunLine(server, module, attr, factory, interface)
    return None
