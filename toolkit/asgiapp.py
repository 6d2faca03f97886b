"""Finding the ASGI app in a project (by reading its modules, never importing them) and Django's settings.

An ordered chain: a framework's app instance, then an `asgi` module's application, then an app factory;
in preferred modules first. Django projects name their settings module and STATIC_ROOT in files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UsageError

# ---- Django ----


@dataclass(frozen=True)
class Django:
    """A Django project: its settings module and whether collectstatic has somewhere to write."""

    settings: str  # DJANGO_SETTINGS_MODULE, e.g. "mysite.settings"
    static_root: bool  # STATIC_ROOT is set in the settings (collectstatic runs in the build)
    manage: bool  # manage.py at the project root


def _settings_default(path: Path) -> str | None:
    """The value of `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")` in a module."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
            and len(node.args) == 2
            and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
            and node.args[0].value == "DJANGO_SETTINGS_MODULE"
        ):
            return node.args[1].value
    return None


def _module_file(root: Path, module: str) -> Path | None:
    base = Path(*module.split("."))
    for directory in (root, root / "src"):
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if (directory / candidate).is_file():
                return directory / candidate
    return None


def _sets_static_root(path: Path, root: Path, depth: int = 0) -> bool:
    """STATIC_ROOT assigned (to something other than None) in the settings, or in what they star-import."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return False
    for node in tree.body:
        assigns = isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "STATIC_ROOT" for target in node.targets
        )
        if assigns and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        if isinstance(node, ast.ImportFrom) and depth < 3 and any(alias.name == "*" for alias in node.names):
            package = path.parent
            name = (node.module or "").split(".")
            target = package.joinpath(*name).with_suffix(".py") if node.level else _module_file(root, node.module or "")
            if target is not None and target.is_file() and _sets_static_root(target, root, depth + 1):
                return True
    return False


def detect_django(project: Path, app: str) -> Django | None:
    """Django when the app's module or manage.py names DJANGO_SETTINGS_MODULE (read, never imported)."""
    app_file = _module_file(project, app.split(":", 1)[0])
    settings = _settings_default(app_file) if app_file is not None else None
    manage = (project / "manage.py").is_file()
    if settings is None and manage:
        settings = _settings_default(project / "manage.py")
    if settings is None:
        return None
    settings_file = _module_file(project, settings)
    static_root = settings_file is not None and _sets_static_root(settings_file, project)
    return Django(settings, static_root, manage)


# ---- the ASGI app ----

_FRAMEWORKS = {"Litestar", "FastAPI", "Starlette", "Quart"}
# Django's ASGI handler and Channels' router: `application = get_asgi_application()` in <project>/asgi.py.
_DJANGO_APPLICATIONS = {"get_asgi_application", "ProtocolTypeRouter", "get_default_application"}
_FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")
_PREFERRED_MODULES = ("main", "app", "asgi", "server", "api")
_SKIP_DIRS = {"tests", "test", "docs", "build", "dist", "node_modules", "migrations"}
# Kind rank: a module-level framework instance is the surest sign, then a plain ASGI function, then a factory.
_KIND_RANK = {"instance": 0, "asgi": 1, "factory": 2}


@dataclass(frozen=True)
class AppCandidate:
    module: str
    attr: str
    kind: str  # "instance" | "asgi" | "factory"
    why: str

    @property
    def ref(self) -> str:
        """`module:attr`, or `module:factory()` for a factory (the call syntax imgtool uses for factories)."""
        return f"{self.module}:{self.attr}()" if self.kind == "factory" else f"{self.module}:{self.attr}"

    def rank(self) -> tuple:
        leaf = self.module.rsplit(".", 1)[-1]
        preferred = _PREFERRED_MODULES.index(leaf) if leaf in _PREFERRED_MODULES else len(_PREFERRED_MODULES)
        return (_KIND_RANK[self.kind], preferred, self.attr not in ("app", "application"), self.module.count("."))


def _modules(context: Path) -> Iterator[tuple[str, Path]]:
    """(module name, file) for top-level modules, their packages' modules, and src/ packages' modules."""
    for root in (context, context / "src"):
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*.py")):
            if root == context or path.stem != "__init__":
                yield path.stem, path
        for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
            if package.name in _SKIP_DIRS or package.name.startswith("."):
                continue
            for path in sorted(package.glob("*.py")):
                name = package.name if path.stem == "__init__" else f"{package.name}.{path.stem}"
                yield name, path


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _candidates_in(module: str, tree: ast.Module) -> Iterator[AppCandidate]:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            framework = _call_name(node.value) if node.value is not None else None
            if framework in _FRAMEWORKS or framework in _DJANGO_APPLICATIONS:
                for target in targets:
                    if isinstance(target, ast.Name):
                        yield AppCandidate(module, target.id, "instance", f"{target.id} = {framework}(...)")
        elif isinstance(node, ast.AsyncFunctionDef):
            if [arg.arg for arg in node.args.args] == ["scope", "receive", "send"]:
                yield AppCandidate(module, node.name, "asgi", f"async def {node.name}(scope, receive, send)")
        elif isinstance(node, ast.FunctionDef) and node.name in _FACTORY_NAMES:
            required = len(node.args.args) - len(node.args.defaults)
            if required == 0:
                yield AppCandidate(module, node.name, "factory", f"factory {node.name}()")


def find_apps(context: Path) -> list[AppCandidate]:
    """Every ASGI app candidate in the project, best first."""
    found: list[AppCandidate] = []
    for module, path in _modules(context):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
        except SyntaxError:
            continue
        found.extend(_candidates_in(module, tree))
    return sorted(found, key=AppCandidate.rank)


def detect_app(context: Path) -> AppCandidate:
    """The one app to serve, or a UsageError that says how to pick one."""
    found = find_apps(context)
    if not found:
        raise UsageError(
            f"no ASGI app given for {context} and none found (looked for app = Litestar/FastAPI/Starlette/Quart(...), "
            "Django's application = get_asgi_application(), create_app() and async def app(scope, receive, send)): "
            "pass --app module:attr or set [tool.imgtool] app"
        )
    best = found[0]
    ties = [c.ref for c in found if c.rank() == best.rank()]
    if len(ties) > 1:
        raise UsageError(
            f"several ASGI apps found in {context} ({', '.join(ties)}): pass --app or set [tool.imgtool] app"
        )
    return best
