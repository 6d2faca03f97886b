"""Dependency layouts in real builds: requirements chains (any file names, -r/-c inside the context), extras and
dependency groups for a uv.lock, a lock-free PEP 621/735 project, a real PDM lock and a real Poetry lock.

Each image is asked what it holds (importlib.metadata in the image's own Python): what was asked for is there,
at the versions constraints and locks say, and what was not asked for is not. The small projects are written
here; the uv.lock is generated here with `uv lock` (no lock naming an index is committed); the PDM and Poetry
projects are the real ones in tests/projects/. One server (granian): the install step is the same for all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import RUN_ID, TAG_PREFIX, run_cli
from tests.integration.test_projects import lock_with_uv
from toolkit import engine, lockfiles

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
STARLETTE_APP = (
    "from starlette.applications import Starlette\nfrom starlette.responses import PlainTextResponse\n"
    "from starlette.routing import Route\n\n\nasync def index(request):\n    return PlainTextResponse('layouts')\n\n\n"
    "app = Starlette(routes=[Route('/', index)])\n"
)
# Small pure-Python packages none of the others depend on: each one's presence says which part was installed.
UV_PROJECT = """[project]
name = "layouts-uv"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["starlette>=0.40"]

[project.optional-dependencies]
speed = ["six>=1.16"]
all = ["layouts-uv[speed]"]

[dependency-groups]
prod = ["itsdangerous>=2", {include-group = "observability"}]
observability = ["tomli-w>=1"]
test = ["iniconfig>=2"]

[tool.uv]
# Installed by a plain `uv sync`: the image must still leave it out (--no-default-groups).
default-groups = ["test"]

[tool.imgtool]
extras = ["all"]
groups = ["prod"]
"""


@pytest.fixture(scope="module")
def tags(docker_client):
    made: set[str] = set()
    yield made
    for tag in made:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)


def build(context: Path, tags: set[str], name: str) -> str:
    tag = f"{TAG_PREFIX}imgtool-test-layouts-{name}:granian"
    tags.add(tag)
    result = run_cli("build", "--server", "granian", "--tag", tag, cwd=context, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return tag, result.stderr


def installed(docker_client, tag: str) -> dict[str, str]:
    probe = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower(): d.version "
    probe += "for d in m.distributions()}))"
    output = docker_client.containers.run(
        tag, ["python", "-c", probe], entrypoint=[], remove=True, labels={"imgtool.test": RUN_ID}
    )
    found = json.loads(output.decode().strip().splitlines()[-1])
    return {lockfiles.normalize(name): version for name, version in found.items()}


def write(context: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return context


def test_named_requirements_files_with_their_chain_and_constraints(docker_client, tags, tmp_path):
    context = write(
        tmp_path / "named",
        {
            "pyproject.toml": '[tool.imgtool]\napp = "main:app"\nrequirements = ["requirements/app"]\n',
            "requirements/app": "-r common\n-c ../pins.constraints\nstarlette>=0.40\n",
            "requirements/common": "idna\n",
            "pins.constraints": "idna==3.7\n",
            "requirements-dev.txt": "pytest\n",
            "main.py": STARLETTE_APP,
        },
    )
    tag, stderr = build(context, tags, "named")
    assert "dependencies: requirements/app (uv pip install -r; it includes requirements/common, pins.constraints)" in (
        stderr
    )
    packages = installed(docker_client, tag)
    # The constraint two files away held; the file nothing names stayed out.
    assert packages["idna"] == "3.7" and "starlette" in packages and "pytest" not in packages


def test_production_chains_to_base_with_no_setting(docker_client, tags, tmp_path):
    context = write(
        tmp_path / "chain",
        {
            "requirements/production.txt": "-r base.txt\nsix==1.16.0\n",
            "requirements/base.txt": "starlette>=0.40\n",
            "requirements/local.txt": "-r base.txt\npytest\n",
            "main.py": STARLETTE_APP,
        },
    )
    tag, stderr = build(context, tags, "chain")
    assert "dependencies: requirements/production.txt (uv pip install -r; it includes requirements/base.txt)" in stderr
    packages = installed(docker_client, tag)
    assert packages["six"] == "1.16.0" and "starlette" in packages and "pytest" not in packages


@pytest.mark.parametrize("locked", [False, True], ids=["pep-621-and-735", "uv-lock"])
def test_extras_and_groups_of_a_pyproject_and_of_its_uv_lock(docker_client, tags, tmp_path, locked):
    context = write(tmp_path / "uv", {"pyproject.toml": UV_PROJECT, "main.py": STARLETTE_APP})
    if locked:
        lock_with_uv(docker_client, context)
    tag, stderr = build(context, tags, "uv-lock" if locked else "pyproject")
    if locked:
        assert "uv sync --frozen --no-default-groups --no-install-project); with extras all and groups prod" in stderr
    packages = installed(docker_client, tag)
    # The extra `all` through its self-reference to `speed`; the group `prod` with the group it includes.
    assert {"starlette", "six", "itsdangerous", "tomli-w"} <= set(packages)
    assert "iniconfig" not in packages  # the default group nobody asked for


def test_a_pdm_lock_installs_the_group_asked_for(docker_client, tags, tmp_path):
    context = tmp_path / "litestar-hello-world"
    shutil.copytree(PROJECTS / "litestar-hello-world", context)
    pyproject = context / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.imgtool]\ngroups = ["test"]\n')
    tag, stderr = build(context, tags, "pdm")
    assert "pdm.lock (lock_version 4.4, default dependencies + groups test and what they need)" in stderr
    packages = installed(docker_client, tag)
    assert (packages["litestar"], packages["pytest"], packages["pytest-asyncio"]) == ("2.4.1", "7.4.3", "0.21.1")
    assert not {"ruff", "mypy", "pre-commit"} & set(packages)  # the lint group


def test_a_poetry_lock_installs_the_group_asked_for(docker_client, tags, tmp_path):
    context = tmp_path / "full-stack-fastapi-poetry"
    shutil.copytree(PROJECTS / "full-stack-fastapi-poetry", context)
    pyproject = context / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.imgtool]\nname = "poetry-dev"\ngroups = ["dev"]\n')
    tag, stderr = build(context, tags, "poetry")
    assert "poetry.lock (lock-version 2.0, main dependencies + groups dev and what they need)" in stderr
    packages = installed(docker_client, tag)
    assert (packages["fastapi"], packages["pytest"], packages["mypy"]) == ("0.114.2", "7.4.4", "1.11.1")
