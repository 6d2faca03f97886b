"""Resolve every build setting once: defaults < `[tool.imgtool]` in the context's pyproject < flags."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import IMAGES_DIR, tooltable, validate
from toolkit.asgiapp import INTERFACES, Django, detect_app, detect_django, interface_of
from toolkit.detect import (
    DependencyKind,
    DependencySource,
    Workspace,
    dependency_source,
    find_workspace,
    is_project,
    read_toml,
)
from toolkit.errors import UsageError
from toolkit.indexes import IndexConfig, index_config
from toolkit.pythons import PythonRequirement, pick_python, python_requirement
from toolkit.selection import Selection
from toolkit.tooltable import DEFAULT_RUNTIME, Runtime

BUNDLED_APP_CONTEXT = IMAGES_DIR / "app"
DEFAULT_PYTHON = "3.11"
DEFAULT_PORT = 8000
# No health path configured: "healthy" means the server answers HTTP at / with a status below 500.
# A configured path must answer 2xx. Either way the image reads HEALTH_PATH at run time.
DEFAULT_HEALTH_PATH: str | None = None
NO_PROJECT_FIX = "cd into your project, pass --context DIR, or --demo for imgtool's bundled app"

# module:attr, or module:factory() for an app factory (called with no arguments at start-up).
# Set by imgtool itself (port, health-path, workers and the image layout own them).
_RESERVED_ENV = {"PATH", "PYTHONPATH", "PORT", "HEALTH_PATH", "WEB_CONCURRENCY"}
_KNOWN_KEYS = {
    "app",
    "interface",
    "context",
    "check-env",
    "python",
    "base",
    "health-path",
    "ws-path",
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
    # Private package indexes (toolkit/indexes.py); credentials only ever from the environment.
    "index-url",
    "extra-index-url",
    # What beyond the main dependencies is installed (toolkit/selection.py), and requirements files by name.
    "extras",
    "groups",
    "requirements",
}
# "reference": the app serves the bundled app's routes (/info, /ws, /stream, /slow), so the
# smoke suite can check every protocol; "generic": only the health path is known.
ROUTE_PROFILES = ("generic", "reference")


@dataclass(frozen=True)
class Config:
    # What BuildKit gets: the project directory, or the root of the uv workspace it belongs to.
    context: Path
    app: str
    app_name: str
    deps: DependencySource
    python: str
    base: str | None
    # None: no health route configured (any answer below 500 at / is healthy).
    health_path: str | None
    port: int
    # "asgi" or "wsgi": how the servers call the app (toolkit/servers.py: ServerSpec.serving).
    interface: str = "asgi"
    routes: str = "generic"
    # A WebSocket route the smoke suite opens (the reference app's is /ws); None: no ws check.
    ws_path: str | None = None
    # Servers to build when no --server/--all is given (empty: the CLI's default).
    servers: tuple[str, ...] = ()
    # Default worker count baked into the image (WEB_CONCURRENCY still wins at run time); None: per CPU.
    workers: int | None = None
    apt_packages: tuple[str, ...] = ()
    # Distributions the dependency resolution leaves out (never installed), e.g. Litestar's faker
    # and pygments, which only its test factories and CLI use; the build's import check and the
    # smoke suite prove the app runs without them.
    exclude: tuple[str, ...] = ()
    runtime: Runtime = DEFAULT_RUNTIME
    env: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    # Package indexes the build's uv uses besides (or instead of) PyPI: [tool.imgtool] and [[tool.uv.index]].
    indexes: IndexConfig = field(default_factory=IndexConfig)
    # The context has a src/ directory (its packages are importable from there).
    src_layout: bool = False
    # Where each setting came from: "default", "pyproject", "flag" or "detected (...)".
    origins: dict[str, str] = field(default_factory=dict)
    # The project's own directory (== context unless it is a uv workspace member).
    project: Path | None = None
    workspace: Workspace | None = None
    # What the project says about its Python (.python-version, requires-python, ...), if anything.
    python_requirement: PythonRequirement | None = None
    # Environment for the build-time import check (and collectstatic) only: a BuildKit secret, never a layer.
    check_env: dict[str, str] = field(default_factory=dict)
    django: Django | None = None
    # [tool.imgtool] extras, groups and requirements: what beyond the main dependencies is installed.
    selection: Selection = field(default_factory=Selection)
    # The bundled reference app, chosen with --demo.
    demo: bool = False

    @property
    def factory(self) -> bool:
        """The app is `module:create_app()`: servers must call it to get the ASGI app."""
        return self.app.endswith("()")

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Requirement strings installed inline: `[project] dependencies` (and extras), dependency groups."""
        return (*self.deps.packages, *self.deps.group_packages)

    @property
    def project_dir(self) -> Path:
        """The project's own directory: where its pyproject.toml, imgtool.lock and .dockerignore live."""
        return self.project or self.context

    @property
    def project_path(self) -> str:
        """The project's directory inside the build context, POSIX; "." when they are the same."""
        if self.project is None or self.project == self.context:
            return "."
        return self.project.relative_to(self.context).as_posix()


