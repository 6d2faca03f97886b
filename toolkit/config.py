"""Resolve every build setting once: defaults < `[tool.imgtool]` in the context's pyproject < flags."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from toolkit import IMAGES_DIR
from toolkit.errors import UsageError

BUNDLED_APP_CONTEXT = IMAGES_DIR / "app"
DEFAULT_PYTHON = "3.11"
DEFAULT_PORT = 8000
DEFAULT_HEALTH_PATH = "/health"

_APP_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG_RE = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?$")
_KNOWN_KEYS = {"app", "python", "base", "health-path", "port", "name", "routes"}
# "reference": the app serves the bundled app's routes (/info, /ws, /stream, /slow), so the
# smoke suite can check every protocol; "generic": only the health path is known.
ROUTE_PROFILES = ("generic", "reference")


@dataclass(frozen=True)
class Config:
    context: Path
    app: str
    app_name: str
    dependencies: tuple[str, ...]
    requirements_file: str | None
    python: str
    base: str | None
    health_path: str
    port: int
    routes: str = "generic"


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


def load_config(
    context: Path | None = None,
    app: str | None = None,
    python: str | None = None,
    base: str | None = None,
    health_path: str | None = None,
    port: int | None = None,
) -> Config:
    context = (context or BUNDLED_APP_CONTEXT).expanduser()
    if not context.is_dir():
        raise UsageError(f"build context {context} is not a directory: pass an existing --context DIR")
    context = context.resolve()
    pyproject_path = context / "pyproject.toml"
    pyproject = _read_pyproject(context)
    settings = _tool_settings(pyproject, pyproject_path)

    app = app or settings.get("app")
    if not app:
        raise UsageError(f"no ASGI app given for {context}: pass --app module:attr or set [tool.imgtool] app")
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

    project = pyproject.get("project", {})
    requirements_file = "requirements.txt" if (context / "requirements.txt").is_file() else None
    dependencies = () if requirements_file else tuple(project.get("dependencies", ()))

    return Config(
        context=context,
        app=app,
        app_name=_slug(settings.get("name") or project.get("name") or context.name),
        dependencies=dependencies,
        requirements_file=requirements_file,
        python=python,
        base=base or settings.get("base"),
        health_path=health_path,
        port=port,
        routes=routes,
    )
