"""Real projects, zero config: the project is the current directory; Django, uv workspaces, foreign locks,
the Python a project asks for, check-env and the [tool.imgtool] keys. Pure logic: files in, Config and
Dockerfile text out."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from toolkit.asgiapp import detect_django
from toolkit.base import _check_python, base_python, resolve_base
from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.detect import DependencyKind, find_workspace
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.plan import BaseImage, make_plan
from toolkit.pythons import pick_python, python_requirement
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")
OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
STARLETTE = "from starlette.applications import Starlette\n\napp = Starlette()\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def render(config, server="granian") -> str:
    return render_dockerfile(make_plan(config, SERVERS[server], OFFLINE, ASSETS))


# ---- the project is the current directory ----


def test_the_current_directory_is_the_project(tmp_path):
    write(tmp_path, {"requirements.txt": "starlette\n", "main.py": STARLETTE})
    config = load_config(cwd=tmp_path)
    assert config.context == tmp_path.resolve() and config.app == "main:app"
    assert config.origins["context"] == "current directory"


@pytest.mark.parametrize("files", [{}, {"README.md": "hi\n"}, {"notes.py": "x = 1\n"}])
def test_a_directory_without_a_project_is_one_error_naming_the_fix(tmp_path, files):
    write(tmp_path, files)
    with pytest.raises(
        UsageError, match=r"holds no Python project .*: cd into your project, pass --context DIR, or --demo"
    ):
        load_config(cwd=tmp_path)


def test_the_repository_root_is_imgtools_own_project_not_the_bundled_app():
    """Tests run with cwd = the repository: nothing falls back to the bundled app silently."""
    root = BUNDLED_APP_CONTEXT.parent.parent
    with pytest.raises(UsageError, match="no app given"):
        load_config(cwd=root)
    assert load_config(cwd=root, demo=True).context == BUNDLED_APP_CONTEXT.resolve()


def test_demo_and_context_exclude_each_other(tmp_path):
    with pytest.raises(UsageError, match="--demo and --context exclude each other"):
        load_config(tmp_path, demo=True)


def test_an_explicit_app_in_a_bare_module_is_a_project(tmp_path):
    write(tmp_path, {"service.py": "def build():\n    pass\n"})
    assert load_config(cwd=tmp_path, app="service:build()").app == "service:build()"


def test_context_key_sends_imgtool_to_a_subdirectory(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": '[tool.imgtool]\ncontext = "backend"\nhealth-path = "/api/health"\n',
            "backend/requirements.txt": "starlette\n",
            "backend/main.py": STARLETTE,
        },
    )
    config = load_config(cwd=tmp_path)
    assert config.context == (tmp_path / "backend").resolve() and config.health_path == "/api/health"
    assert config.origins["context"].startswith("pyproject (")
    (tmp_path / "pyproject.toml").write_text('[tool.imgtool]\ncontext = "../elsewhere"\n')
    (tmp_path.parent / "elsewhere").mkdir(exist_ok=True)
    with pytest.raises(UsageError, match="leaves"):
        load_config(cwd=tmp_path)


@pytest.mark.parametrize(
    ("key", "hint"),
    [("health_path", "health-path"), ("check_env", "check-env"), ("sever", "server"), ("colour", None)],
)
def test_unknown_keys_suggest_the_spelling(tmp_path, key, hint):
    write(tmp_path, {"pyproject.toml": f'[tool.imgtool]\n{key} = "x"\n', "main.py": STARLETTE})
    with pytest.raises(UsageError) as raised:
        load_config(cwd=tmp_path)
    message = str(raised.value)
    assert f"unknown [tool.imgtool] key(s) '{key}'" in message
    assert (f"did you mean `{hint}`?" in message) if hint else "did you mean" not in message


# ---- health ----


def test_no_health_path_means_none_baked_and_the_label_empty(tmp_path):
    write(tmp_path, {"requirements.txt": "starlette\n", "main.py": STARLETTE})
    config = load_config(cwd=tmp_path)
    plan = make_plan(config, SERVERS["granian"], OFFLINE, ASSETS)
    assert config.health_path is None and "HEALTH_PATH" not in plan.env and plan.labels["imgtool.health-path"] == ""
    configured = make_plan(load_config(cwd=tmp_path, health_path="/ready"), SERVERS["granian"], OFFLINE, ASSETS)
    assert configured.env["HEALTH_PATH"] == "/ready" and configured.labels["imgtool.health-path"] == "/ready"
    assert "--start-interval=1s" in render(config)


# ---- Django ----


def test_fresh_startproject_is_detected_with_its_settings():
    project = PROJECTS / "django-startproject"
    config = load_config(cwd=project)
    assert config.app == "mysite.asgi:application"
    assert "application = get_asgi_application(...)" in config.origins["app"]
    assert config.django is not None and config.django.settings == "mysite.settings" and config.django.manage
    assert not config.django.static_root  # startproject sets no STATIC_ROOT: nothing to collect
    assert "--collectstatic" not in render(config)


def test_static_root_in_star_imported_settings_turns_collectstatic_on(tmp_path):
    write(
        tmp_path,
        {
            "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_cfg.settings.prod')\n",
            "site_cfg/__init__.py": "",
            "site_cfg/asgi.py": "from channels.routing import ProtocolTypeRouter\n"
            "application = ProtocolTypeRouter({})\n",
            "site_cfg/settings/__init__.py": "",
            "site_cfg/settings/base.py": "from pathlib import Path\nSTATIC_ROOT = Path(__file__).parent / 'static'\n",
            "site_cfg/settings/prod.py": "from .base import *\nDEBUG = False\n",
            "requirements.txt": "django\nchannels\n",
        },
    )
    config = load_config(cwd=tmp_path)
    assert config.app == "site_cfg.asgi:application"  # Channels' router
    assert config.django.settings == "site_cfg.settings.prod" and config.django.static_root
    text = render(config)
    assert "import_check.py --collectstatic site_cfg.settings.prod" in text
    # collectstatic fills STATIC_ROOT in the builder's app; the import check runs beside it, in the runtime.
    assert text.index("--collectstatic") < text.index("AS import-check")
    assert '"/opt/import_check.py", "site_cfg.asgi:application"' in text[text.index("AS import-check") :]


def test_static_root_none_is_not_set(tmp_path):
    write(
        tmp_path,
        {"mysite/settings.py": "STATIC_ROOT = None\n", "mysite/__init__.py": "", "mysite/asgi.py": ""},
    )
    (tmp_path / "mysite/asgi.py").write_text(
        "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
        "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n"
    )
    django = detect_django(tmp_path, "mysite.asgi:application")
    assert django is not None and not django.static_root and not django.manage


def test_not_django():
    assert detect_django(PROJECTS / "starlette-requirements", "main:app") is None


# ---- foreign locks: read at plan time, exported in the builder ----


def test_poetry_lock_project_plans_an_exact_install_and_the_lock_wins_over_server_ranges():
    config = load_config(cwd=PROJECTS / "full-stack-fastapi-poetry")
    assert config.deps.kind == DependencyKind.LOCKFILE and config.deps.hashed and config.deps.lock == "poetry.lock"
    assert config.deps.files == ("poetry.lock", "pyproject.toml")
    plan = make_plan(config, SERVERS["uvicorn"], OFFLINE, ASSETS)
    # The lock pins uvicorn, uvloop, httptools and websockets: their ranges go, the locked versions stay.
    assert plan.requirements == ("uvicorn", "uvloop", "httptools", "websockets")
    assert any("poetry.lock pins uvicorn 0.24.0.post1, outside the >=0.30,<1" in note for note in plan.notes)
    text = render_dockerfile(plan)
    assert "lock_export.py /tmp/poetry.lock /tmp/pyproject.toml /tmp/requirements.lock.txt" in text
    assert "--no-deps --require-hashes \\\n        --requirement /tmp/requirements.lock.txt" in text
    assert "--constraint /tmp/requirements.lock.txt \\\n        uvicorn uvloop httptools websockets" in text
    granian = make_plan(config, SERVERS["granian"], OFFLINE, ASSETS)
    assert granian.requirements == ("granian>=2.5,<3",) and not granian.notes
    # Poetry is never installed in the build, and nothing reaches the runtime stage.
    assert "poetry " not in text.split("# ---- runtime")[0].replace("poetry.lock", "")
    assert "requirements.lock" not in text.split("# ---- runtime")[1]


def test_pdm_project_on_a_server_base_runs_the_exporter_from_the_mounted_assets():
    config = load_config(cwd=PROJECTS / "litestar-hello-world")
    base = BaseImage("localhost:5000/imgtool-base:granian-py3.11", "sha256:" + "c" * 64, server_base=True)
    text = render_dockerfile(make_plan(config, SERVERS["granian"], base, ASSETS))
    assert "/opt/venv/bin/python /mnt/lock_export.py /srv/pdm.lock /srv/pyproject.toml" in text
    assert "&& rm /tmp/requirements.lock.txt" in text  # the deps stage is the runtime's lower layer


def test_a_lock_on_python_below_3_11_is_refused(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = []\n', "main.py": STARLETTE})
    write(tmp_path, {"pdm.lock": '[metadata]\nlock_version = "4.4"\n'})
    with pytest.raises(UsageError, match=r"tomllib \(3.11\+\) and this build uses Python 3.10"):
        load_config(cwd=tmp_path, python="3.10")


# ---- uv workspaces ----


def workspace(tmp_path: Path) -> Path:
    lock = {
        "version": 1,
        "requires-python": ">=3.11",
        "package": [
            {
                "name": "api",
                "version": "0.1",
                "source": {"editable": "packages/api"},
                "dependencies": [{"name": "core"}],
            },
            {"name": "core", "version": "0.1", "source": {"editable": "packages/core"}, "dependencies": []},
            {"name": "worker", "version": "0.1", "source": {"editable": "packages/worker"}, "dependencies": []},
            {"name": "starlette", "version": "0.40.0", "source": {"registry": "https://index.invalid/simple"}},
        ],
    }
    toml = "\n".join(
        f"[[package]]\nname = {json.dumps(p['name'])}\nversion = {json.dumps(p['version'])}\n"
        f"source = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in p['source'].items())} }}\n"
        f"dependencies = [{', '.join('{ name = ' + json.dumps(d['name']) + ' }' for d in p.get('dependencies', []))}]\n"
        for p in lock["package"]
    )
    return write(
        tmp_path,
        {
            "pyproject.toml": '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/old"]\n',
            "uv.lock": 'version = 1\nrequires-python = ">=3.11"\n\n' + toml,
            "packages/api/pyproject.toml": '[project]\nname = "api"\ndependencies = ["core", "starlette"]\n',
            "packages/api/service.py": STARLETTE,
            "packages/core/pyproject.toml": '[project]\nname = "core"\n[build-system]\nrequires = ["hatchling"]\n',
            "packages/core/src/core/__init__.py": "",
            "packages/worker/pyproject.toml": '[project]\nname = "worker"\ndependencies = ["rich"]\n',
            "packages/old/pyproject.toml": '[project]\nname = "old"\n',
        },
    )


def test_a_workspace_member_builds_from_the_root_with_its_own_dependencies(tmp_path):
    root = workspace(tmp_path)
    config = load_config(cwd=root / "packages" / "api")
    assert config.context == root.resolve() and config.project_path == "packages/api"
    assert config.deps.kind == DependencyKind.UV_LOCK and config.deps.package == "api"
    assert config.deps.files == (
        "pyproject.toml",
        "uv.lock",
        "packages/api/pyproject.toml",
        "packages/core/pyproject.toml",
        "packages/worker/pyproject.toml",
    )
    assert config.deps.install_paths == ("packages/core",)  # a member it imports, installed as a wheel
    text = render(config)
    assert "--package api --no-install-workspace" in text
    assert "COPY packages/api /app" in text and "/tmp/project/packages/core" in text
    assert "PYTHONPATH=/opt/project:/app" in text
    # The same from the root, through [tool.imgtool] context:
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text() + '[tool.imgtool]\ncontext = "packages/api"\n'
    )
    assert load_config(cwd=root).deps.package == "api"


def test_a_directory_outside_the_members_is_not_a_workspace_member(tmp_path):
    root = workspace(tmp_path)
    assert find_workspace(root / "packages" / "old") is None
    (root / "uv.lock").unlink()
    with pytest.raises(UsageError, match=r"has no uv\.lock: run `uv lock` there"):
        find_workspace(root / "packages" / "api")


def test_hadolint_passes_on_lock_workspace_and_django_dockerfiles(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    configs = {
        "poetry": load_config(cwd=PROJECTS / "full-stack-fastapi-poetry"),
        "workspace": load_config(cwd=workspace(tmp_path / "ws") / "packages" / "api"),
        "django": load_config(cwd=PROJECTS / "django-startproject"),
    }
    for name, config in configs.items():
        dockerfile = tmp_path / f"{name}.Dockerfile"
        dockerfile.write_text(render(config))
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


# ---- the Python a project asks for ----


@pytest.mark.parametrize(
    ("files", "where", "picked"),
    [
        ({".python-version": "3.12\n"}, ".python-version", "3.12"),
        ({".python-version": "cpython-3.13.1\n"}, ".python-version", "3.13"),
        ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.10"\n'}, "requires-python", "3.11"),
        # The nearest allowed version with an offline base (3.12 has none: no Debian suite here ships it).
        ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12,<3.14"\n'}, "requires-python", "3.13"),
        ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = "==3.12.*"\n'}, "requires-python", "3.12"),
        ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = "<3.11"\n'}, "requires-python", "3.10"),
        ({"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.12"\n'}, "tool.poetry", "3.13"),
        (
            {"uv.lock": 'requires-python = ">=3.14, <4.0"\n', "pyproject.toml": "[project]\nname='x'\n"},
            "uv.lock",
            "3.14",
        ),
        ({"Pipfile": '[requires]\npython_version = "3.12"\n'}, "Pipfile", "3.12"),
    ],
)
def test_python_comes_from_the_project(tmp_path, files, where, picked):
    write(tmp_path, files)
    requirement = python_requirement(tmp_path)
    assert where in requirement.where and pick_python(requirement, "3.11") == picked


def test_a_python_the_project_does_not_allow_is_an_error_naming_both(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.14"\n', "main.py": STARLETTE})
    assert load_config(cwd=tmp_path).python == "3.14"
    with pytest.raises(UsageError, match=r"--python 3.11 does not satisfy the project's Python >=3.14"):
        load_config(cwd=tmp_path, python="3.11")


class FakeImages:
    def __init__(self, attrs: dict[str, dict]):
        self.attrs = attrs

    def get(self, name):
        return type("Image", (), {"attrs": self.attrs[name], "labels": {}})()

    def pull(self, repository, tag=None):
        import docker.errors

        raise docker.errors.APIError("pull access denied")


class FakeClient:
    def __init__(self, attrs):
        self.images = FakeImages(attrs)


OFFLINE_ATTRS = {
    "Config": {
        "Env": ["LANG=C.UTF-8"],
        "Labels": {"org.opencontainers.image.description": "Debian-bookworm-python3-3.11"},
    },
    "RepoDigests": [],
}


def test_a_base_that_cannot_satisfy_the_project_is_one_error_naming_both_versions(tmp_path, monkeypatch):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.14"\n', "main.py": STARLETTE})
    config = load_config(cwd=tmp_path)
    client = FakeClient({"imgtool/python:3.11-bookworm": OFFLINE_ATTRS})
    monkeypatch.setattr("toolkit.base.image_exists", lambda client, name: name in client.images.attrs)
    # 3.14 has an offline base, not bootstrapped here: the fix names the command that makes it.
    with pytest.raises(EnvironmentProblem, match=r"run `imgtool base bootstrap --python 3\.14` to create the offline"):
        resolve_base(client, None, config.python, lambda _: None, config.python_requirement)
    # An explicit base is checked by the Python its metadata names.
    assert base_python(client, "imgtool/python:3.11-bookworm") == "3.11"
    with pytest.raises(
        UsageError, match=r"needs Python >=3\.14 .* but the base imgtool/python:3\.11-bookworm has Python 3\.11"
    ):
        _check_python(client, OFFLINE, config.python_requirement)


# ---- check-env: the import check's environment, never the image's ----


def test_check_env_is_a_secret_of_the_import_check_only(tmp_path):
    tool = '[tool.imgtool]\ncheck-env = { DATABASE_URL = "sqlite:///check-only" }\n'
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["starlette"]\n' + tool})
    write(tmp_path, {"main.py": STARLETTE})
    config = load_config(cwd=tmp_path)
    assert config.check_env == {"DATABASE_URL": "sqlite:///check-only"}
    text = render(config)
    assert "sqlite:///check-only" not in text
    check = next(block for block in text.split("\n\n") if '"/opt/import_check.py", "main:app"' in block)
    assert "--mount=type=secret,id=check-env" in check
    assert text.count("id=check-env") == 2  # that RUN, and the buildx command in the header
    assert "--secret id=check-env,src=check-env.json" in text.splitlines()[4]  # the buildx command in the header


def test_pyproject_fixtures_parse():
    for name in ("full-stack-fastapi-poetry", "litestar-hello-world", "full-stack-fastapi-uv"):
        assert tomllib.loads((PROJECTS / name / "pyproject.toml").read_text())


def test_a_workspace_member_syncs_its_own_groups_and_refuses_requirements_files(tmp_path):
    root = workspace(tmp_path)
    member = root / "packages" / "api" / "pyproject.toml"
    member.write_text(
        member.read_text() + '[dependency-groups]\nprod = ["sentry-sdk"]\n\n[tool.imgtool]\ngroups = ["prod"]\n'
    )
    config = load_config(cwd=root / "packages" / "api")
    assert "--package api --no-install-workspace \\\n        --group prod --inexact" in render(config)
    member.write_text(member.read_text().replace('groups = ["prod"]', 'groups = ["docs"]'))
    with pytest.raises(UsageError, match=r"packages/api/pyproject.toml declares no group 'docs' \(groups: prod\)"):
        load_config(cwd=root / "packages" / "api")
    member.write_text(member.read_text().replace('groups = ["docs"]', 'requirements = ["requirements.txt"]'))
    with pytest.raises(UsageError, match=r"is a member of the uv workspace .*whose uv.lock decides"):
        load_config(cwd=root / "packages" / "api")
