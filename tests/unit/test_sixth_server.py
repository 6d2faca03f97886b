"""The registry is the one list of servers: a sixth one, added to `SERVERS` and nowhere else, is listed,
rendered, composed, baked, put in the workflow's matrix and smoke-tested like the five. No Docker."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit import compose, scaffold, workflow
from toolkit.cli import app
from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.errors import UsageError
from toolkit.plan import BaseImage, default_tag, make_plan
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS, get_server, select_servers
from toolkit.smoke import CHECKS
from toolkit.smoke.runner import describe_image, plan_checks

BASE = BaseImage(name="imgtool/python:3.11-bookworm", bootstrapped=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")
GRANIAN = SERVERS["granian"]
SIXTH = dataclasses.replace(
    GRANIAN,
    name="sixth",
    summary="a sixth server (granian's flags under another name)",
    packages=("sixth-server>=1,<2",),
    command=("sixth", *GRANIAN.command[1:]),
    # A fact only the registry states: compose must read it from there.
    needs_init=True,
)


@pytest.fixture
def sixth(monkeypatch) -> None:
    monkeypatch.setitem(SERVERS, SIXTH.name, SIXTH)


def plans():
    config = load_config(context=BUNDLED_APP_CONTEXT)
    return [make_plan(config, spec, BASE, ASSETS, several=True) for spec in select_servers(None, True)]


def test_servers_lists_it(sixth):
    assert [spec.name for spec in select_servers(None, True)][-1] == "sixth"
    assert get_server("sixth") is SIXTH
    with pytest.raises(UsageError, match=r"choose one of .*gunicorn, sixth$"):
        get_server("tornado")
    result = CliRunner().invoke(app, ["servers", "--json"])
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert list(listed) == list(SERVERS)
    assert listed["sixth"]["packages"] == ["sixth-server>=1,<2"] and listed["sixth"]["command"][0] == "sixth"


def test_a_project_may_choose_it(sixth, tmp_path):
    (tmp_path / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    (tmp_path / "pyproject.toml").write_text('[tool.imgtool]\nservers = ["sixth"]\n')
    assert load_config(tmp_path).servers == ("sixth",)


def test_render_builds_it(sixth):
    plan = make_plan(load_config(context=BUNDLED_APP_CONTEXT), SIXTH, BASE, ASSETS)
    text = render_dockerfile(plan)
    assert "'sixth-server>=1,<2'" in text
    assert 'imgtool.server="sixth"' in text
    assert '"sixth", "--interface", "asgi"' in text
    assert plan.tag == "imgtool-reference-app:sixth"


def test_compose_runs_it_with_its_registry_facts(sixth):
    model = compose.compose_model(plans())
    assert list(model["services"]) == list(SERVERS)
    service = model["services"]["sixth"]
    assert service["ports"] == [f"127.0.0.1:{compose.DEFAULT_PORT_BASE + len(SERVERS) - 1}:8000"]
    assert service["init"] is True and service["labels"]["imgtool.server"] == "sixth"
    assert all("init" not in model["services"][name] for name in SERVERS if name != "sixth")


def test_bake_has_a_target_for_it(sixth, tmp_path):
    output = tmp_path / "docker-bake.hcl"
    text, dockerfiles = scaffold.bake_file(plans(), output, None)
    assert f"targets = {json.dumps(list(SERVERS))}" in text
    assert 'target "sixth" {' in text and '"imgtool-reference-app:sixth"' in text
    assert tmp_path / ".imgtool" / "docker-bake" / "sixth.Dockerfile" in dockerfiles


def test_the_workflow_matrix_builds_it(sixth):
    matrix = yaml.safe_load(workflow.render_workflow())["jobs"]["image"]["strategy"]["matrix"]
    assert matrix["server"] == list(SERVERS) and matrix["server"][-1] == "sixth"


def test_init_names_it_among_the_choices(sixth):
    assert "# uvicorn, hypercorn, daphne, granian, gunicorn, sixth\n" in scaffold.tool_table("m:app", [], "/h", 8000)


class _Image:
    def __init__(self, labels, command):
        self.labels = labels
        # The command names the app, so the smoke suite's probe can wrap it (lifespan, ws routes, graceful).
        self.attrs = {"Config": {"Entrypoint": ["/opt/venv/bin/python", "/opt/imgtool/launch.py"], "Cmd": command}}


class _Images:
    def __init__(self, images):
        self.images = images

    def get(self, ref):
        return self.images[ref]


class _Client:
    def __init__(self, images):
        self.images = _Images(images)


def test_the_smoke_suite_selects_it_and_holds_it_to_its_claims(sixth):
    config = load_config(context=BUNDLED_APP_CONTEXT)
    refs = [default_tag(config, spec) for spec in select_servers(None, True, config.servers)]
    assert refs[-1] == "imgtool-reference-app:sixth"
    # The image's labels are the ones the build gives it.
    client = _Client({plan.tag: _Image(plan.labels, list(plan.command)) for plan in plans()})
    image = describe_image(client, "imgtool-reference-app:sixth")
    assert image.name == "sixth" and image.spec is SIXTH
    assert image.claimed == {"health", "nonroot", "readonly"} | SIXTH.claims
    assert plan_checks(image, set(CHECKS)) == dict.fromkeys(CHECKS)
