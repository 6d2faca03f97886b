"""`imgtool init`'s file changes: appended without touching the rest, idempotent, never replaced without force."""

import tomllib

import pytest

from toolkit import scaffold
from toolkit.config import load_config
from toolkit.errors import UsageError

EXISTING = """# my project, with comments that must survive
[project]
name = "demo"   # keep this comment
dependencies = [
    "starlette",  # and this one
]

[tool.ruff]
line-length = 100
"""
TABLE = scaffold.tool_table("main:app", ["granian"], "/health", 8000)


def project(tmp_path, pyproject=EXISTING):
    (tmp_path / "main.py").write_text("from starlette.applications import Starlette\napp = Starlette()\n")
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    return tmp_path


def run_init(context, table=TABLE, force=False):
    changes = scaffold.plan_init(context, table, force)
    scaffold.apply(changes)
    return {change.path.name: change.action for change in changes}


def test_init_appends_the_table_and_keeps_everything_else_byte_for_byte(tmp_path):
    context = project(tmp_path)
    assert run_init(context) == {"pyproject.toml": "append", ".dockerignore": "create"}
    text = (context / "pyproject.toml").read_text()
    assert text.startswith(EXISTING) and text.endswith(TABLE)
    settings = tomllib.loads(text)["tool"]["imgtool"]
    assert settings == {"app": "main:app", "servers": ["granian"], "health-path": "/health", "port": 8000}
    assert load_config(context).origins["app"] == "pyproject"
    assert "**/__pycache__" in (context / ".dockerignore").read_text()


def test_init_is_idempotent(tmp_path):
    context = project(tmp_path)
    run_init(context)
    before = {p.name: p.read_text() for p in context.iterdir()}
    assert run_init(context) == {"pyproject.toml": "unchanged", ".dockerignore": "unchanged"}
    assert {p.name: p.read_text() for p in context.iterdir()} == before


def test_init_never_overwrites_without_force(tmp_path):
    context = project(tmp_path, EXISTING + '\n[tool.imgtool]\napp = "other:app"\n\n[tool.black]\nline-length = 88\n')
    (context / ".dockerignore").write_text("secrets/\n")
    before = (context / "pyproject.toml").read_text()
    assert run_init(context) == {"pyproject.toml": "kept", ".dockerignore": "kept"}
    assert (context / "pyproject.toml").read_text() == before
    assert (context / ".dockerignore").read_text() == "secrets/\n"

    assert run_init(context, force=True) == {"pyproject.toml": "replace", ".dockerignore": "replace"}
    text = (context / "pyproject.toml").read_text()
    assert text.startswith(EXISTING) and "other:app" not in text
    assert tomllib.loads(text)["tool"]["black"] == {"line-length": 88}
    assert text.endswith("\n[tool.black]\nline-length = 88\n")


def test_init_creates_a_pyproject_when_there_is_none(tmp_path):
    context = project(tmp_path, pyproject=None)
    assert run_init(context)["pyproject.toml"] == "create"
    assert (context / "pyproject.toml").read_text() == TABLE


def test_dotted_keys_are_left_to_the_user(tmp_path):
    context = project(tmp_path, '[project]\nname = "d"\n\n[tool]\nimgtool.app = "main:app"\n')
    with pytest.raises(UsageError, match="dotted keys"):
        run_init(context)


def test_invalid_toml_is_a_usage_error(tmp_path):
    context = project(tmp_path, "[project\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        run_init(context)
