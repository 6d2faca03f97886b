"""The import check's rule: broken code fails the build, a missing setting builds with one warning.

Each case is a small project (web.py) and, where a library is involved, stand-in modules in a `site-packages`
directory under the module names the rule matches (starlette.config, pydantic_settings, ...): the rule reads a
frame's module name and where its file lies, so a stand-in is the same to it as the real library. pydantic is
the real one (a test dependency). The same rule is proven on the real libraries in a real build by
tests/integration/test_import_rule.py. Each case runs images/assets/import_check.py in its own process, as the
build runs it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import IMAGES_DIR

IMPORT_CHECK = IMAGES_DIR / "assets" / "import_check.py"
APP = "\nasync def app(scope, receive, send): pass\n"

# Stand-ins for configuration readers, raising as the real ones do.
STARLETTE_CONFIG = (
    "import os\n"
    "class Config:\n"
    "    def __call__(self, key, cast=None):\n"
    "        if key in os.environ:\n"
    "            return cast(os.environ[key]) if cast else os.environ[key]\n"
    "        raise KeyError(f\"Config '{key}' is missing, and has no default.\")\n"
)
PYDANTIC_SETTINGS = (
    "import os\n"
    "from pydantic import BaseModel\n"
    "class BaseSettings(BaseModel):\n"
    "    def __init__(self, **values):\n"
    "        env = {k.lower(): v for k, v in os.environ.items()}\n"
    "        super().__init__(**{name: env[name] for name in type(self).model_fields if name in env}, **values)\n"
)
LIBRARIES = {
    "starlette/__init__.py": "",
    "starlette/config.py": STARLETTE_CONFIG,
    "pydantic_settings/__init__.py": "from pydantic_settings.main import BaseSettings\n",
    "pydantic_settings/main.py": PYDANTIC_SETTINGS,
    # A library whose API changed under the project: `app=` is gone from its Client.
    "oldapi/__init__.py": "class Client:\n    def __init__(self, base_url=''):\n        self.base_url = base_url\n",
    # A library that reads its own key from the environment at import.
    "sdk/__init__.py": "import os\nKEY = os.environ['SDK_KEY']\n",
    # A library with a lookup bug.
    "registry/__init__.py": "TABLE = {}\ndef get(name):\n    return TABLE[name]\n",
}


def run_check(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "web.py").write_text(source + APP)
    for name, text in LIBRARIES.items():
        path = tmp_path / "site-packages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SDK_KEY", "SECRET_KEY")}
    env["PYTHONPATH"] = f"{tmp_path / 'app'}:{tmp_path / 'site-packages'}"
    return subprocess.run(
        [sys.executable, str(IMPORT_CHECK), "web:app"],
        cwd=tmp_path / "app",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def verdict(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("imgtool-import-check")]
    assert len(lines) == 1, result.stdout
    return lines[0]


BROKEN = {
    "a library's API changed (TypeError)": (
        "import oldapi\nclient = oldapi.Client(app=object())\n",
        "imgtool-import-check: TypeError: Client.__init__() got an unexpected keyword argument 'app' "
        "(at web.py:2 in <module>)",
    ),
    "NameError": ("value = undefined_name\n", "NameError: name 'undefined_name' is not defined"),
    "AttributeError": ("import os\nos.no_such_function()\n", "AttributeError: module 'os' has no attribute"),
    "a KeyError from the project's own dict": (
        "SETTINGS = {}\nURL = SETTINGS['DATABASE_URL']\n",
        "KeyError: 'DATABASE_URL' (at web.py:2 in <module>)",
    ),
    "a KeyError from a library's lookup": (
        "import registry\nregistry.get('x')\n",
        "KeyError: 'x' (at web.py:2 in <module> > registry/__init__.py:3 in get)",
    ),
    "pydantic's ValidationError on a plain model": (
        "from pydantic import BaseModel\nclass Point(BaseModel):\n    x: int\nORIGIN = Point(x='not a number')\n",
        "ValidationError: 1 validation error for Point",
    ),
    "a bug while handling a missing setting": (
        "import os\ntry:\n    URL = os.environ['DATABASE_URL']\nexcept KeyError:\n    URL = defualt_url\n",
        "NameError: name 'defualt_url' is not defined",
    ),
    "ImproperlyConfigured raised from an ImportError (a missing driver)": (
        "class ImproperlyConfigured(Exception): pass\n"
        "try:\n    import psycopg_not_installed\n"
        "except ImportError as exc:\n    raise ImproperlyConfigured('Error loading psycopg module') from exc\n",
        "ImproperlyConfigured: Error loading psycopg module",
    ),
    "a settings reader calling the project's own broken code": (
        "import os\nos.environ['PORT'] = 'x'\nfrom starlette.config import Config\n"
        "def to_port(text):\n    return int(txt)\nPORT = Config()('PORT', cast=to_port)\n",
        "NameError: name 'txt' is not defined",
    ),
    "SystemExit with no setting behind it": ("import sys\nsys.exit('refusing to start')\n", "SystemExit"),
    "a RuntimeError the project raises on its own": (
        "import os\nif not os.getenv('DATABASE_URL'):\n    raise RuntimeError('DATABASE_URL is not set')\n",
        "RuntimeError: DATABASE_URL is not set (at web.py:3 in <module>)",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_code_fails_the_build_naming_its_last_frames(tmp_path, case):
    source, expected = BROKEN[case]
    result = run_check(tmp_path, source)
    assert result.returncode == 1, result.stdout + result.stderr
    line = verdict(result)
    assert line.startswith("imgtool-import-check: ") and expected in line, line
    assert "Traceback (most recent call last)" in result.stdout  # the whole traceback above the verdict


SETTINGS = {
    "os.environ[...] in the project": (
        "import os\nURL = os.environ['DATABASE_URL']\n",
        "KeyError: 'DATABASE_URL' (a missing setting: read by os.environ[...])",
    ),
    "os.environ[...] in a library": (
        "import sdk\n",
        "KeyError: 'SDK_KEY' (a missing setting: read by os.environ[...])",
    ),
    "ImproperlyConfigured": (
        "class ImproperlyConfigured(Exception): pass\nraise ImproperlyConfigured('SECRET_KEY must be set')\n",
        "ImproperlyConfigured: SECRET_KEY must be set (a missing setting: ImproperlyConfigured)",
    ),
    "starlette.config": (
        "from starlette.config import Config\nSECRET_KEY = Config()('SECRET_KEY')\n",
        "KeyError: \"Config 'SECRET_KEY' is missing, and has no default.\" "
        "(a missing setting: read by starlette.config)",
    ),
    "pydantic-settings' ValidationError": (
        "from pydantic_settings import BaseSettings\nclass Settings(BaseSettings):\n    database_url: str\n"
        "settings = Settings()\n",
        "ValidationError: 1 validation error for Settings (a missing setting: read by pydantic_settings)",
    ),
    "raised from a missing setting": (
        "import os\ntry:\n    URL = os.environ['DATABASE_URL']\n"
        "except KeyError as exc:\n    raise RuntimeError('set DATABASE_URL') from exc\n",
        "RuntimeError: set DATABASE_URL (a missing setting: read by os.environ[...])",
    ),
    "sys.exit while handling a missing setting": (
        "import os, sys\ntry:\n    URL = os.environ['DATABASE_URL']\n"
        "except KeyError:\n    sys.exit('set DATABASE_URL')\n",
        "SystemExit: set DATABASE_URL (a missing setting: read by os.environ[...])",
    ),
}


@pytest.mark.parametrize("case", SETTINGS)
def test_a_missing_setting_builds_with_one_warning_naming_its_reader(tmp_path, case):
    source, expected = SETTINGS[case]
    result = run_check(tmp_path, source)
    assert result.returncode == 0, result.stdout + result.stderr
    line = verdict(result)
    assert line.startswith("imgtool-import-check-warning: ") and line.endswith(expected), line


def test_frames_name_project_files_from_the_app_and_library_files_from_site_packages(tmp_path):
    result = run_check(tmp_path, "import registry\n\n\ndef load():\n    return registry.get('name')\n\n\nload()\n")
    assert verdict(result).endswith("(at web.py:8 in <module> > web.py:5 in load > registry/__init__.py:3 in get)"), (
        verdict(result)
    )
