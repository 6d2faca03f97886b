"""`imgtool init`, `doctor`, `bake` and `config` as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import TAG_PREFIX, cli_env, run_cli
from toolkit.servers import SERVERS

PROJECTS = Path(__file__).resolve().parent.parent / "projects"


def test_init_twice_changes_nothing_the_second_time(tmp_path):
    context = tmp_path / "app"
    shutil.copytree(PROJECTS / "starlette-requirements", context)
    first = run_cli("init", "--context", str(context), "--json")
    assert first.returncode == 0, first.stderr
    assert {Path(c["path"]).name: c["action"] for c in json.loads(first.stdout)} == {
        "pyproject.toml": "create",
        ".dockerignore": "create",
    }
    files = {p.name: p.read_text() for p in context.iterdir() if p.is_file()}
    second = run_cli("init", "--context", str(context), "--json")
    assert second.returncode == 0, second.stderr
    assert {c["action"] for c in json.loads(second.stdout)} == {"unchanged"}
    assert {p.name: p.read_text() for p in context.iterdir() if p.is_file()} == files
    shown = json.loads(run_cli("config", "--context", str(context), "--json").stdout)["settings"]
    assert shown["app"] == {"value": "main:app", "from": "pyproject"}
    assert shown["servers"] == {"value": ["granian"], "from": "pyproject"}


def test_config_says_where_each_value_came_from(tmp_path):
    result = run_cli("config", "--context", str(PROJECTS / "factory"), "--port", "9000", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["settings"]
    assert shown["port"] == {"value": 9000, "from": "flag"}
    assert shown["servers"] == {"value": ["granian", "hypercorn"], "from": "pyproject"}
    assert shown["app"]["from"].startswith("detected") and shown["health-path"]["from"] == "default"


def test_doctor_is_ok_here(docker_client):
    result = run_cli("doctor", "--json", timeout=120)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["usable"], report
    names = {c["name"] for c in report["checks"]}
    assert names == {"engine", "buildx", "compose", "base", "basepath", "disk", "attest", "cosign"}


def test_doctor_names_the_fix_and_exits_2_without_an_engine(tmp_path):
    result = run_cli("doctor", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "DOCKER_CONFIG": str(tmp_path)})
    assert result.returncode == 2, result.stdout
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith(("ok", "fix"))}
    assert lines["engine"].startswith("fix") and "provision-docker" in lines["engine"]
    assert lines["buildx"].startswith("fix") and lines["compose"].startswith("fix")


def test_bake_file_is_accepted_by_buildx_bake(docker_client, tmp_path):
    output = tmp_path / "docker-bake.hcl"
    result = run_cli("bake", "--demo", "--all", "-o", str(output))
    assert result.returncode == 0, result.stderr
    printed = subprocess.run(
        ["docker", "buildx", "bake", "-f", output.name, "--print"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    bake = json.loads(printed.stdout)
    assert set(bake["group"]["default"]["targets"]) == set(SERVERS)
    granian = bake["target"]["granian"]
    assert granian["tags"] == [f"{TAG_PREFIX}imgtool-reference-app:granian"]
    dockerfile = (Path(granian["context"]) / granian["dockerfile"]).resolve().read_text()
    assert " AS builder\n" in dockerfile and " AS runtime\n" in dockerfile
