"""The import check's key: the import-time skeleton, and the check's trace and stale detection (run on the host)."""

import json
import os
import subprocess
import sys

from toolkit import IMAGES_DIR, importkey

CHECK = IMAGES_DIR / "assets" / "import_check.py"

APP = b'''"""An app."""
import os

SETTINGS = {"debug": False}  # module level: always real


def configure(app):
    """Runs at import (called below)."""
    app.extra = os.environ.get("X", "x")
    return app


def handler(request):
    """Served at run time only."""
    value = compute(request)  # a comment inside the body
    return f"hello {value}"


def stream():
    for n in range(3):
        yield n


async def agen():
    yield 1


class Routes:
    def get(self):
        def inner():
            return 1

        return inner()


def compute(x): return x * 2


class App:
    extra = None

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200})


app = configure(App())
'''


def test_the_check_and_the_key_agree_on_the_stub_marker():
    namespace: dict = {}
    exec(compile(CHECK.read_text().split("\ndef ")[0], str(CHECK), "exec"), namespace)
    assert namespace["STUB_MARKER"] == importkey.STUB_MARKER


def test_skeleton_stubs_bodies_that_did_not_run_and_keeps_every_other_byte():
    text = importkey.skeleton(APP, keep={"configure"}).decode()
    assert 'def configure(app):\n    """Runs at import (called below)."""\n    app.extra = os.environ' in text
    # Stubbed bodies keep their docstring (frameworks read it at import) and say what they are.
    assert 'def handler(request):\n    """Served at run time only."""\n    _imgtool_stub_ = None; raise' in text
    assert "compute(request)" not in text and "a comment inside the body" not in text
    assert "def compute(x): _imgtool_stub_ = None; raise" in text
    # Generators stay generators (frameworks tell them apart at import).
    assert 'def stream():\n    _imgtool_stub_ = None; raise RuntimeError("' in text and '"); yield\n' in text
    namespace: dict = {}
    exec(compile(text.replace("app = configure(App())", ""), "app.py", "exec"), namespace)
    import inspect

    assert inspect.isgeneratorfunction(namespace["stream"]) and inspect.isasyncgenfunction(namespace["agen"])
    assert not inspect.isgeneratorfunction(namespace["handler"])
    assert namespace["handler"].__doc__ == "Served at run time only."
    # Methods and nested functions go with their class or function.
    assert "class Routes:\n    def get(self):\n        _imgtool_stub_ = None" in text and "inner" not in text
    # Everything outside the stubbed bodies is the file's own text.
    assert text.startswith('"""An app."""\nimport os\n\nSETTINGS = {"debug": False}  # module level: always real\n')
    assert "class App:\n    extra = None\n\n    async def __call__(self, scope, receive, send):\n" in text
    assert text.endswith("\n\napp = configure(App())\n")


def test_an_edit_inside_a_stubbed_body_leaves_the_skeleton_unchanged_and_others_do_not():
    before = importkey.skeleton(APP, keep={"configure"})
    body_edit = APP.replace(b'return f"hello {value}"', b'return f"hello again, {value}!"\n    # more')
    assert importkey.skeleton(body_edit, keep={"configure"}) == before
    for edit in (
        APP.replace(b'"debug": False', b'"debug": True'),  # module level
        APP.replace(b'os.environ.get("X", "x")', b'os.environ.get("Y", "y")'),  # a body that ran at import
        APP.replace(b"def handler(request):", b"def handler(request, extra=1):"),  # a signature
        APP.replace(b"def handler(request):", b"@staticmethod\ndef handler(request):"),  # a decorator
    ):
        assert importkey.skeleton(edit, keep={"configure"}) != before


def test_a_file_that_does_not_parse_has_no_skeleton():
    assert importkey.skeleton(b"def broken(:\n", keep=set()) is None


def test_python_files_follow_the_dockerignore(tmp_path):
    for name in ("app.py", "pkg/mod.py", ".venv/lib/x.py", "build/lib/app.py", "data.txt", "pkg/__pycache__/m.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / ".dockerignore").write_text(".venv\nbuild\n**/__pycache__\n")
    assert importkey.python_files(tmp_path) == ["app.py", "pkg/mod.py"]


def run_check(app_dir, report):
    """As the image runs it: the app directory is the working directory and on PYTHONPATH."""
    return subprocess.run(
        [sys.executable, str(CHECK), "app:app", "--report", str(report)],
        cwd=app_dir,
        env={**os.environ, "PYTHONPATH": str(app_dir)},
        capture_output=True,
        text=True,
    )


def test_the_check_records_what_ran_and_the_skeleton_imports_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(importkey, "KEYS_DIR", tmp_path / "keys")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "app.py").write_bytes(APP)
    full = run_check(context, tmp_path / "full.json")
    assert full.returncode == 0, full.stdout + full.stderr
    report = json.loads((tmp_path / "full.json").read_text())
    assert report["qualnames"] is True and report["executed"] == [["app.py", "configure"]]
    assert importkey.prepare(context, "app:app", "/app") is None  # no trace yet: the build imports the app itself
    importkey.remember(context, "app:app", report)
    tree = importkey.prepare(context, "app:app", "/app")
    stubbed = tree / "app" / "app.py"
    assert b"_imgtool_stub_" in stubbed.read_bytes()
    again = run_check(tree / "app", tmp_path / "again.json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["executed"] == report["executed"]


def test_a_stub_that_runs_makes_the_check_stale_not_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(importkey, "KEYS_DIR", tmp_path / "keys")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "app.py").write_bytes(APP)
    importkey.remember(context, "app:app", {"app": "app:app", "executed": [["app.py", "configure"]], "qualnames": True})
    # The import now takes a path the trace never saw (handler runs at import), and the app swallows the error.
    (context / "app.py").write_bytes(APP + b"try:\n    handler(None)\nexcept Exception:\n    pass\n")
    tree = importkey.prepare(context, "app:app", "/app")
    stale = run_check(tree / "app", tmp_path / "r.json")
    assert stale.returncode == 3
    assert "imgtool-import-stale: stubbed function(s) ran at import: handler" in stale.stdout
    assert "imgtool-import-check:" not in stale.stdout
    # The real app still imports fine: the stale verdict is about the key, never a failure of the app.
    assert run_check(context, tmp_path / "real.json").returncode == 0


def test_a_broken_app_fails_the_check_with_one_line(tmp_path):
    (tmp_path / "app.py").write_text("import not_installed_anywhere\n")
    result = run_check(tmp_path, tmp_path / "r.json")
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("imgtool-import-check:")]
    assert lines == [
        "imgtool-import-check: ModuleNotFoundError: No module named 'not_installed_anywhere' (at app.py:1 in <module>)"
    ]


def test_an_app_that_needs_run_time_settings_warns_and_still_leaves_a_report(tmp_path):
    (tmp_path / "app.py").write_text("import os\n\ndef read():\n    return os.environ['NEEDED']\n\nVALUE = read()\n")
    result = run_check(tmp_path, tmp_path / "r.json")
    assert result.returncode == 0
    assert "imgtool-import-check-warning: KeyError: 'NEEDED' (a missing setting" in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["executed"] == [["app.py", "read"]]


def test_python_files_of_a_workspace_member_are_relative_to_it(tmp_path):
    for name in ("packages/api/main.py", "packages/api/sub/x.py", "packages/lib/y.py", "root.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    assert importkey.python_files(tmp_path, "packages/api") == ["main.py", "sub/x.py"]
