"""Foreign lock files → pinned requirements: what is selected, with which markers and hashes, and the errors.

The real locks under tests/projects/ (Poetry 1.8's lock-version 2.0 from the FastAPI full-stack template,
PDM 4.4 from Litestar's hello-world) are read as they are; the rest are small locks written here in the
shape the tools write them (Poetry 2.x lock-version 2.1 with groups and per-group markers, PDM's
inherit_metadata groups, Pipfile.lock).
"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from toolkit import lockfiles
from toolkit.lockfiles import LockError, export, marker_clauses, render_marker

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
H = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


def pins(result) -> dict[str, tuple[str | None, str | None]]:
    return {pin.name: (pin.url or pin.version, pin.marker) for pin in result.pins}


def real(name: str, lock: str):
    project = PROJECTS / name
    return export(lock, (project / lock).read_text(), tomllib.loads((project / "pyproject.toml").read_text()))


# ---- real locks ----


def test_poetry_1_8_lock_walks_the_main_dependencies():
    result = real("full-stack-fastapi-poetry", "poetry.lock")
    found = pins(result)
    assert len(found) == 64 and result.hashed
    assert "lock-version 2.0" in result.source
    # Main dependencies at their locked versions, extras followed (fastapi[standard] -> uvicorn[standard] -> uvloop).
    assert found["fastapi"] == ("0.114.2", None) and found["bcrypt"] == ("4.0.1", None)
    assert found["uvicorn"] == ("0.24.0.post1", None)
    assert found["uvloop"][1] == (
        'platform_python_implementation != "PyPy" and sys_platform != "cygwin" and sys_platform != "win32"'
    )
    # Markers travel along the path; a package reached on two paths gets both.
    assert found["exceptiongroup"] == ("1.2.2", 'python_version < "3.11"')
    assert found["colorama"][1] == 'platform_system == "Windows" or sys_platform == "win32"'
    # The dev group never comes along.
    assert not {"pytest", "mypy", "ruff", "pre-commit", "coverage"} & set(found)
    assert len(next(p for p in result.pins if p.name == "pydantic-core").hashes) == 89


def test_pdm_cross_platform_lock_walks_default_dependencies_and_extras_entries():
    result = real("litestar-hello-world", "pdm.lock")
    found = pins(result)
    assert len(found) == 38 and result.hashed
    # litestar[standard] is its own entry in a PDM lock: its dependencies come along.
    assert found["litestar"] == ("2.4.1", None) and found["jinja2"] == ("3.1.2", None)
    assert found["uvicorn"] == ("0.24.0.post1", None) and found["uvloop"] == ("0.19.0", 'sys_platform != "win32"')
    assert found["importlib-resources"] == ("6.1.1", 'python_version < "3.9"')
    assert not {"pytest", "ruff", "mypy", "pre-commit", "codespell"} & set(found)


def test_exported_text_is_an_installable_requirements_file():
    text = real("litestar-hello-world", "pdm.lock").text()
    assert text.startswith("# Exported by imgtool from pdm.lock")
    assert 'uvloop==0.19.0 ; sys_platform != "win32" \\\n    --hash=sha256:' in text
    assert "://" not in text  # nothing names an index: the installer's own configuration decides


# ---- Poetry 2.x: groups and markers are in the lock ----

POETRY_21 = f"""
[[package]]
name = "anyio"
version = "4.13.0"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [{{file = "anyio-4.13.0-py3-none-any.whl", hash = "{H}"}}]

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "*"
groups = ["main", "dev"]
markers = {{main = "os_name == \\"nt\\"", dev = "sys_platform == \\"win32\\""}}
files = [{{file = "colorama-0.4.6.tar.gz", hash = "{H2}"}}]

[[package]]
name = "pytest"
version = "9.0.0"
optional = false
python-versions = ">=3.10"
groups = ["dev"]
files = [{{file = "pytest-9.0.0.tar.gz", hash = "{H}"}}]

