"""Look at a project and decide, as data: where its dependencies come from, and which ASGI app it serves.

Each dependency detector is a small function `(context, pyproject) -> DependencySource | None`,
tried in order; the first answer wins. The template (images/Dockerfile.j2) turns the chosen
`DependencySource` into build steps by its `kind`: nothing here writes Dockerfile text.
App detection reads the project's modules with `ast` (nothing is imported or executed).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from toolkit.errors import UsageError

# Kinds the template knows how to install.
UV_LOCK = "uv.lock"
REQUIREMENTS = "requirements"
PYPROJECT = "pyproject"
NONE = "none"

# The main requirements file, in order of preference; others beside it are copied too (for `-r`).
_MAIN_REQUIREMENTS = (
    "requirements.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements/base.txt",
)
_EXPORT_HINTS = {
    "poetry.lock": "poetry export --only main --without-hashes -o requirements.txt",
    "pdm.lock": "pdm export --prod --without-hashes -o requirements.txt",
}


@dataclass(frozen=True)
class DependencySource:
    """How the builder installs the project's dependencies, below the app code."""

    kind: str
    # Context-relative files the install reads; copied into the builder before the install step.
    files: tuple[str, ...] = ()
    # The requirements file to install (kind "requirements"), one of `files`.
    requirements: str | None = None
    # Inline requirement specifiers (kind "pyproject": `[project] dependencies`).
    packages: tuple[str, ...] = ()
    # Install the project itself as a wheel (src layout with a build backend), after the dependencies.
    install_project: bool = False

    @property
    def summary(self) -> str:
        what = {
            UV_LOCK: "uv.lock (uv sync --frozen --no-dev --no-install-project)",
            REQUIREMENTS: f"{self.requirements} (uv pip install -r)",
            PYPROJECT: f"pyproject.toml [project] dependencies ({len(self.packages)})",
            NONE: "none found (only the server is installed)",
        }[self.kind]
        return what + ("; the project is installed as a wheel (src layout)" if self.install_project else "")


def _has_src_package(context: Path, pyproject: dict) -> bool:
    src = context / "src"
    return "build-system" in pyproject and src.is_dir() and any(src.glob("*/__init__.py"))


def _uv_lock(context: Path, pyproject: dict) -> DependencySource | None:
    if not (context / "uv.lock").is_file():
        return None
    if not pyproject:
        raise UsageError(f"{context / 'uv.lock'} has no pyproject.toml beside it: add the project's pyproject.toml")
    return DependencySource(UV_LOCK, files=("pyproject.toml", "uv.lock"))


def _requirements(context: Path, pyproject: dict) -> DependencySource | None:
    main = next((name for name in _MAIN_REQUIREMENTS if (context / name).is_file()), None)
    if main is None:
        return None
    # Every requirements file travels with the main one, so `-r base.txt` and `-c constraints.txt` resolve.
    found = {main, *(p.name for p in context.glob("requirements*.txt") if p.is_file())}
    found |= {f"requirements/{p.name}" for p in (context / "requirements").glob("*.txt") if p.is_file()}
    found |= {p.name for p in context.glob("constraints*.txt") if p.is_file()}
    return DependencySource(REQUIREMENTS, files=tuple(sorted(found)), requirements=main)


def _foreign_lock(context: Path, pyproject: dict) -> DependencySource | None:
    for lock, export in _EXPORT_HINTS.items():
        if (context / lock).is_file():
            raise UsageError(
                f"{lock} found but imgtool installs from uv.lock, requirements.txt or [project] dependencies: "
                f"export it with `{export}` in {context} and build again"
            )
    return None


def _pyproject(context: Path, pyproject: dict) -> DependencySource | None:
    packages = tuple(pyproject.get("project", {}).get("dependencies", ()))
    if not packages:
        return None
    return DependencySource(PYPROJECT, packages=packages)


DETECTORS: tuple[Callable[[Path, dict], DependencySource | None], ...] = (
    _uv_lock,
    _requirements,
    _foreign_lock,
    _pyproject,
)


def dependency_source(context: Path, pyproject: dict) -> DependencySource:
    """The first detector that recognises the project decides; a src-layout package is added on top."""
    found = next((source for d in DETECTORS if (source := d(context, pyproject)) is not None), None)
    source = found or DependencySource(NONE)
    if _has_src_package(context, pyproject):
        return replace(source, install_project=True)
    return source


# ---- the ASGI app ----

_FRAMEWORKS = {"Litestar", "FastAPI", "Starlette", "Quart"}
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
        return (_KIND_RANK[self.kind], preferred, self.attr != "app", self.module.count("."))


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
            if framework in _FRAMEWORKS:
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
            "create_app() and async def app(scope, receive, send)): pass --app module:attr or set [tool.imgtool] app"
        )
    best = found[0]
    ties = [c.ref for c in found if c.rank() == best.rank()]
    if len(ties) > 1:
        raise UsageError(
            f"several ASGI apps found in {context} ({', '.join(ties)}): pass --app or set [tool.imgtool] app"
        )
    return best