def _read_pyproject(context: Path) -> dict:
    return read_toml(context / "pyproject.toml")


def _did_you_mean(key: str) -> str | None:
    if key.replace("_", "-") in _KNOWN_KEYS:
        return key.replace("_", "-")
    close = difflib.get_close_matches(key.replace("_", "-"), sorted(_KNOWN_KEYS), n=1)
    return close[0] if close else None


def _tool_settings(pyproject: dict, path: Path) -> dict:
    settings = pyproject.get("tool", {}).get("imgtool", {})
    unknown = sorted(set(settings) - _KNOWN_KEYS)
    if unknown:
        hints = [
            f"{key!r} (did you mean `{guess}`?)" if (guess := _did_you_mean(key)) else repr(key) for key in unknown
        ]
        raise UsageError(
            f"unknown [tool.imgtool] key(s) {', '.join(hints)} in {path}: keys are {', '.join(sorted(_KNOWN_KEYS))}"
        )
    return settings


def _app_module_exists(context: Path, app: str) -> bool:  # context: the project directory
    module_path = Path(*app.split(":")[0].split("."))
    candidates = [module_path.with_suffix(".py"), module_path / "__init__.py"]
    roots = [context, context / "src"]
    return any((root / candidate).is_file() for root in roots for candidate in candidates)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


def _resolve_project(context: Path | None, demo: bool, cwd: Path | None) -> tuple[Path, dict, Path]:
    """(project directory, settings from a directory that redirected to it, that directory's pyproject path).

    The project is `--context`, else the current directory; `--demo` is the bundled app. A pyproject whose
    [tool.imgtool] names `context = "subdir"` sends imgtool to that subdirectory (one hop).
    """
    if demo and context is not None:
        raise UsageError("--demo and --context exclude each other: --demo builds imgtool's bundled app")
    start = BUNDLED_APP_CONTEXT if demo else (context or cwd or Path.cwd())
    start = start.expanduser()
    if not start.is_dir():
        raise UsageError(f"build context {start} is not a directory: pass an existing --context DIR")
    start = start.resolve()
    path = start / "pyproject.toml"
    settings = _tool_settings(_read_pyproject(start), path)
    redirect = settings.get("context")
    if redirect is None:
        return start, {}, path
    if not isinstance(redirect, str) or not (start / redirect).is_dir():
        raise UsageError(f"[tool.imgtool] context = {redirect!r} in {path} is not a directory under {start}")
    project = (start / redirect).resolve()
    if not project.is_relative_to(start):
        raise UsageError(f"[tool.imgtool] context = {redirect!r} in {path} leaves {start}: name a subdirectory")
    return project, {k: v for k, v in settings.items() if k != "context"}, path


