"""The import check's key: the app's Python files as its import sees them, so a code-only rebuild need not re-import.

The build-time import check (images/assets/import_check.py) is a side stage the image copies a report from;
BuildKit reruns it only when one of its inputs changes. Its Python files come from the stage `import-key`
(the app itself, by default). `imgtool build` replaces that stage (`--build-context import-key=DIR`) with the
app's *import-time skeleton*: every file as it is, except the bodies of functions that did not run during the
last full import check, which become a one-line stub. An edit inside such a body (a route handler, most
edits) leaves the skeleton, so every input of the check, unchanged: BuildKit reuses its result and the
rebuild is the app's own layer only.

Sound by construction: the check marks stubs with a local variable and fails "stale" (exit 3) if any stub
ran, in which case imgtool builds once more with the app itself and records the new trace. When no stub runs,
the import executed only real code, so the real app imports the same way. Anything the check cannot vouch
for (no trace yet, a file that does not parse here, Python before 3.11) simply builds without the override.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
from pathlib import Path

from toolkit.assets import CACHE_DIR

CONTEXT_NAME = "import-key"
# Must equal STUB_MARKER in images/assets/import_check.py (a unit test keeps them the same).
STUB_MARKER = "_imgtool_stub_"
STALE_MARKER = "imgtool-import-stale: "
REPORT_NAME = "import-check.json"
STUB = f'{STUB_MARKER} = None; raise RuntimeError("imgtool: body stubbed for the build-time import check")'
KEYS_DIR = CACHE_DIR / "import-keys"


def _slot(context: Path, app: str) -> Path:
    digest = hashlib.sha256(f"{context.resolve()}\0{app}".encode()).hexdigest()[:16]
    return KEYS_DIR / digest


def python_files(context: Path, project_path: str = ".") -> list[str]:
    """The .py files `COPY <project_path> /app` copies (the context's .dockerignore applied), relative to
    `project_path`, sorted."""
    from docker.utils.build import exclude_paths

    ignore = context / ".dockerignore"
    patterns = []
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and line.strip()[0] != "#"]
    included = exclude_paths(str(context), patterns)
    prefix = "" if project_path in (".", "") else project_path.strip("/") + "/"
    return sorted(
        p[len(prefix) :]
        for p in included
        if p.startswith(prefix) and p.endswith(".py") and (context / p).is_file() and not (context / p).is_symlink()
    )


def _is_generator(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a yield belongs to this function's own scope (a stub must stay a generator: frameworks check)."""
    pending = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False


def _stubbed_spans(tree: ast.Module, keep: set[str]) -> list[tuple[ast.AST, ast.stmt, ast.stmt, bool]]:
    """(function, first, last, generator) statement spans of the outermost function bodies to stub, in source order."""
    spans = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                body = child.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    body = body[1:]  # the docstring stays: frameworks read it at import
                # A function that ran at import is kept whole, nested functions included; one that did not is
                # stubbed whole (its nested functions cannot have run either).
                if qualname not in keep and body:
                    spans.append((child, body[0], body[-1], _is_generator(child)))
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                visit(child, prefix)

    visit(tree, "")
    return spans


def skeleton(source: bytes, keep: set[str]) -> bytes | None:
    """The module's text with the bodies of functions not in `keep` (qualified names) replaced by a stub.

    Text outside those bodies is kept byte for byte, so the result depends on nothing inside them. None when
    the file does not parse here.
    """
    try:
        source.decode("utf-8")  # ast's column offsets count UTF-8 bytes
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    result = source
    for function, first, last, generator in reversed(_stubbed_spans(tree, keep)):
        start = offsets[first.lineno - 1] + first.col_offset
        end = offsets[last.end_lineno - 1] + last.end_col_offset
        # The body's trailing comments go with it: the rest of its last line, and the comment lines after it
        # that are indented under the function (blank lines between them too, not after the last).
        if lines[last.end_lineno - 1][last.end_col_offset :].strip().startswith(b"#"):
            end = offsets[last.end_lineno] - len(lines[last.end_lineno - 1]) + len(lines[last.end_lineno - 1].rstrip())
        index = last.end_lineno
        while index < len(lines):
            stripped = lines[index].strip()
            indent = len(lines[index]) - len(lines[index].lstrip())
            if stripped.startswith(b"#") and indent > function.col_offset:
                end = offsets[index] + len(lines[index].rstrip())
            elif stripped:
                break
            index += 1
        stub = STUB + ("; yield" if generator else "")
        result = result[:start] + stub.encode() + result[end:]
    return result


def _read_trace(slot: Path) -> set[tuple[str, str]] | None:
    try:
        report = json.loads((slot / "trace.json").read_text())
    except (OSError, ValueError):
        return None
    if not report.get("qualnames"):
        return None
    return {(path, name) for path, name in report.get("executed", [])}


def prepare(context: Path, app: str, app_dir: str, project_path: str = ".") -> Path | None:
    """The directory for `--build-context import-key=DIR` (DIR/<app_dir>/... = the skeleton), or None.

    None when no full check has run for this app yet, or a file does not parse here: the build then imports
    the app itself.
    """
    slot = _slot(context, app)
    executed = _read_trace(slot)
    if executed is None:
        return None
    tree = slot / "tree"
    root = tree / app_dir.strip("/")
    wanted: dict[str, bytes] = {}
    for relative in python_files(context, project_path):
        source = (context / project_path / relative).read_bytes()
        keep = {name for file, name in executed if file == relative}
        text = skeleton(source, keep)
        if text is None:
            return None
        wanted[relative] = text
    root.mkdir(parents=True, exist_ok=True)
    # Only what changed is rewritten, and stale files go: the directory is BuildKit's context, synced by content.
    for directory, _, files in os.walk(root):
        for name in files:
            relative = os.path.relpath(os.path.join(directory, name), root)
            if relative not in wanted:
                os.remove(os.path.join(directory, name))
    for relative, text in wanted.items():
        target = root / relative
        if target.is_file() and target.read_bytes() == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        staged.write_bytes(text)
        staged.replace(target)
    return tree


def remember(context: Path, app: str, report: dict) -> None:
    """Keep a full check's report (what ran at import) for the next build's skeleton."""
    slot = _slot(context, app)
    slot.mkdir(parents=True, exist_ok=True)
    staged = slot / "trace.json.tmp"
    staged.write_text(json.dumps(report))
    staged.replace(slot / "trace.json")


def forget(context: Path, app: str) -> None:
    shutil.rmtree(_slot(context, app), ignore_errors=True)
