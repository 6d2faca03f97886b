"""The import check's rule on real code, in real builds: broken code fails the build with its last frames, a
missing setting builds with one warning naming what read it.

One project (written here) holds one module per case and one requirements.txt of real libraries from the
package index: httpx 0.28 (which removed `Client(app=...)`: a library whose API changed under the project),
pydantic-settings, Django and Starlette. Every case is the same build context with another `--app`, so the
dependency layers, the runtime's libraries and the app layer are built once and each further case runs only its
import check (and, for a warning, exports its image). One server (granian): the rule is the same for all.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import leftover_test_containers
from toolkit import engine
from toolkit.buildx import read_image_json

REQUIREMENTS = "httpx==0.28.1\npydantic-settings>=2.6,<3\ndjango>=5.2,<6\nstarlette>=0.40,<2\n"
ASGI = "\n\nasync def app(scope, receive, send):\n    pass\n"
MODULES = {
    # ---- broken code ----
    "api_changed.py": (
        "import httpx\n\n\nasync def service(scope, receive, send):\n    pass\n\n\n"
        "client = httpx.Client(app=service, base_url='http://internal')\n"
    ),
    "dict_key.py": "SETTINGS = {'debug': False}\nDATABASE_URL = SETTINGS['DATABASE_URL']\n",
    "plain_model.py": (
        "from pydantic import BaseModel\n\n\nclass Limits(BaseModel):\n    workers: int\n\n\n"
        "LIMITS = Limits(workers='many')\n"
    ),
    # ---- missing settings ----
    "env_lookup.py": "import os\n\nDATABASE_URL = os.environ['DATABASE_URL']\n",
    "starlette_config.py": (
        "from starlette.config import Config\n\nconfig = Config()\nSECRET_KEY = config('SECRET_KEY')\n"
    ),
    "pydantic_settings_app.py": (
        "from pydantic_settings import BaseSettings\n\n\nclass Settings(BaseSettings):\n"
        "    database_url: str\n    secret_key: str\n\n\nsettings = Settings()\n"
    ),
    # A Django project that leaves DJANGO_SETTINGS_MODULE to the environment it is deployed in.
    "site_asgi.py": "from django.core.asgi import get_asgi_application\n\napplication = get_asgi_application()\n",
}
BROKEN = {
    "api_changed": (
        "TypeError: Client.__init__() got an unexpected keyword argument 'app' (at api_changed.py:8 in <module>)"
    ),
    "dict_key": "KeyError: 'DATABASE_URL' (at dict_key.py:2 in <module>)",
    "plain_model": "ValidationError: 1 validation error for Limits",
}
SETTINGS = {
    "env_lookup": ("app", "KeyError: 'DATABASE_URL' (a missing setting: read by os.environ[...])"),
    "starlette_config": (
        "app",
        "KeyError: \"Config 'SECRET_KEY' is missing, and has no default.\" (a missing setting: read by "
        "starlette.config)",
    ),
    "pydantic_settings_app": (
        "app",
        "ValidationError: 2 validation errors for Settings (a missing setting: read by pydantic_settings)",
    ),
    "site_asgi": ("application", "ImproperlyConfigured: Requested setting"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, docker_client):
    context = tmp_path_factory.mktemp("import-rule")
    (context / "requirements.txt").write_text(REQUIREMENTS)
    for name, source in MODULES.items():
        (context / name).write_text(source + ("" if name == "site_asgi.py" else ASGI))
    tags: list[str] = []
    yield context, tags
    for tag in tags:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)
    shutil.rmtree(context, ignore_errors=True)


def build(context, module: str, attribute: str, tag: str, *flags: str):
    return run_cli("build", "--app", f"{module}:{attribute}", "--tag", tag, *flags, cwd=context, timeout=900)


@pytest.mark.parametrize("module", SETTINGS)
def test_a_missing_setting_in_real_library_code_builds_with_one_warning(docker_client, project, module):
    context, tags = project
    attribute, expected = SETTINGS[module]
    tag = f"{TAG_PREFIX}imgtool-test-import-rule:{module.replace('_', '-')}"
    tags.append(tag)
    result = build(context, module, attribute, tag, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "while importing at build time" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert f"{module}:{attribute} raised {expected}" in re.sub(r"\s+", " ", warnings[0])
    assert json.loads(result.stdout)[0]["tag"] == tag and engine.image_exists(docker_client, tag)


@pytest.mark.parametrize("module", BROKEN)
def test_broken_code_against_real_libraries_fails_the_build_with_its_last_frames(docker_client, project, module):
    context, tags = project
    tag = f"{TAG_PREFIX}imgtool-test-import-rule:{module.replace('_', '-')}"
    tags.append(tag)
    result = build(context, module, "app", tag)
    assert result.returncode == 2, result.stderr[-3000:]
    # The app's traceback is in BuildKit's output (lines `#N ...`); imgtool itself says one line, no traceback.
    own = [line for line in result.stderr.splitlines() if not re.match(r"^#\d+ ", line)]
    assert not any("Traceback" in line for line in own), result.stderr[-3000:]
    (line,) = [re.sub(r"\s+", " ", line) for line in own if line.startswith("imgtool: error:")]
    assert f"imgtool: error: {module}:app cannot be imported in the image ({BROKEN[module]}" in line, line
    assert "fix the app" in line
    # The whole traceback was in the build's output (shown without --json); nothing tagged, nothing left running.
    assert "Traceback (most recent call last)" in result.stderr
    assert not engine.image_exists(docker_client, tag)
    assert leftover_test_containers(docker_client) == []


def test_a_django_settings_module_given_at_build_time_imports_for_real(docker_client, project):
    """The same Django project with the setting it was missing (check-env): no warning, the import ran."""
    context, tags = project
    (context / "site_settings.py").write_text(
        "SECRET_KEY = 'build-only'\nINSTALLED_APPS = []\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'site_urls'\n"
    )
    (context / "site_urls.py").write_text("urlpatterns = []\n")
    (context / "pyproject.toml").write_text(
        '[tool.imgtool]\ncheck-env = { DJANGO_SETTINGS_MODULE = "site_settings" }\n'
    )
    tag = f"{TAG_PREFIX}imgtool-test-import-rule:site-configured"
    tags.append(tag)
    try:
        result = build(context, "site_asgi", "application", tag, "--json")
    finally:
        for name in ("site_settings.py", "site_urls.py", "pyproject.toml"):
            (context / name).unlink()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "while importing at build time" not in result.stderr
    report = read_image_json(docker_client, tag, "/opt/imgtool/import-check.json")
    assert report["app"] == "site_asgi:application" and report["warning"] is None
