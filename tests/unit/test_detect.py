"""Project detection: dependency sources, the ASGI app, factories per server, and the settings table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.asgiapp import detect_app, find_apps
from toolkit.config import describe_config, load_config
from toolkit.detect import DependencyKind, dependency_source
from toolkit.errors import UsageError
from toolkit.plan import BaseImage, make_plan
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
LITESTAR_APP = "from litestar import Litestar\n\napp = Litestar(route_handlers=[])\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def pyproject(deps=("starlette",), tool="", build_system=False) -> str:
    text = f'[project]\nname = "demo"\ndependencies = {json.dumps(list(deps))}\n'
    if build_system:
        text += '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    return text + (f"\n[tool.imgtool]\n{tool}\n" if tool else "")


def source(root: Path):
    import tomllib

    path = root / "pyproject.toml"
    return dependency_source(root, tomllib.loads(path.read_text()) if path.exists() else {})


def render(context: Path, server: str = "granian", **kwargs) -> str:
    plan = make_plan(
        load_config(context, **kwargs), SERVERS[server], OFFLINE, Path("/cache/imgtool/assets/0123456789abcdef")
    )
    return render_dockerfile(plan)


# ---- dependency sources ----


def test_uv_lock_wins_and_copies_pyproject_and_lock(tmp_path):
    write(tmp_path, {"pyproject.toml": pyproject(), "uv.lock": "version = 1\n", "requirements.txt": "flask\n"})
    found = source(tmp_path)
    assert (found.kind, found.files, found.install_project) == (
        DependencyKind.UV_LOCK,
        ("pyproject.toml", "uv.lock"),
        False,
    )


def test_uv_lock_without_pyproject_is_a_usage_error(tmp_path):
    write(tmp_path, {"uv.lock": "version = 1\n"})
    with pytest.raises(UsageError, match=r"no pyproject\.toml beside it"):
        source(tmp_path)


def test_requirements_bring_the_files_they_include(tmp_path):
    write(
        tmp_path,
        {
            "requirements.txt": "-r requirements/base.txt\n",
            "requirements/base.txt": "starlette\n",
            "requirements-dev.txt": "pytest\n",
            "pyproject.toml": pyproject(),
        },
    )
    found = source(tmp_path)
    assert found.kind == DependencyKind.REQUIREMENTS and found.requirements == "requirements.txt"
    # Only the chain: requirements-dev.txt, which nothing includes, stays out of the install layer.
    assert found.files == ("requirements.txt", "requirements/base.txt")


def test_requirements_dir_without_a_top_file(tmp_path):
    write(tmp_path, {"requirements/prod.txt": "starlette\n"})
    assert source(tmp_path).requirements == "requirements/prod.txt"


@pytest.mark.parametrize(("lock", "hint"), [("poetry.lock", "poetry lock"), ("pdm.lock", "pdm lock")])
def test_a_foreign_lock_missing_a_dependency_names_the_relock(tmp_path, lock, hint):
    write(tmp_path, {"pyproject.toml": pyproject(), lock: "# lock\n"})
    with pytest.raises(UsageError, match=f"has no package 'starlette'.*run `{hint}`"):
        source(tmp_path)


def test_an_exported_requirements_file_beats_the_foreign_lock(tmp_path):
    write(tmp_path, {"poetry.lock": "# lock\n", "requirements.txt": "starlette\n"})
    assert source(tmp_path).kind == DependencyKind.REQUIREMENTS


def test_pyproject_dependencies_and_nothing(tmp_path):
    write(tmp_path, {"pyproject.toml": pyproject(["litestar>=2"])})
    assert (source(tmp_path).kind, source(tmp_path).packages) == (DependencyKind.PYPROJECT, ("litestar>=2",))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert source(tmp_path).kind == DependencyKind.NONE


POETRY_NO_LOCK = """[tool.poetry]
name = "chat"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
quart = "*"
httpx = {version = "^0.27", extras = ["http2"]}

