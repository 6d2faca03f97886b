"""Finding the app in a project (by reading its files, never importing them) and Django's settings.

In this order: what the project itself says (toolkit/appwords.py: a Procfile, [tool.fastapi], a Dockerfile or
compose command, a run call under __main__, the README's run line); then the objects of known frameworks
(toolkit/frameworks.py, a table); then any module-level callable of the ASGI or WSGI shape. Each candidate
carries the interface it speaks where the files tell; the import check in the image confirms it.
Django projects name their settings module and STATIC_ROOT in files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UsageError
from toolkit.frameworks import FRAMEWORKS, Framework, lookup

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


# ---- the app: what the project says, else a known framework's object, else any ASGI/WSGI-shaped callable ----

# A factory by its conventional name, when nothing shows what it returns.
_FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")
_PREFERRED_MODULES = ("main", "app", "asgi", "wsgi", "server", "api")
_SKIP_DIRS = {"tests", "test", "docs", "build", "dist", "node_modules", "migrations"}
# instance: the object is the app; method: the app is what a method of it returns (called at start-up);
# shape: an ASGI/WSGI-shaped function or instance; factory: a function returning a framework's app; named: a
# function called create_app() or so, returning who knows what.
_KIND_RANK = {"instance": 0, "method": 1, "shape": 1, "factory": 2, "named": 3}
INTERFACES = ("asgi", "wsgi")


@dataclass(frozen=True)
class AppCandidate:
    module: str
    attr: str  # may be dotted: `app.server`, `mcp.streamable_http_app`
    kind: str
    why: str
    # "asgi" | "wsgi"; None: nothing read says (the import check in the image decides).
    interface: str | None = None
    # The framework row's rank (1: a fallback such as Django's WSGI handler beside its ASGI one).
    row_rank: int = 0
    # Refs (`module:attr`) of objects this one wraps: they are parts of this app, not apps of their own.
    consumes: frozenset[str] = frozenset()

    @property
    def factory(self) -> bool:
        return self.kind in ("factory", "method", "named")

    @property
    def ref(self) -> str:
        """`module:attr`, or `module:factory()` for a factory (the call syntax imgtool uses for factories)."""
        return f"{self.module}:{self.attr}()" if self.factory else f"{self.module}:{self.attr}"

    @property
    def base(self) -> str:
        """The module-level name the app comes from (`app` for `app.server`)."""
        return f"{self.module}:{self.attr.split('.', 1)[0]}"

    def rank(self) -> tuple:
        leaf = self.module.rsplit(".", 1)[-1]
        preferred = _PREFERRED_MODULES.index(leaf) if leaf in _PREFERRED_MODULES else len(_PREFERRED_MODULES)
        return (
            self.row_rank,
            _KIND_RANK[self.kind],
            preferred,
            self.attr not in ("app", "application"),
            self.module.count("."),
        )


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


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _shape(args: ast.arguments, method: bool = False) -> str | None:
    """ "asgi" for (scope, receive, send), "wsgi" for (environ, start_response): the first name is the sign."""
    names = [a.arg for a in [*args.posonlyargs, *args.args]][1 if method else 0 :]
    if len(names) == 3 and names[0] == "scope":
        return "asgi"
    if len(names) == 2 and names[0] in ("environ", "env") and names[1] == "start_response":
        return "wsgi"
    return None


class _Module:
    """One module read for apps: its imports resolved, then each top-level statement matched against the table."""

    def __init__(self, name: str, tree: ast.Module, local_tops: set[str]):
        self.name = name
        self.tree = tree
        self.local_tops = local_tops
        self.aliases: dict[str, str] = {}  # local name -> qualified name of what was imported
        self.stars: list[str] = []
        self.local_imports: dict[str, str] = {}  # local name -> `module:attr` of this project
        self.classes: dict[str, Framework | str] = {}  # local class -> the framework it extends, or its shape
        self.bound: dict[str, Framework] = {}  # module-level name -> the row whose object it holds
        self.table: list[AppCandidate] = []
        self.generic: list[AppCandidate] = []
        self._read_imports()
        self._read_body()

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.name.split(".")
        base = package[: len(package) - node.level]
        return ".".join([*base, *([node.module] if node.module else [])])

    def _read_imports(self) -> None:
        for node in self.tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".", 1)[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node)
                local = bool(node.level) or source.split(".", 1)[0] in self.local_tops
                for alias in node.names:
                    if alias.name == "*":
                        if not local:
                            self.stars.append(source)
                    elif local:
                        self.local_imports[alias.asname or alias.name] = f"{source}:{alias.name}"
                    else:
                        self.aliases[alias.asname or alias.name] = f"{source}.{alias.name}"

    def resolve(self, node: ast.expr) -> Framework | None:
        """The framework row a called (or subclassed) name is, through this module's imports."""
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if not rest and isinstance(self.classes.get(head), Framework):
            return self.classes[head]  # type: ignore[return-value]
        if head in self.aliases:
            qualified = self.aliases[head] + (f".{rest}" if rest else "")
            return None if qualified.split(".", 1)[0] in self.local_tops else lookup(qualified)
        if head in self.local_imports or head in self.classes:
            return None
        return next((row for star in self.stars if (row := lookup(f"{star}.{dotted}"))), None)

    def _ref(self, name: str) -> str:
        return self.local_imports.get(name, f"{self.name}:{name}")

    def _consumed(self, node: ast.AST) -> frozenset[str]:
        return frozenset(self._ref(name) for name in _names(node))

    def _add(self, group: list[AppCandidate], candidate: AppCandidate) -> None:
        if all(c.attr != candidate.attr for c in (*self.table, *self.generic)):
            group.append(candidate)

    def _assigned(self, target: ast.expr, value: ast.expr) -> None:
        names = [target.id] if isinstance(target, ast.Name) else []
        if isinstance(value, ast.Call):
            row = self.resolve(value.func)
            if row is not None:
                self._made(target, row, value)
                return
            holder = value.func.value if isinstance(value.func, ast.Attribute) else None
            if isinstance(holder, ast.Name) and holder.id in self.bound:
                row = self.bound[holder.id]
                if row.reach == "method" and value.func.attr == row.via:  # type: ignore[union-attr]
                    for name in names:
                        why = f"{name} = {holder.id}.{row.via}() ({row.name})"
                        self._add(self.table, self._candidate(name, "instance", why, row, value))
                return
            local = _dotted(value.func)
            shape = self.classes.get(local or "")
            if isinstance(shape, str):
                for name in names:
                    signature = "(scope, receive, send)" if shape == "asgi" else "(environ, start_response)"
                    why = f"{name} = {local}(), whose __call__ takes {signature}"
                    self._add(self.generic, AppCandidate(self.name, name, "shape", why, shape))
        elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id in self.bound:
            row = self.bound[value.value.id]
            if row.reach == "attribute" and value.attr == row.via:
                for name in names:
                    why = f"{name} = {value.value.id}.{row.via} ({row.name})"
                    self._add(self.table, self._candidate(name, "instance", why, row, value))

    def _candidate(self, attr: str, kind: str, why: str, row: Framework, value: ast.AST) -> AppCandidate:
        return AppCandidate(self.name, attr, kind, why, row.interface, row.rank, self._consumed(value))

    def _made(self, target: ast.expr, row: Framework, call: ast.Call) -> None:
        """`target = <a framework's constructor or factory>(...)`."""
        if row.reach == "first":
            if isinstance(target, ast.Tuple) and target.elts and isinstance(target.elts[0], ast.Name):
                name = target.elts[0].id
                why = f"{name}, ... = {row.symbol}(...) ({row.name})"
                self._add(self.table, self._candidate(name, "instance", why, row, call))
            return
        if not isinstance(target, ast.Name):
            return
        name = target.id
        self.bound[name] = row
        if row.reach == "itself":
            self._add(
                self.table, self._candidate(name, "instance", f"{name} = {row.symbol}(...) ({row.name})", row, call)
            )
        elif row.reach == "attribute":
            why = f"{name} = {row.symbol}(...), served as {name}.{row.via} ({row.name})"
            self._add(self.table, self._candidate(f"{name}.{row.via}", "instance", why, row, call))
        elif row.reach == "method":
            why = f"{name} = {row.symbol}(...), served as {name}.{row.via}() ({row.name})"
            self._add(self.table, self._candidate(f"{name}.{row.via}", "method", why, row, call))

    def _factory(self, node: ast.FunctionDef) -> None:
        """A function taking no arguments that returns a framework's app is a factory, whatever its name."""
        required = len(node.args.posonlyargs) + len(node.args.args) - len(node.args.defaults)
        if required:
            return
        made: dict[str, Framework] = {}
        for inner in ast.walk(node):
            if isinstance(inner, ast.Assign) and isinstance(inner.value, ast.Call):
                row = self.resolve(inner.value.func)
                if row is not None:
                    made.update({t.id: row for t in inner.targets if isinstance(t, ast.Name)})
        for inner in ast.walk(node):
            if isinstance(inner, ast.Return) and inner.value is not None:
                value = inner.value
                row = self.resolve(value.func) if isinstance(value, ast.Call) else made.get(_dotted(value) or "")
                if row is not None and row.reach == "itself":
                    why = f"{node.name}() returns {row.symbol}(...) ({row.name})"
                    self._add(self.table, AppCandidate(self.name, node.name, "factory", why, row.interface, row.rank))
                    return
        if node.name in _FACTORY_NAMES:
            self._add(self.generic, AppCandidate(self.name, node.name, "named", f"factory {node.name}()"))

    def _read_body(self) -> None:
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef):
                row = next((r for base in node.bases if (r := self.resolve(base)) and r.reach == "itself"), None)
                if row is not None:
                    self.classes[node.name] = row
                    continue
                call = next(
                    (
                        f
                        for f in node.body
                        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name == "__call__"
                    ),
                    None,
                )
                shape = _shape(call.args, method=True) if call is not None else None
                if shape is not None:
                    self.classes[node.name] = shape
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._assigned(target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                self._assigned(node.target, node.value)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                row = self.resolve(node.value.func)
                args = node.value.args
                if row is not None and row.reach == "argument" and args and isinstance(args[0], ast.Name):
                    why = f"{_dotted(node.value.func)}({args[0].id}) ({row.name})"
                    self._add(self.table, self._candidate(args[0].id, "instance", why, row, node.value))
            elif isinstance(node, ast.AsyncFunctionDef) and _shape(node.args) == "asgi":
                why = f"async def {node.name}(scope, receive, send)"
                self._add(self.generic, AppCandidate(self.name, node.name, "shape", why, "asgi"))
            elif isinstance(node, ast.FunctionDef):
                if _shape(node.args) == "wsgi":
                    why = f"def {node.name}(environ, start_response)"
                    self._add(self.generic, AppCandidate(self.name, node.name, "shape", why, "wsgi"))
                else:
                    self._factory(node)


def _local_tops(context: Path) -> set[str]:
    return {name.split(".", 1)[0] for name, _ in _modules(context)}


def _read_modules(context: Path) -> dict[str, _Module]:
    tops = _local_tops(context)
    read = {}
    for module, path in _modules(context):
        tree = _parse(path)
        if tree is not None:
            read[module] = _Module(module, tree, tops)
    return read


def _unwrapped(found: list[AppCandidate]) -> list[AppCandidate]:
    """Drop what another candidate wraps (`application = ProtocolTypeRouter({"http": django_app})`)."""
    consumed = {ref for c in found for ref in c.consumes - {c.base}}
    return [c for c in found if c.base not in consumed]


def find_apps(context: Path) -> list[AppCandidate]:
    """The app candidates read from the project's modules, best first: a known framework's objects if any, else
    ASGI/WSGI-shaped callables and factories."""
    modules = _read_modules(context).values()
    table = _unwrapped([c for m in modules for c in m.table])
    if table:
        return sorted(table, key=AppCandidate.rank)
    return sorted(_unwrapped([c for m in modules for c in m.generic]), key=AppCandidate.rank)


def interface_of(context: Path, ref: str) -> str | None:
    """What the project's files say `module:attr` speaks ("asgi" / "wsgi"), or None when they do not say."""
    module, _, attr = ref.removesuffix("()").partition(":")
    path = _module_file(context, module)
    tree = _parse(path) if path is not None else None
    if tree is None:
        return None
    read = _Module(module, tree, _local_tops(context))
    for candidate in (*read.table, *read.generic):
        if candidate.attr == attr or candidate.attr.split(".", 1)[0] == attr:
            return candidate.interface
    return None


def ambiguity(refs: list[str], where: str) -> UsageError:
    return UsageError(f"{where} names several apps ({', '.join(refs)}): pass --app with the one to serve")


def detect_app(context: Path) -> AppCandidate:
    """The one app to serve: what the project says first (toolkit.appwords), then the table, then shapes."""
    from toolkit.appwords import said

    spoken = said(context)
    if spoken is not None:
        return spoken
    found = find_apps(context)
    if not found:
        raise UsageError(
            f"no app given for {context} and none found (looked at a Procfile web: line, [tool.fastapi], a Dockerfile "
            "or compose command, uvicorn.run() under __main__, the README's run line, the objects of "
            f"{len(FRAMEWORKS)} known frameworks, and any (scope, receive, send) or (environ, start_response) "
            "callable): pass --app module:attr or set [tool.imgtool] app"
        )
    best = found[0]
    ties = [c.ref for c in found if c.rank() == best.rank()]
    if len(ties) > 1:
        raise UsageError(
            f"several apps found in {context} ({', '.join(ties)}), equally likely: pass --app with the one to serve "
            "or set [tool.imgtool] app"
        )
    return best
