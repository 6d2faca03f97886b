"""Resolve every build setting once: defaults < `[tool.imgtool]` in the context's pyproject < flags."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import IMAGES_DIR
from toolkit.detect import PYPROJECT, REQUIREMENTS, DependencySource, dependency_source, detect_app
from toolkit.errors import UsageError

BUNDLED_APP_CONTEXT = IMAGES_DIR / "app"
DEFAULT_PYTHON = "3.11"
DEFAULT_PORT = 8000
DEFAULT_HEALTH_PATH = "/health"

# module:attr, or module:factory() for an app factory (called with no arguments at start-up).
_APP_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\(\))?$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_APT_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
# Set by imgtool itself (port, health-path, workers and the image layout own them).
_RESERVED_ENV = {"PATH", "PYTHONPATH", "PORT", "HEALTH_PATH", "WEB_CONCURRENCY"}
_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG_RE = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?$")
_KNOWN_KEYS = {
    "app",
    "python",
    "base",
    "health-path",
    "port",
    "name",
    "routes",
    "server",
    "servers",
    "workers",
    "apt-packages",
    "env",
    "build-args",
    "exclude",
    "runtime",
}
# "reference": the app serves the bundled app's routes (/info, /ws, /stream, /slow), so the
# smoke suite can check every protocol; "generic": only the health path is known.
ROUTE_PROFILES = ("generic", "reference")
# The runtime stage: "distroless" is Python, its standard library and the C libraries the app's wheels
# link, from Debian packages, on an empty image (no shell, apt, dpkg or perl); "debian" is the base image
# itself (a shell, apt: for apps that run shell commands or need packages' maintainer scripts).
RUNTIMES = ("distroless", "debian")
DEFAULT_RUNTIME = "distroless"


@dataclass(frozen=True)
class Config:
    context: Path
    app: str
    app_name: str
    deps: DependencySource
    python: str
    base: str | None
    health_path: str
    port: int
    routes: str = "generic"
    # Servers to build when no --server/--all is given (empty: the CLI's default).
    servers: tuple[str, ...] = ()
    # Default worker count baked into the image (WEB_CONCURRENCY still wins at run time); None: per CPU.
    workers: int | None = None
    apt_packages: tuple[str, ...] = ()
    # Distributions the dependency resolution leaves out (never installed), e.g. Litestar's faker
    # and pygments, which only its test factories and CLI use; the build's import check and the
    # smoke suite prove the app runs without them.
    exclude: tuple[str, ...] = ()
    runtime: str = DEFAULT_RUNTIME
    env: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    # The context has a src/ directory (its packages are importable from there).
    src_layout: bool = False
    # Where each setting came from: "default", "pyproject", "flag" or "detected (...)".
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def factory(self) -> bool:
        """The app is `module:create_app()`: servers must call it to get the ASGI app."""
        return self.app.endswith("()")

    @property
    def dependencies(self) -> tuple[str, ...]:
        return self.deps.packages if self.deps.kind == PYPROJECT else ()

    @property
    def requirements_file(self) -> str | None:
        return self.deps.requirements if self.deps.kind == REQUIREMENTS else None


def validate_app(app: str) -> str:
    if not _APP_RE.match(app):
        raise UsageError(f"--app {app!r} is not module:attribute: pass e.g. --app myproject.main:app")
    return app


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise UsageError(f"invalid image tag {tag!r}: use lowercase name[:tag], e.g. myapp:granian")
    return tag


def _read_pyproject(context: Path) -> dict:
    path = context / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}): fix the file") from None


def _tool_settings(pyproject: dict, path: Path) -> dict:
    settings = pyproject.get("tool", {}).get("imgtool", {})
    unknown = set(settings) - _KNOWN_KEYS
    if unknown:
        raise UsageError(
            f"unknown [tool.imgtool] key(s) {', '.join(sorted(unknown))} in {path}: "
            f"use {', '.join(sorted(_KNOWN_KEYS))}"
        )
    return settings


def _app_module_exists(context: Path, app: str) -> bool:
    module_path = Path(*app.split(":")[0].split("."))
    candidates = [module_path.with_suffix(".py"), module_path / "__init__.py"]
    roots = [context, context / "src"]
    return any((root / candidate).is_file() for root in roots for candidate in candidates)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


def _string_table(settings: dict, key: str, reserved: set[str] = frozenset()) -> dict[str, str]:
    table = settings.get(key, {})
    if not isinstance(table, dict):
        raise UsageError(f'[tool.imgtool] {key} must be a table, e.g. {key} = {{ NAME = "value" }}')
    result = {}
    for name, value in table.items():
        if not _NAME_RE.match(name) or name in reserved or name.startswith("IMGTOOL_"):
            raise UsageError(f"[tool.imgtool] {key} name {name!r} is not allowed: use a NAME imgtool does not set")
        if not isinstance(value, str | int | float | bool) or any(ord(c) < 32 for c in str(value)):
            raise UsageError(f"[tool.imgtool] {key}.{name} must be a one-line string or number")
        result[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return result


def _servers(settings: dict) -> tuple[str, ...]:
    from toolkit.servers import get_server

    if "server" in settings and "servers" in settings:
        raise UsageError("[tool.imgtool] has both server and servers: keep one")
    value = settings.get("servers", settings.get("server", []))
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UsageError('[tool.imgtool] servers must be a list of names, e.g. servers = ["granian", "uvicorn"]')
    return tuple(get_server(name).name for name in dict.fromkeys(names))


def _workers(settings: dict) -> int | None:
    workers = settings.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise UsageError(f"[tool.imgtool] workers = {workers!r} is not a positive number: e.g. workers = 2")
    return workers


def _apt_packages(settings: dict) -> tuple[str, ...]:
    packages = settings.get("apt-packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and _APT_RE.match(p) for p in packages):
        raise UsageError(
            f'[tool.imgtool] apt-packages = {packages!r} is not a list of Debian package names: e.g. ["libpq5"]'
        )
    return tuple(dict.fromkeys(packages))


def _exclude(settings: dict) -> tuple[str, ...]:
    names = settings.get("exclude", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _PACKAGE_RE.match(n) for n in names):
        raise UsageError(f'[tool.imgtool] exclude = {names!r} is not a list of package names: e.g. ["faker"]')
    return tuple(dict.fromkeys(names))


def load_config(
    context: Path | None = None,
    app: str | None = None,
    python: str | None = None,
    base: str | None = None,
    health_path: str | None = None,
    port: int | None = None,
    runtime: str | None = None,
) -> Config:
    context = (context or BUNDLED_APP_CONTEXT).expanduser()
    if not context.is_dir():
        raise UsageError(f"build context {context} is not a directory: pass an existing --context DIR")
    context = context.resolve()
    pyproject_path = context / "pyproject.toml"
    pyproject = _read_pyproject(context)
    settings = _tool_settings(pyproject, pyproject_path)

    flags = {"app": app, "python": python, "base": base, "health-path": health_path, "port": port, "runtime": runtime}
    origins = {
        key: "flag" if flags.get(key) is not None else "pyproject" if key in settings else "default"
        for key in sorted(_KNOWN_KEYS - {"server"})
    }
    if "server" in settings:
        origins["servers"] = "pyproject"

    app = app or settings.get("app")
    if not app:
        found = detect_app(context)
        app = found.ref
        origins["app"] = f"detected ({found.why} in {found.module})"
    validate_app(app)
    if not _app_module_exists(context, app):
        module = app.split(":")[0]
        raise UsageError(f"module {module!r} of --app {app} is not in context {context}: fix --app or --context")

    python = str(python or settings.get("python", DEFAULT_PYTHON))
    if not _PYTHON_RE.match(python):
        raise UsageError(f"python version {python!r} is not X.Y: pass e.g. --python 3.12")

    port = port if port is not None else settings.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"port {port!r} is not a TCP port: use a number from 1 to 65535")

    health_path = health_path or settings.get("health-path", DEFAULT_HEALTH_PATH)
    if not isinstance(health_path, str) or not health_path.startswith("/"):
        raise UsageError(f"health path {health_path!r} must start with '/': e.g. /health")

    routes = settings.get("routes", "generic")
    if routes not in ROUTE_PROFILES:
        raise UsageError(f"[tool.imgtool] routes = {routes!r} is not one of {', '.join(ROUTE_PROFILES)}")

    runtime = runtime or settings.get("runtime", DEFAULT_RUNTIME)
    if runtime not in RUNTIMES:
        raise UsageError(f'runtime {runtime!r} is not one of {", ".join(RUNTIMES)}: e.g. runtime = "debian"')

    deps = dependency_source(context, pyproject)
    origins["dependencies"] = f"detected ({deps.summary})"
    project = pyproject.get("project", {})
    if "name" not in settings and project.get("name"):
        origins["name"] = "pyproject ([project] name)"

    return Config(
        context=context,
        app=app,
        app_name=_slug(settings.get("name") or project.get("name") or context.name),
        deps=deps,
        python=python,
        base=base or settings.get("base"),
        health_path=health_path,
        port=port,
        routes=routes,
        servers=_servers(settings),
        workers=_workers(settings),
        apt_packages=_apt_packages(settings),
        exclude=_exclude(settings),
        runtime=runtime,
        env=_string_table(settings, "env", _RESERVED_ENV),
        build_args=_string_table(settings, "build-args"),
        src_layout=(context / "src").is_dir(),
        origins=origins,
    )


def describe_config(config: Config, servers: tuple[str, ...], servers_origin: str) -> list[tuple[str, object, str]]:
    """(setting, value, origin) rows for `imgtool config`: the merged result and where each value came from."""
    origins = {**config.origins, "dependencies": "detected"}
    values: dict[str, object] = {
        "app": config.app,
        "servers": list(servers),
        "python": config.python,
        "base": config.base or f"python:{config.python}-slim (else the offline base)",
        "health-path": config.health_path,
        "port": config.port,
        "workers": config.workers if config.workers is not None else "one per CPU (server default)",
        "apt-packages": list(config.apt_packages),
        "exclude": list(config.exclude),
        "runtime": config.runtime,
        "env": config.env,
        "build-args": config.build_args,
        "routes": config.routes,
        "name": config.app_name,
        "dependencies": config.deps.summary,
    }
    return [
        (key, value, servers_origin if key == "servers" else origins.get(key, "default"))
        for key, value in values.items()
    ]
