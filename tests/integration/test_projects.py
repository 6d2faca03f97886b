"""The user's own project, zero-config: tests/projects/* build with no flags and pass the smoke suite.

Each project is copied to a temporary directory (the Litestar one is locked there with `uv lock`:
no lock file naming a package index is committed), built from that directory (the project is the
current directory) with `imgtool build` and nothing else, then tested with `imgtool test --server S`.
Images are removed at the end. The real public projects are in test_real_projects.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import running, wait_for_health
from toolkit import assets, engine

PROJECTS = Path(__file__).resolve().parent.parent / "projects"


@dataclass(frozen=True)
class Project:
    name: str
    image: str  # imgtool-<project name>, the default tag's repository
    app: str  # what detection must pick
    deps: str  # the start of the build's "dependencies:" line
    built: tuple[str, ...]  # what a zero-flag build makes (granian, or [tool.imgtool] servers)
    extra: tuple[str, ...] = ()  # one more server, built with --server
    ws: bool = False
    index: str = ""


PROJECT_CASES = {
    project.name: project
    for project in (
        Project(
            "litestar-uv",
            "imgtool-litestar-uv-app",
            "litestar_uv_app.app:app",
            "dependencies: uv.lock (uv sync --frozen --no-default-groups --no-install-project); the project is "
            "installed",
            ("granian",),
            extra=("uvicorn",),
            ws=True,
            index="litestar-uv sample",
        ),
        Project(
            "starlette-requirements",
            "imgtool-starlette-requirements",
            "main:app",
            "dependencies: requirements.txt",
            ("granian",),
            ws=True,
            index="starlette sample",
        ),
        Project(
            "plain-asgi",
            "imgtool-plain-asgi",
            "service:app",
            "dependencies: pyproject.toml [project] dependencies (1)",
            ("granian",),
            extra=("uvicorn",),
            index='"path":"/"',
        ),
        Project(
            # No requirements file: setuptools computes install_requires, reading README.md and the package.
            "setuptools-setup-py",
            "imgtool-setuptools-setup-py",
            "shop.web:app",
            "dependencies: setup.py metadata (uv pip install -r setup.py, through the project's build backend",
            ("granian",),
            extra=("uvicorn",),
            ws=True,
            index="setup.py sample 1.2.0",
        ),
        Project(
            # pyodbc's wheel links the system's libodbc.so.2 (distroless brings Debian's libodbc2 with no
            # flag); Pillow's vendors its libraries. /image.png and /image.jpeg exercise them.
            "native-libs",
            "imgtool-native-libs",
            "main:app",
            "dependencies: requirements.txt",
            ("granian",),
            index="native-libs sample: odbc drivers []",
        ),
        Project(
            "factory",
            "imgtool-factory-app",
            "factory_app.web:create_app()",
            "dependencies: pyproject.toml [project] dependencies (1)",
            ("granian", "hypercorn"),
            index="factory sample",
        ),
    )
}


def uv_binary(docker_client, directory: Path) -> Path:
    """uv from the same imgtool-assets context imgtool ships to builds."""
    return assets.ensure((engine.daemon_arch(docker_client),)) / "uv" / engine.daemon_arch(docker_client) / "uv"


def lock_with_uv(docker_client, project: Path, exclude_newer: str | None = None) -> None:
    """`uv lock` in `project` with the host's Python; `exclude_newer` reproduces a lock as of that date."""
    with tempfile.TemporaryDirectory(prefix="imgtool-test-uv-") as scratch:
        uv = uv_binary(docker_client, Path(scratch))
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(Path(scratch) / "cache")}
        if engine.SYSTEM_CA_BUNDLE.is_file():
            env["SSL_CERT_FILE"] = str(engine.SYSTEM_CA_BUNDLE)
        command = [str(uv), "lock", "--python", sys.executable]
        if exclude_newer:
            command += ["--exclude-newer", exclude_newer]
        result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"uv lock failed:\n{result.stderr[-2000:]}"
    assert (project / "uv.lock").is_file()


@pytest.fixture(scope="module")
def built_tags(docker_client):
    """Every tag this module builds, removed at the end also when a test fails."""
    tags: set[str] = set()
    yield tags
    for tag in tags:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)