def _python(flag: str | None, setting: object, requirement: PythonRequirement | None, origins: dict[str, str]) -> str:
    """--python, else [tool.imgtool] python, else what the project asks for, else the default; checked against
    the project's requirement so a mismatch is an error naming both versions."""
    chosen = flag or (str(setting) if setting is not None else None)
    if chosen is not None:
        validate.python_version(chosen)
    if requirement is None:
        return chosen or DEFAULT_PYTHON
    if chosen is not None:
        if not requirement.allows(chosen):
            where = "--python" if flag else "[tool.imgtool] python"
            raise UsageError(
                f"{where} {chosen} does not satisfy the project's {requirement.describe()} ({requirement.where}): "
                "change one of them"
            )
        return chosen
    picked = pick_python(requirement, DEFAULT_PYTHON)
    if picked is None or not validate.PYTHON_RE.match(picked):
        raise UsageError(
            f"the project asks for {requirement.describe()} ({requirement.where}) and no Python 3.x release "
            "satisfies it: fix the requirement"
        )
    origins["python"] = f"detected ({requirement.describe()}, {requirement.where})"
    return picked


def load_config(
    context: Path | None = None,
    app: str | None = None,
    python: str | None = None,
    base: str | None = None,
    health_path: str | None = None,
    port: int | None = None,
    demo: bool = False,
    cwd: Path | None = None,
    interface: str | None = None,
) -> Config:
    """The merged settings for the project in `context`, else in `cwd` (default: the current directory)."""
    project, inherited, redirect_path = _resolve_project(context, demo, cwd)
    if not is_project(project) and not (app and validate.APP_RE.match(app) and _app_module_exists(project, app)):
        raise UsageError(
            f"{project} holds no Python project (no pyproject.toml, requirements.txt, Pipfile, manage.py, "
            f"setup.py or ASGI module): {NO_PROJECT_FIX}"
        )
    pyproject_path = project / "pyproject.toml"
    pyproject = _read_pyproject(project)
    # The directory that named this project with `context = ...` has the last word.
    settings = {**_tool_settings(pyproject, pyproject_path), **inherited}
    settings.pop("context", None)
    workspace = find_workspace(project)
    build_context = workspace.root if workspace is not None else project

    flags = {
        "app": app,
        "python": python,
        "base": base,
        "health-path": health_path,
        "port": port,
        "interface": interface,
    }
    origins = {
        key: "flag" if flags.get(key) is not None else "pyproject" if key in settings else "default"
        for key in sorted(_KNOWN_KEYS - {"server", "context"})
    }
    if "server" in settings:
        origins["servers"] = "pyproject"
    origins["context"] = "flag (--demo)" if demo else "flag" if context is not None else "current directory"
    if inherited:
        origins["context"] = f"pyproject ({redirect_path})"
    if workspace is not None:
        origins["context"] += f"; detected (uv workspace root of {workspace.member})"

    app = app or settings.get("app")
    detected_interface = None
    if not app:
        found = detect_app(project)
        app = found.ref
        detected_interface = found.interface
        origins["app"] = f"detected ({found.why} in {found.module})"
    validate.app_ref(app)
    if not _app_module_exists(project, app):
        module = app.split(":")[0]
        raise UsageError(f"module {module!r} of --app {app} is not in {project}: fix --app or --context")
    interface = _interface(interface, settings.get("interface"), detected_interface, project, app, origins)

    requirement = python_requirement(project, build_context)
    python = _python(python, settings.get("python"), requirement, origins)

    port = port if port is not None else settings.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"port {port!r} is not a TCP port: use a number from 1 to 65535")

    health_path = _route(health_path or settings.get("health-path", DEFAULT_HEALTH_PATH), "health path", "/health")
    ws_path = _route(settings.get("ws-path"), "[tool.imgtool] ws-path", "/ws")

    routes = settings.get("routes", "generic")
    if routes not in ROUTE_PROFILES:
        raise UsageError(f"[tool.imgtool] routes = {routes!r} is not one of {', '.join(ROUTE_PROFILES)}")

    selection = Selection(
        extras=tooltable.names(settings, "extras", "postgres"),
        groups=tooltable.names(settings, "groups", "prod"),
        requirements=tooltable.requirement_files(settings),
    )
    deps = dependency_source(project, pyproject, workspace, selection)
    indexes = index_config(settings, pyproject)
    if indexes:
        origins["indexes"] = "pyproject"
    origins["dependencies"] = f"detected ({deps.summary})"
    if deps.kind == DependencyKind.LOCKFILE and deps.lock_project and tuple(map(int, python.split("."))) < (3, 11):
        raise UsageError(
            f"{deps.lock} is read in the build with Python's tomllib (3.11+) and this build uses Python {python}: "
            "build with Python 3.11 or newer"
        )
    django = detect_django(project, app)
    if django is not None:
        origins["django"] = f"detected (DJANGO_SETTINGS_MODULE={django.settings})"
    project_table = pyproject.get("project", {})
    if "name" not in settings and project_table.get("name"):
        origins["name"] = "pyproject ([project] name)"

    return Config(
        context=build_context,
        app=app,
        app_name=_slug(settings.get("name") or project_table.get("name") or project.name),
        deps=deps,
        python=python,
        base=base or settings.get("base"),
        health_path=health_path,
        port=port,
        interface=interface,
        routes=routes,
        ws_path=ws_path,
        servers=tooltable.servers(settings),
        workers=tooltable.workers(settings),
        apt_packages=tooltable.apt_packages(settings),
        exclude=tooltable.exclude(settings),
        runtime=tooltable.runtime(settings, origins),
        env=tooltable.string_table(settings, "env", _RESERVED_ENV),
        build_args=tooltable.string_table(settings, "build-args"),
        indexes=indexes,
        src_layout=(project / "src").is_dir(),
        origins=origins,
        project=project,
        workspace=workspace,
        python_requirement=requirement,
        check_env=tooltable.string_table(settings, "check-env"),
        django=django,
        selection=selection,
        demo=demo,
    )