[tool.poetry.dev-dependencies]
pytest = "*"
"""
POETRY_BACKEND = '\n[build-system]\nrequires = ["poetry-core>=1.0.0"]\nbuild-backend = "poetry.core.masonry.api"\n'


def test_poetry_dependencies_without_a_lock_are_read_through_the_build_backend(tmp_path):
    # pallets/quart's examples: Poetry 1.x syntax, no [project], no poetry.lock.
    write(tmp_path, {"pyproject.toml": POETRY_NO_LOCK + POETRY_BACKEND, "src/chat/__init__.py": ""})
    found = source(tmp_path)
    assert (found.kind, found.requirements, found.files) == (
        DependencyKind.REQUIREMENTS,
        "pyproject.toml",
        ("pyproject.toml",),
    )
    assert found.summary.startswith("pyproject.toml [tool.poetry.dependencies] (2), read by uv through")
    assert found.install_paths == (".",)


def test_poetry_dependencies_with_no_backend_to_read_them_name_the_fix(tmp_path):
    write(tmp_path, {"pyproject.toml": POETRY_NO_LOCK})
    with pytest.raises(UsageError, match=r"no poetry.lock and no \[build-system\]: run `poetry lock`"):
        source(tmp_path)


@pytest.mark.parametrize(
    ("files", "requirements"),
    [
        ({"setup.py": "from setuptools import setup\nsetup(install_requires=['starlette'])\n"}, "setup.py"),
        ({"setup.cfg": "[options]\ninstall_requires =\n    starlette\n"}, "setup.cfg"),
        (
            {
                "pyproject.toml": '[project]\nname = "x"\ndynamic = ["dependencies"]\n'
                '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
            },
            "pyproject.toml",
        ),
    ],
)
def test_dependencies_only_the_build_backend_computes_are_read_through_it(tmp_path, files, requirements):
    write(tmp_path, files)
    found = source(tmp_path)
    assert (found.kind, found.requirements, found.context_mount, found.files) == (
        DependencyKind.REQUIREMENTS,
        requirements,
        True,
        (),
    )
    assert "a code change re-runs the install" in found.summary


def test_a_setup_py_without_install_requires_installs_nothing_of_its_own(tmp_path):
    write(tmp_path, {"setup.py": "from setuptools import setup\nsetup(name='x')\n"})
    assert source(tmp_path).kind == DependencyKind.NONE


def test_a_pipfile_without_its_lock_names_the_fix(tmp_path):
    write(tmp_path, {"Pipfile": '[packages]\nstarlette = "*"\n'})
    with pytest.raises(UsageError, match=r"has no Pipfile\.lock beside it: run `pipenv lock`"):
        source(tmp_path)


def test_src_layout_with_a_build_backend_is_installed_as_a_wheel(tmp_path):
    write(tmp_path, {"pyproject.toml": pyproject(build_system=True), "src/demo/__init__.py": ""})
    assert source(tmp_path).install_project
    (tmp_path / "pyproject.toml").write_text(pyproject())
    assert not source(tmp_path).install_project


# ---- rendering each source ----


def test_uv_lock_renders_a_frozen_sync_below_the_app(tmp_path):
    write(tmp_path, {"pyproject.toml": pyproject(), "uv.lock": "version = 1\n", "main.py": LITESTAR_APP})
    text = render(tmp_path)
    sync = "uv sync --quiet --project /tmp --frozen --no-default-groups \\\n        --no-install-project"
    assert "COPY pyproject.toml /tmp/pyproject.toml" in text and "COPY uv.lock /tmp/uv.lock" in text
    assert text.index("COPY uv.lock") < text.index(sync) < text.index("COPY . /app")
    assert "UV_PROJECT_ENVIRONMENT=/opt/venv" in text
    # The server goes on top of the locked set; the project's own deps are not repeated inline.
    assert text.index(sync) < text.index("'granian>=2.5,<3'") and "'starlette'" not in text


def test_src_layout_wheel_goes_to_its_own_layer_before_the_app(tmp_path):
    write(
        tmp_path,
        {"pyproject.toml": pyproject(build_system=True), "src/demo/__init__.py": "", "src/demo/app.py": LITESTAR_APP},
    )
    text = render(tmp_path)
    assert "--no-deps --target /opt/project \\\n        /tmp/project/." in text
    assert "--mount=type=bind,source=.,target=/tmp/project,rw" in text
    environment = text[text.index("AS runtime-env") : text.index("AS import-key")]
    assert environment.index("COPY --from=deps /opt/venv") < environment.index("COPY --from=builder /opt/project")
    assert "COPY --from=builder /app /app" in text[text.index("AS runtime\n") :]
    assert "PYTHONPATH=/opt/project:/app" in text
    assert '"/opt/import_check.py", "demo.app:app"' in text


def test_src_layout_without_a_backend_is_importable_from_src(tmp_path):
    write(tmp_path, {"pyproject.toml": pyproject(), "src/demo/__init__.py": "", "src/demo/app.py": LITESTAR_APP})
    text = render(tmp_path)
    assert "PYTHONPATH=/app:/app/src" in text and "/opt/project" not in text


def test_settings_render_apt_env_workers_and_build_args(tmp_path):
    tool = (
        'app = "main:app"\napt-packages = ["libpq5", "curl"]\nworkers = 3\n'
        'env = { LOG_LEVEL = "info", FEATURE = true }\nbuild-args = { GIT_SHA = "abc 123" }'
    )
    write(tmp_path, {"pyproject.toml": pyproject(tool=tool), "main.py": LITESTAR_APP})
    text = render(tmp_path)
    # apt-packages with no runtime set: the Debian runtime, where the packages' maintainer scripts run.
    assert "FROM scratch AS runtime-env" not in text and "runtime-libs" not in text
    runtime = text[text.index("AS runtime-env") :]
    assert "--mount=type=cache,target=/var/cache/apt,sharing=locked" in runtime
    assert "apt-get install -y -qq --no-install-recommends libpq5 curl" in runtime
    assert runtime.index("apt-get install") < runtime.index("COPY --from=deps /opt/venv")
    assert 'LOG_LEVEL="info"' in text and 'FEATURE="true"' in text and 'IMGTOOL_DEFAULT_WORKERS="3"' in text
    assert 'ARG GIT_SHA="abc 123"' in text.split("AS runtime")[0]


def test_hadolint_passes_on_every_dependency_source(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    variants = {
        "uv": {"pyproject.toml": pyproject(build_system=True), "uv.lock": "version = 1\n"}
        | {"src/demo/app.py": LITESTAR_APP},
        "req": {"requirements.txt": "starlette\n", "main.py": LITESTAR_APP},
        "apt": {"pyproject.toml": pyproject(tool='apt-packages = ["libpq5"]\nbuild-args = { A = "1" }')}
        | {"main.py": LITESTAR_APP},
    }
    variants["uv"]["src/demo/__init__.py"] = ""
    for name, files in variants.items():
        context = write(tmp_path / name, files)
        dockerfile = tmp_path / f"{name}.Dockerfile"
        dockerfile.write_text(render(context))
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


# ---- the app ----


@pytest.mark.parametrize(
    ("files", "ref", "why"),
    [
        ({"main.py": LITESTAR_APP}, "main:app", "app = Litestar(...)"),
        ({"api.py": "import fastapi\napplication = fastapi.FastAPI()\n"}, "api:application", "FastAPI"),
        ({"svc/__init__.py": "", "svc/web.py": "from quart import Quart\napp = Quart(__name__)\n"}, "svc.web:app", ""),
        ({"one.py": "async def app(scope, receive, send):\n    pass\n"}, "one:app", "async def app"),
        (
            {"src/pkg/__init__.py": "", "src/pkg/factory.py": "def create_app():\n    return 1\n"},
            "pkg.factory:create_app()",
            "",
        ),
    ],
)
def test_apps_are_detected(tmp_path, files, ref, why):
    found = detect_app(write(tmp_path, files))
    assert found.ref == ref and why in found.why


def test_an_instance_beats_a_factory_and_main_beats_other_modules(tmp_path):
    write(
        tmp_path,
        {
            "factory.py": "def create_app():\n    return 1\n",
            "other.py": "from starlette.applications import Starlette\napp = Starlette()\n",
            "main.py": "from starlette.applications import Starlette\napp = Starlette()\n",
        },
    )
    # A known framework's objects come first; a factory by its name only where there are none.
    assert [c.ref for c in find_apps(tmp_path)] == ["main:app", "other:app"]
    (tmp_path / "main.py").unlink()
    (tmp_path / "other.py").unlink()
    assert [c.ref for c in find_apps(tmp_path)] == ["factory:create_app()"]


def test_two_equally_likely_apps_are_a_usage_error(tmp_path):
    write(tmp_path, {"a.py": LITESTAR_APP, "b.py": LITESTAR_APP})
    with pytest.raises(UsageError, match=r"several apps found .*a:app, b:app"):
        detect_app(tmp_path)


def test_tests_factories_with_arguments_and_broken_files_are_ignored(tmp_path):
    write(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/test_app.py": LITESTAR_APP,
            "setup.py": "def create_app(config):\n    pass\n",
            "broken.py": "def (:\n",
        },
    )
    with pytest.raises(UsageError, match=r"no app given .* and none found"):
        detect_app(tmp_path)


def test_detected_app_is_recorded_as_detected(tmp_path):
    write(tmp_path, {"main.py": LITESTAR_APP})
    config = load_config(tmp_path)
    assert config.app == "main:app"
    assert config.origins["app"].startswith("detected (app = Litestar(...) (Litestar) in main")


@pytest.mark.parametrize("name", ["litestar-uv", "starlette-requirements", "plain-asgi", "factory"])
def test_sample_projects_need_no_settings(name):
    config = load_config(PROJECTS / name)
    assert config.origins["app"].startswith("detected")


# ---- factories per server ----


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("uvicorn", ["m.web:create_app", "--factory"]),
        ("granian", ["--factory", "m.web:create_app"]),
        ("hypercorn", ["m.web:create_app()"]),
        ("gunicorn", ["m.web:create_app()"]),
    ],
)
def test_factory_syntax_per_server(server, expected):
    argv = SERVERS[server].argv("m.web:create_app()")
    start = next(i for i, part in enumerate(argv) if part in expected)
    assert argv[start : start + len(expected)] == expected
    assert not any("create_app" in part for part in argv[:start] + argv[start + len(expected) :])
    assert SERVERS[server].argv("m.web:app").count("m.web:app") == 1
    tls = SERVERS[server].tls_argv("m.web:create_app()", "/c", "/k")
    assert all(part in tls for part in expected)


def test_daphne_cannot_serve_a_factory():
    with pytest.raises(UsageError, match=r"daphne cannot call an app factory .*add `app = create_app\(\)` to m"):
        SERVERS["daphne"].argv("m:create_app()")


def test_factory_app_flag_is_accepted_and_labelled(tmp_path):
    write(tmp_path, {"m.py": "def build():\n    pass\n"})
    config = load_config(tmp_path, app="m:build()")
    plan = make_plan(config, SERVERS["granian"], OFFLINE, "assets")
    assert config.factory and plan.labels["imgtool.app"] == "m:build()"
    assert list(plan.command[-2:]) == ["--factory", "m:build"]


# ---- [tool.imgtool] settings and their origins ----


def test_settings_and_origins(tmp_path):
    tool = 'app = "main:app"\nservers = ["uvicorn", "granian"]\nport = 9000\nenv = { A = "1" }'
    write(tmp_path, {"pyproject.toml": pyproject(tool=tool), "main.py": LITESTAR_APP})
    config = load_config(tmp_path, python="3.12")
    assert config.servers == ("uvicorn", "granian") and config.env == {"A": "1"}
    rows = {key: (value, origin) for key, value, origin in describe_config(config, config.servers, "pyproject")}
    assert rows["app"] == ("main:app", "pyproject")
    assert rows["python"] == ("3.12", "flag")
    assert rows["port"] == (9000, "pyproject")
    assert rows["health-path"] == ("none: any answer below 500 at / is healthy", "default")
    assert rows["servers"] == (["uvicorn", "granian"], "pyproject")
    assert rows["name"] == ("demo", "pyproject ([project] name)")
    assert rows["dependencies"][1] == "detected"


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ('servers = ["tornado"]', "unknown server 'tornado'"),
        ('server = "granian"\nservers = ["uvicorn"]', "both server and servers"),
        ("workers = 0", "workers = 0 is not a positive number"),
        ('apt-packages = ["libpq5; rm -rf /"]', "not a list of Debian package names"),
        ('env = { PORT = "1" }', "env name 'PORT' is not allowed"),
        ('env = { IMGTOOL_SERVER = "x" }', "is not allowed"),
        ('env = { A = "two\\nlines" }', "one-line string"),
        ('build-args = "A=1"', "must be a table"),
    ],
)
def test_bad_settings_are_usage_errors(tmp_path, tool, message):
    write(tmp_path, {"pyproject.toml": pyproject(tool='app = "main:app"\n' + tool), "main.py": LITESTAR_APP})
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path)