[[package]]
name = "poetry-core"
version = "2.4.0"
optional = false
python-versions = ">=3.10"
groups = ["main"]
markers = "python_version < \\"3.14\\""
files = []

[package.source]
type = "git"
url = "https://example.invalid/poetry-core.git"
reference = "HEAD"
resolved_reference = "e3998b0e"

[metadata]
lock-version = "2.1"
python-versions = ">=3.10,<4.0"
"""


def test_poetry_2_lock_takes_the_main_group_and_its_markers():
    result = export("poetry.lock", POETRY_21, {"project": {"dependencies": ["anyio"]}})
    assert pins(result) == {
        "anyio": ("4.13.0", None),
        "colorama": ("0.4.6", 'os_name == "nt"'),
        "poetry-core": ("git+https://example.invalid/poetry-core.git@e3998b0e", 'python_version < "3.14"'),
    }
    # A git pin has no hash, so hashes are checked where present but cannot be required.
    assert not result.hashed


# ---- Poetry 1.x shapes the walk must handle ----


def poetry_lock(*packages: str, version: str = "2.0") -> str:
    return "\n".join(packages) + f'\n[metadata]\nlock-version = "{version}"\n'


def package(name: str, version: str, deps: str = "", extras: str = "", source: str = "") -> str:
    text = f'[[package]]\nname = "{name}"\nversion = "{version}"\nfiles = [{{file = "{name}.whl", hash = "{H}"}}]\n'
    if deps:
        text += f"[package.dependencies]\n{deps}\n"
    if extras:
        text += f"[package.extras]\n{extras}\n"
    if source:
        text += f"[package.source]\n{source}\n"
    return text


def test_poetry_walk_follows_optional_dependencies_only_through_requested_extras():
    lock = poetry_lock(
        package(
            "web",
            "1.0",
            deps='fast = {version = ">=1", optional = true, markers = "extra == \\"speed\\""}\n'
            'slow = {version = ">=1", optional = true, markers = "extra == \\"compat\\""}\n'
            'shim = {version = "*", markers = "python_version < \\"3.12\\""}',
            extras='speed = ["fast (>=1)"]\ncompat = ["slow (>=1)"]',
        ),
        package("fast", "2.0", deps='cyfast = {version = "*", markers = "sys_platform != \\"win32\\""}'),
        package("cyfast", "0.1"),
        package("slow", "1.0"),
        package("shim", "3.0"),
        package("devtool", "1.0"),
    )
    pyproject = {
        "tool": {"poetry": {"dependencies": {"python": "^3.11", "web": {"version": "^1", "extras": ["speed"]}}}}
    }
    assert pins(export("poetry.lock", lock, pyproject)) == {
        "web": ("1.0", None),
        "fast": ("2.0", None),  # the extra's marker is satisfied by walking the extra
        "cyfast": ("0.1", 'sys_platform != "win32"'),
        "shim": ("3.0", 'python_version < "3.12"'),
    }


def test_poetry_root_constraints_become_markers_and_optional_roots_stay_out():
    lock = poetry_lock(package("tomli", "2.0"), package("winonly", "1.0"), package("extra-only", "1.0"))
    pyproject = {
        "tool": {
            "poetry": {
                "dependencies": {
                    "python": "^3.10",
                    "tomli": {"version": "^2", "python": "<3.11"},
                    "winonly": {"version": "*", "platform": "win32"},
                    "extra-only": {"version": "*", "optional": True},
                }
            }
        }
    }
    assert pins(export("poetry.lock", lock, pyproject)) == {
        "tomli": ("2.0", 'python_version < "3.11"'),
        "winonly": ("1.0", 'sys_platform == "win32"'),
    }


def test_poetry_duplicates_are_told_apart_by_the_edge_constraint():
    lock = poetry_lock(
        package(
            "app-lib",
            "1.0",
            deps='numpy = [{version = "<1.25", markers = "python_version < \\"3.9\\""}, '
            '{version = ">=1.26", markers = "python_version >= \\"3.9\\""}]',
        ),
        package("numpy", "1.24.4"),
        package("numpy", "1.26.4"),
    )
    pyproject = {"tool": {"poetry": {"dependencies": {"app-lib": "*"}}}}
    result = export("poetry.lock", lock, pyproject)
    assert sorted((p.version, p.marker) for p in result.pins if p.name == "numpy") == [
        ("1.24.4", 'python_version < "3.9"'),
        ("1.26.4", 'python_version >= "3.9"'),
    ]


def test_poetry_1_1_hashes_live_in_metadata_files():
    lock = (
        '[[package]]\nname = "six"\nversion = "1.16.0"\ncategory = "main"\n\n'
        '[metadata]\nlock-version = "1.1"\n\n[metadata.files]\n'
        f'six = [{{file = "six-1.16.0-py2.py3-none-any.whl", hash = "{H}"}}]\n'
    )
    result = export("poetry.lock", lock, {"tool": {"poetry": {"dependencies": {"six": "^1"}}}})
    assert [(p.name, p.hashes) for p in result.pins] == [("six", (H,))] and result.hashed


def test_a_cycle_in_the_graph_ends():
    lock = poetry_lock(
        package("a", "1", deps='b = {version = "*", markers = "os_name == \\"posix\\""}'),
        package("b", "1", deps='a = {version = "*", markers = "python_version > \\"3\\""}'),
    )
    result = export("poetry.lock", lock, {"tool": {"poetry": {"dependencies": {"a": "*"}}}})
    assert pins(result) == {"a": ("1", None), "b": ("1", 'os_name == "posix"')}


@pytest.mark.parametrize(
    ("lock", "pyproject", "message"),
    [
        (poetry_lock(package("a", "1")), {"tool": {"poetry": {"dependencies": {"b": "*"}}}}, "has no package 'b'"),
        (
            poetry_lock(package("a", "1", source='type = "directory"\nurl = "../a"')),
            {"tool": {"poetry": {"dependencies": {"a": "*"}}}},
            "local directory dependency",
        ),
        ("[[package]\n", {}, "cannot be read"),
    ],
)
def test_poetry_locks_that_cannot_be_exported_say_why(lock, pyproject, message):
    with pytest.raises(LockError, match=message):
        export("poetry.lock", lock, pyproject)


# ---- PDM with per-package groups (inherit_metadata) ----


def test_pdm_inherit_metadata_takes_the_default_group_with_its_markers():
    lock = f"""