def smoke(context: Path, server: str) -> dict[str, str]:
    result = run_cli("test", "--server", server, "--json", timeout=300, cwd=context)
    report = json.loads(result.stdout)
    (entry,) = report["servers"]
    statuses = {r["check"]: r["status"] for r in entry["results"]}
    assert result.returncode == 0, f"{server}: {statuses}\n{entry['logs'][-2000:]}"
    return statuses


def check_served(docker_client, tag: str, project: Project) -> None:
    """The index route answers, and the WebSocket route echoes where the app has one."""
    with running(docker_client, tag) as (_, target):
        wait_for_health(target.url("/health"))
        assert project.index in httpx.get(target.url("/"), timeout=5).text
        if project.ws:
            with ws_connect(f"ws://{target.host}:{target.port}/ws", open_timeout=5) as socket:
                socket.send("hello from imgtool")
                assert socket.recv(timeout=5) == "hello from imgtool"


@pytest.mark.parametrize("name", PROJECT_CASES)
def test_project_builds_with_no_flags_and_passes_the_smoke_suite(docker_client, built_tags, tmp_path, name):
    project = PROJECT_CASES[name]
    context = tmp_path / name
    shutil.copytree(PROJECTS / name, context, ignore=shutil.ignore_patterns("__pycache__"))
    if name == "litestar-uv":
        lock_with_uv(docker_client, context)
    tags = [f"{TAG_PREFIX}{project.image}:{server}" for server in (*project.built, *project.extra)]
    built_tags.update(tags)

    build = run_cli("build", cwd=context)
    assert build.returncode == 0, build.stderr[-3000:]
    assert f"app: {project.app} (ASGI), detected" in build.stderr
    assert project.deps in build.stderr
    for server in project.extra:
        extra = run_cli("build", "--server", server, cwd=context)
        assert extra.returncode == 0, extra.stderr[-3000:]
    for tag in tags:
        assert docker_client.images.get(tag).labels["imgtool.app"] == project.app

    for server in (*project.built, *project.extra):
        statuses = smoke(context, server)
        assert statuses["health"] == "pass" and statuses["http1"] == "pass", statuses
    check_served(docker_client, tags[0], project)


def test_uv_lock_installs_the_locked_versions_without_dev_dependencies(docker_client, built_tags, tmp_path):
    context = tmp_path / "litestar-uv"
    shutil.copytree(PROJECTS / "litestar-uv", context)
    lock_with_uv(docker_client, context)
    locked = next(
        block.split('version = "', 1)[1].split('"', 1)[0]
        for block in (context / "uv.lock").read_text().split("[[package]]")
        if 'name = "litestar"' in block
    )
    tag = f"{TAG_PREFIX}imgtool-test-uvlock:granian"
    built_tags.add(tag)
    build = run_cli("build", "--tag", tag, cwd=context)
    assert build.returncode == 0, build.stderr[-3000:]
    probe = (
        "import importlib.metadata as m, importlib.util as u, litestar_uv_app;"
        "print(m.version('litestar'), u.find_spec('pytest') is None, litestar_uv_app.__file__)"
    )
    output = docker_client.containers.run(tag, ["python", "-c", probe], remove=True).decode().split()
    # The lock's version, not the newest; no dev group; the project from its wheel, not from /app/src.
    assert output == [locked, "True", "/opt/project/litestar_uv_app/__init__.py"]


def test_a_stale_foreign_lock_is_a_usage_error_naming_the_relock(tmp_path):
    context = tmp_path / "poetry-project"
    shutil.copytree(PROJECTS / "plain-asgi", context)
    (context / "poetry.lock").write_text("# a poetry lock file without the project's dependencies\n")
    result = run_cli("build", cwd=context)
    assert result.returncode == 2
    assert "poetry.lock has no package" in result.stderr and "run `poetry lock`" in result.stderr
    assert "Traceback" not in result.stderr


def test_daphne_refuses_an_app_factory_with_the_fix(tmp_path):
    context = tmp_path / "factory"
    shutil.copytree(PROJECTS / "factory", context)
    result = run_cli("build", "--server", "daphne", cwd=context)
    assert result.returncode == 2
    assert "daphne cannot call an app factory" in result.stderr and "--server" in result.stderr
