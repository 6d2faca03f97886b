from pathlib import Path

import pytest

from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.containers import WS_PATH_LABEL
from toolkit.errors import UsageError
from toolkit.plan import BaseImage, make_plan
from toolkit.servers import SERVERS
from toolkit.validate import image_tag


def write_project(tmp_path, tool="", files=("main.py",)):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("app = None\n")
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "My App"\ndependencies = ["starlette>=0.40"]\n\n[tool.imgtool]\n{tool}\n'
    )
    return tmp_path


def test_demo_is_the_bundled_app():
    config = load_config(demo=True)
    assert config.context == BUNDLED_APP_CONTEXT.resolve()
    assert config.app == "app:app" and config.app_name == "reference-app" and config.routes == "reference"
    assert any(dep.startswith("litestar") for dep in config.dependencies)


def test_flags_override_pyproject(tmp_path):
    write_project(tmp_path, 'app = "main:app"\nport = 9000\npython = "3.12"', files=("main.py", "other.py"))
    config = load_config(tmp_path, app="other:app", port=8080)
    assert (config.app, config.port, config.python, config.app_name) == ("other:app", 8080, "3.12", "my-app")
    assert config.dependencies == ("starlette>=0.40",)


def test_requirements_txt_wins_over_project_dependencies(tmp_path):
    write_project(tmp_path, 'app = "main:app"')
    (tmp_path / "requirements.txt").write_text("starlette\n")
    config = load_config(tmp_path)
    assert config.deps.requirements == "requirements.txt" and config.dependencies == ()


def test_src_layout_package_is_found(tmp_path):
    write_project(tmp_path, 'app = "pkg.main:app"', files=("src/pkg/__init__.py", "src/pkg/main.py"))
    assert load_config(tmp_path).app == "pkg.main:app"


@pytest.mark.parametrize(
    ("kwargs", "tool", "message"),
    [
        ({"app": "main"}, "", "is not module:attribute"),
        ({"app": "main:app:x"}, "", "is not module:attribute"),
        ({"app": "nothere:app"}, "", "is not in"),
        ({}, "", "no app given"),
        ({"app": "main:app", "python": "three"}, "", "is not a Python version X.Y"),
        ({"app": "main:app"}, "port = 70000", "is not a TCP port"),
        ({"app": "main:app"}, 'health-path = "health"', "must start with '/'"),
        ({"app": "main:app"}, 'ws-path = "chat"', "ws-path 'chat' must start with '/'"),
        ({"app": "main:app"}, 'colour = "blue"', "unknown \\[tool.imgtool\\] key"),
        ({"app": "main:app"}, 'routes = "all"', "routes = 'all' is not one of"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, kwargs, tool, message):
    write_project(tmp_path, tool)
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path, **kwargs)


def test_missing_context(tmp_path):
    with pytest.raises(UsageError, match="is not a directory"):
        load_config(tmp_path / "missing")


def test_invalid_toml(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.imgtool\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(tmp_path)


@pytest.mark.parametrize("tag", ["Upper:case", "name:", "a b", ":tag"])
def test_invalid_tags(tag):
    with pytest.raises(UsageError, match="is not an image name"):
        image_tag(tag)


def test_valid_tags():
    for tag in ("myapp", "myapp:granian", "localhost:5000/team/app:v1.2"):
        assert image_tag(tag) == tag


def test_runtime_is_distroless_by_default_and_debian_on_request(tmp_path):
    assert load_config(write_project(tmp_path / "a", 'app = "main:app"')).runtime == "distroless"
    config = load_config(write_project(tmp_path / "b", 'app = "main:app"\nruntime = "debian"'))
    assert config.runtime == "debian" and config.origins["runtime"] == "pyproject"


def test_apt_packages_without_a_runtime_choose_debian(tmp_path):
    config = load_config(write_project(tmp_path / "a", 'app = "main:app"\napt-packages = ["libpq5"]'))
    assert config.runtime == "debian" and "apt-packages" in config.origins["runtime"]
    tool = 'app = "main:app"\napt-packages = ["libpq5"]\nruntime = "distroless"'
    assert load_config(write_project(tmp_path / "b", tool)).runtime == "distroless"


def test_unknown_runtime_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="runtime = 'alpine' is not one of distroless, debian"):
        load_config(write_project(tmp_path, 'app = "main:app"\nruntime = "alpine"'))


def test_a_websocket_route_becomes_the_image_label_the_smoke_suite_reads(tmp_path):
    write_project(tmp_path, 'ws-path = "/chat"')
    config = load_config(tmp_path, app="main:app")
    assert config.ws_path == "/chat"
    plan = make_plan(config, SERVERS["granian"], BaseImage("python:3.11-slim", None), Path("/assets"))
    assert plan.labels[WS_PATH_LABEL] == "/chat"
    write_project(tmp_path)
    plan = make_plan(load_config(tmp_path, app="main:app"), SERVERS["granian"], BaseImage("x", None), Path("/a"))
    assert WS_PATH_LABEL not in plan.labels