[metadata]
groups = ["default", "test"]
strategy = ["inherit_metadata"]
lock_version = "4.5.0"

[[package]]
name = "anyio"
version = "4.6.0"
groups = ["default"]
files = [{{file = "anyio-4.6.0.tar.gz", hash = "{H}"}}]

[[package]]
name = "uvicorn"
version = "0.30.0"
extras = ["standard"]
groups = ["default"]
marker = "python_version >= \\"3.9\\""
files = [{{file = "uvicorn-0.30.0.tar.gz", hash = "{H}"}}]

[[package]]
name = "uvicorn"
version = "0.30.0"
groups = ["default"]
files = [{{file = "uvicorn-0.30.0.tar.gz", hash = "{H}"}}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["test"]
files = [{{file = "pytest-8.0.0.tar.gz", hash = "{H}"}}]
"""
    assert pins(export("pdm.lock", lock, {})) == {"anyio": ("4.6.0", None), "uvicorn": ("0.30.0", None)}


# ---- Pipfile.lock ----


def test_pipfile_lock_takes_the_default_section():
    lock = {
        "_meta": {"sources": [{"name": "pypi", "url": "https://index.invalid/simple", "verify_ssl": True}]},
        "default": {
            "starlette": {"hashes": [H, H2], "index": "pypi", "version": "==0.40.0"},
            "tzdata": {"hashes": [H], "markers": "sys_platform == 'win32'", "version": "==2024.1"},
            "myapp": {"editable": True, "path": "."},
        },
        "develop": {"pytest": {"hashes": [H], "version": "==8.0.0"}},
    }
    result = export("Pipfile.lock", json.dumps(lock), {})
    assert pins(result) == {"starlette": ("0.40.0", None), "tzdata": ("2024.1", "sys_platform == 'win32'")}
    assert result.hashed and "--extra-index-url" not in result.text()


def test_pipfile_lock_with_a_local_path_is_refused():
    lock = {"default": {"lib": {"path": "../lib"}}}
    with pytest.raises(LockError, match="local path dependency"):
        export("Pipfile.lock", json.dumps(lock), {})


# ---- markers and constraints ----


@pytest.mark.parametrize(
    ("marker", "clauses"),
    [
        (None, set()),
        ('extra == "standard"', set()),
        ('python_version < "3.11" and extra == "x"', {'python_version < "3.11"'}),
        (
            '(sys_platform != "win32" and sys_platform != "cygwin") and extra == "s"',
            {'sys_platform != "win32"', 'sys_platform != "cygwin"'},
        ),
        ('os_name == "nt" or sys_platform == "win32"', {'(os_name == "nt" or sys_platform == "win32")'}),
        ('extra == "a" or extra == "b"', set()),
    ],
)
def test_marker_clauses_drop_extra_tests(marker, clauses):
    assert marker_clauses(marker) == frozenset(clauses)


def test_render_marker_absorbs_stronger_alternatives():
    a, b = frozenset({'os_name == "nt"'}), frozenset({'os_name == "nt"', 'python_version < "3.9"'})
    assert render_marker({a, b}) == 'os_name == "nt"'
    assert render_marker({a, frozenset()}) is None


@pytest.mark.parametrize(
    ("version", "constraint", "ok"),
    [
        ("3.11", "^3.10", True),
        ("4.0", "^3.10", False),
        ("3.11", ">=3.8,<4.0", True),
        ("3.14", ">=3.10,<3.14", False),
        ("3.11", "~3.11", True),
        ("3.12", "~3.11", False),
        ("3.11", "3.11.*", True),
        ("3.11", ">=3.12 || <3.11", False),
        ("3.9", ">=3.12 || <3.10", True),
        ("0.24.0.post1", ">=0.30,<1", False),
        ("3.11", "!=3.11.*", False),
    ],
)
def test_satisfies(version, constraint, ok):
    assert lockfiles.satisfies(version, constraint) is ok


def test_poetry_python_constraints_convert():
    assert lockfiles.to_pep440("^3.10") == ">=3.10,<4"
    assert lockfiles.python_marker(">=3.8,<3.11") == 'python_version >= "3.8" and python_version < "3.11"'
    assert lockfiles.python_marker("*") is None


# ---- the builder's entry point ----


def test_builder_entry_point_writes_the_file_and_excludes(tmp_path):
    project = PROJECTS / "litestar-hello-world"
    out = tmp_path / "requirements.lock.txt"
    exporter = Path(lockfiles.__file__)
    command = [sys.executable, str(exporter), str(project / "pdm.lock"), str(project / "pyproject.toml"), str(out)]
    result = subprocess.run(
        [*command, "--exclude", "Faker", "--exclude", "pygments"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "litestar==2.4.1" in text and "faker==" not in text and "pygments==" not in text
    assert "imgtool: 36 pinned packages from pdm.lock" in result.stderr  # 38 selected, 2 left out
    broken = tmp_path / "poetry.lock"
    broken.write_text(poetry_lock(package("a", "1")))
    (tmp_path / "pyproject.toml").write_text('[tool.poetry.dependencies]\nb = "*"\n')
    failed = subprocess.run(
        [sys.executable, str(exporter), str(broken), str(tmp_path / "pyproject.toml"), str(out)],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("imgtool-lock-export: poetry.lock has no package 'b'")