def _interface(
    flag: str | None, setting: object, detected: str | None, project: Path, app: str, origins: dict[str, str]
) -> str:
    """--interface, else [tool.imgtool] interface, else what discovery read, else what the app's module shows."""
    chosen = flag or setting
    if chosen is not None:
        if chosen not in INTERFACES:
            where = "--interface" if flag else "[tool.imgtool] interface"
            raise UsageError(f'{where} {chosen!r} is not one of {", ".join(INTERFACES)}: e.g. interface = "wsgi"')
        return str(chosen)
    read = detected or interface_of(project, app)
    if read is None:
        origins["interface"] = "default (the app's files do not say; the build's import check confirms it)"
        return "asgi"
    origins["interface"] = f"detected (what {app.removesuffix('()')} is made by)"
    return read


def _route(value: object, name: str, example: str) -> str | None:
    """A route setting: unset, or a path from the root."""
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise UsageError(f"{name} {value!r} must start with '/': e.g. {example}")
    return value


def describe_config(config: Config, servers: tuple[str, ...], servers_origin: str) -> list[tuple[str, object, str]]:
    """(setting, value, origin) rows for `imgtool config`: the merged result and where each value came from."""
    origins = {**config.origins, "dependencies": "detected"}
    origins.setdefault("django", "detected")
    values: dict[str, object] = {
        "app": config.app,
        "interface": config.interface,
        "servers": list(servers),
        "python": config.python,
        "base": config.base or f"python:{config.python}-slim (else the offline base)",
        "health-path": config.health_path or "none: any answer below 500 at / is healthy",
        "ws-path": config.ws_path
        or (
            "/ws (the reference routes)"
            if config.routes == "reference"
            else "found in the app's route table at test time"
        ),
        "port": config.port,
        "workers": config.workers if config.workers is not None else "one per CPU (server default)",
        "apt-packages": list(config.apt_packages),
        "exclude": list(config.exclude),
        "extras": list(config.selection.extras),
        "groups": list(config.selection.groups),
        "requirements": list(config.selection.requirements) or "detected",
        "runtime": config.runtime,
        "env": config.env,
        "build-args": config.build_args,
        "check-env": sorted(config.check_env),
        "routes": config.routes,
        "indexes": [f"{index.name}={index.url}" for index in config.indexes.indexes],
        "name": config.app_name,
        "dependencies": config.deps.summary,
        "context": str(config.context)
        + (f" (uv workspace; the project is {config.project_path})" if config.workspace else ""),
        "django": f"settings {config.django.settings}, collectstatic "
        + ("in the build" if config.django.static_root else "skipped (no STATIC_ROOT)")
        if config.django
        else "no",
    }
    return [
        (key, value, servers_origin if key == "servers" else origins.get(key, "default"))
        for key, value in values.items()
    ]
