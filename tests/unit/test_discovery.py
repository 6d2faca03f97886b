"""App discovery, engine-free: every source of the project's own word, every framework row, the generic shapes,
ties, and the bad input (one line, exit 2)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from toolkit import runcommand
from toolkit.asgiapp import detect_app, find_apps, interface_of
from toolkit.config import load_config
from toolkit.errors import UsageError
from toolkit.frameworks import FRAMEWORKS, REACHES, lookup


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# ---- the table ----


def test_the_table_has_at_least_25_rows_each_checked_against_its_docs():
    assert len(FRAMEWORKS) >= 25
    for row in FRAMEWORKS:
        assert row.docs and row.interface in ("asgi", "wsgi") and row.reach in REACHES, row
        assert bool(row.via) == (row.reach in ("attribute", "method")), row
    names = {row.name.split(" (")[0] for row in FRAMEWORKS}
    wanted = {"Litestar", "FastAPI", "Starlette", "Quart", "Django", "Channels", "BlackSheep", "Falcon", "FastHTML"}
    wanted |= {"Sanic", "Connexion", "Esmerald", "Ravyn", "Lilya", "Emmett", "Responder", "Piccolo Admin"}
    wanted |= {"python-socketio", "Strawberry", "Ariadne", "MCP Python SDK", "Django Ninja", "Shiny", "NiceGUI"}
    wanted |= {"Flask", "Bottle", "Pyramid", "Dash"}
    assert wanted <= names, wanted - names


def _module_for(row) -> tuple[str, str | None]:
    """A module using the row the way its docs show, and the ref discovery must give (None: no app of its own)."""
    imported = f"from {row.package} import {row.symbol}\n"
    if row.reach == "first":
        return imported + f"app, rt = {row.symbol}()\n", "main:app"
    if row.reach == "attribute":
        return imported + f"app = {row.symbol}(__name__)\n", f"main:app.{row.via}"
    if row.reach == "method":
        return imported + f"holder = {row.symbol}('x')\n", f"main:holder.{row.via}()"
    if row.reach == "argument":
        return imported + f"from factories import make\nweb = make()\n{row.symbol}(web)\n", "main:web"
    if row.reach == "project":
        return imported + f"api = {row.symbol}()\n", None
    return imported + f"app = {row.symbol}()\n", "main:app"


@pytest.mark.parametrize("row", FRAMEWORKS, ids=[row.name for row in FRAMEWORKS])
def test_every_row_is_found_with_its_interface(tmp_path, row):
    source, ref = _module_for(row)
    found = find_apps(write(tmp_path, {"main.py": source}))
    if ref is None:
        assert found == []
        return
    assert found[0].ref == ref, found
    expected = "asgi" if row.reach == "argument" else row.interface
    assert found[0].interface == expected and row.name in found[0].why


@pytest.mark.parametrize(
    ("source", "ref", "interface"),
    [
        ("import fastapi as fa\napp = fa.FastAPI()\n", "main:app", "asgi"),
        ("import falcon.asgi\napp = falcon.asgi.App()\n", "main:app", "asgi"),
        ("import falcon\napp = falcon.App()\n", "main:app", "wsgi"),
        ("from fasthtml.common import *\napp, rt = fast_app()\n", "main:app", "asgi"),
        ("from starlette.applications import Starlette as S\napi = S()\n", "main:api", "asgi"),
        ("from dash import Dash\napp = Dash()\nserver = app.server\n", "main:server", "wsgi"),
        (
            "from mcp.server.fastmcp import FastMCP\nmcp = FastMCP('x')\napp = mcp.streamable_http_app()\n",
            "main:app",
            "asgi",
        ),
        (
            "from pyramid.config import Configurator\nconfig = Configurator()\napp = config.make_wsgi_app()\n",
            "main:app",
            "wsgi",
        ),
        ("from fastapi import FastAPI\nclass Api(FastAPI):\n    pass\nservice = Api()\n", "main:service", "asgi"),
        ("from flask import Flask\ndef build():\n    web = Flask(__name__)\n    return web\n", "main:build()", "wsgi"),
    ],
    ids=[
        "module-alias",
        "falcon-asgi",
        "falcon-wsgi",
        "star-import",
        "name-alias",
        "dash-server",
        "mcp-app",
        "pyramid",
        "subclass",
        "factory-by-what-it-returns",
    ],
)
def test_imports_subclasses_and_factories_are_resolved(tmp_path, source, ref, interface):
    found = detect_app(write(tmp_path, {"main.py": source}))
    assert (found.ref, found.interface) == (ref, interface), found


def test_a_wrapper_is_the_app_not_what_it_wraps(tmp_path):
    write(
        tmp_path,
        {
            "main.py": "from fastapi import FastAPI\napp = FastAPI()\n",
            "asgi.py": "import socketio\nfrom main import app\nsio = socketio.AsyncServer()\n"
            "application = socketio.ASGIApp(sio, other_asgi_app=app)\n",
        },
    )
    assert detect_app(tmp_path).ref == "asgi:application"


DJANGO_WSGI = "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"


def test_channels_router_wraps_djangos_handler(tmp_path):
    write(
        tmp_path,
        {
            "mysite/__init__.py": "",
            "mysite/asgi.py": "from django.core.asgi import get_asgi_application\n"
            "from channels.routing import ProtocolTypeRouter\ndjango_app = get_asgi_application()\n"
            "application = ProtocolTypeRouter({'http': django_app})\n",
            "mysite/wsgi.py": DJANGO_WSGI,
        },
    )
    assert (detect_app(tmp_path).ref, detect_app(tmp_path).interface) == ("mysite.asgi:application", "asgi")


def test_django_with_only_wsgi_py_is_wsgi_and_asgi_py_wins_beside_it(tmp_path):
    wsgi = "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"
    asgi = "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n"
    write(tmp_path, {"mysite/__init__.py": "", "mysite/wsgi.py": wsgi})
    assert (detect_app(tmp_path).ref, detect_app(tmp_path).interface) == ("mysite.wsgi:application", "wsgi")
    write(tmp_path, {"mysite/asgi.py": asgi})
    assert detect_app(tmp_path).ref == "mysite.asgi:application"


def test_a_local_module_named_like_a_framework_is_not_the_framework(tmp_path):
    write(
        tmp_path,
        {"flask.py": "def Flask(name):\n    return name\n", "main.py": "from flask import Flask\nx = Flask('a')\n"},
    )
    assert find_apps(tmp_path) == []


def test_lookup_takes_the_longest_package():
    assert lookup("falcon.asgi.App").interface == "asgi"
    assert lookup("falcon.App").interface == "wsgi"
    assert lookup("fasthtml.common.fast_app").reach == "first"
    assert lookup("notaframework.App") is None


# ---- generic shapes ----


@pytest.mark.parametrize(
    ("source", "ref", "interface"),
    [
        ("async def handler(scope, receive, send):\n    pass\n", "main:handler", "asgi"),
        ("def application(environ, start_response):\n    pass\n", "main:application", "wsgi"),
        (
            "class App:\n    async def __call__(self, scope, receive, send):\n        pass\nthing = App()\n",
            "main:thing",
            "asgi",
        ),
        (
            "class App:\n    def __call__(self, scope, receive, send):\n        return None\nweb = App()\n",
            "main:web",
            "asgi",
        ),
        ("class W:\n    def __call__(self, environ, start_response):\n        return []\nw = W()\n", "main:w", "wsgi"),
        ("def create_app():\n    return object()\n", "main:create_app()", None),
    ],
    ids=["async-def", "wsgi-def", "async-call", "sync-call-returning-coroutine", "wsgi-call", "named-factory"],
)
def test_generic_shapes_are_found_by_shape_not_name(tmp_path, source, ref, interface):
    found = detect_app(write(tmp_path, {"main.py": source}))
    assert (found.ref, found.interface) == (ref, interface)


def test_a_table_object_beats_a_shape(tmp_path):
    write(
        tmp_path,
        {
            "a.py": "async def x(scope, receive, send):\n    pass\n",
            "b.py": "from flask import Flask\napp = Flask('b')\n",
        },
    )
    assert detect_app(tmp_path).ref == "b:app"


def test_two_equally_likely_apps_name_both_and_the_flag(tmp_path):
    write(
        tmp_path,
        {
            "one.py": "from flask import Flask\napp = Flask('a')\n",
            "two.py": "from quart import Quart\napp = Quart('b')\n",
        },
    )
    with pytest.raises(UsageError, match=r"several apps found .*one:app, two:app.*pass --app"):
        detect_app(tmp_path)


# ---- the project's own word ----

FASTAPI_MAIN = "from fastapi import FastAPI\napp = FastAPI()\nother = FastAPI()\n"


@pytest.mark.parametrize(
    ("files", "ref", "where"),
    [
        (
            {
                "Procfile": "release: python manage.py migrate\n"
                "web: gunicorn svc:other -k uvicorn.workers.UvicornWorker\n"
            },
            "svc:other",
            "Procfile web:",
        ),
        ({"pyproject.toml": '[tool.fastapi]\nentrypoint = "svc:other"\n'}, "svc:other", "[tool.fastapi] entrypoint"),
        (
            {"Dockerfile": 'FROM python:3.12\nCMD ["uvicorn", "svc:other", "--host", "0.0.0.0"]\n'},
            "svc:other",
            "Dockerfile CMD",
        ),
        (
            {"Dockerfile": 'FROM python\nENTRYPOINT ["uv", "run"]\nCMD hypercorn \\\n  svc:other -b :80\n'},
            "svc:other",
            "Dockerfile CMD",
        ),
        (
            {
                "compose.yaml": "services:\n  web:\n    command: granian --interface asgi svc:other\n"
                "  db:\n    image: postgres\n"
            },
            "svc:other",
            "compose.yaml service web",
        ),
        (
            {"run.py": "import uvicorn\nif __name__ == '__main__':\n    uvicorn.run('svc:other', port=80)\n"},
            "svc:other",
            "run.py under __main__",
        ),
        (
            {"serve.py": "from svc import other\nimport uvicorn\nif __name__ == '__main__':\n    uvicorn.run(other)\n"},
            "serve:other",
            "serve.py under __main__",
        ),
        (
            {
                "g.py": "from granian import Granian\n"
                "if __name__ == '__main__':\n    Granian('svc:other', interface='asgi').serve()\n"
            },
            "svc:other",
            "g.py under __main__",
        ),
        (
            {"README.md": "# Svc\n\nRun it:\n\n    $ fastapi run svc.py --app other\n"},
            "svc:other",
            "README.md run line",
        ),
        ({"README.md": "Start with `daphne svc:other` locally.\n"}, "svc:other", "README.md run line"),
    ],
    ids=[
        "procfile",
        "tool-fastapi",
        "dockerfile-exec",
        "dockerfile-shell",
        "compose",
        "main-string",
        "main-name",
        "granian-call",
        "readme-block",
        "readme-inline",
    ],
)
def test_every_source_of_the_projects_word_beats_guessing(tmp_path, files, ref, where):
    found = detect_app(write(tmp_path, {"svc.py": FASTAPI_MAIN, **files}))
    assert found.ref == ref and found.why.startswith(where), found
    assert found.interface == "asgi"


def test_the_first_source_decides(tmp_path):
    write(
        tmp_path,
        {
            "svc.py": FASTAPI_MAIN,
            "Procfile": "web: uvicorn svc:other\n",
            "Dockerfile": 'CMD ["uvicorn", "svc:app"]\n',
            "README.md": "`uvicorn svc:app`\n",
        },
    )
    assert detect_app(tmp_path).ref == "svc:other"


def test_imgtools_own_rendered_dockerfile_is_not_the_projects_word(tmp_path):
    write(tmp_path, {"svc.py": FASTAPI_MAIN, "Dockerfile": '# Generated by imgtool 1\nCMD ["uvicorn", "svc:other"]\n'})
    assert detect_app(tmp_path).ref == "svc:app"


def test_a_wsgi_server_command_makes_the_interface_wsgi(tmp_path):
    write(
        tmp_path,
        {"site.py": "def application(environ, start_response):\n    pass\n", "Procfile": "web: gunicorn site\n"},
    )
    found = detect_app(tmp_path)
    assert (found.ref, found.interface) == ("site:application", "wsgi")


def test_a_procfile_naming_a_missing_module_is_one_line(tmp_path):
    write(tmp_path, {"svc.py": FASTAPI_MAIN, "Procfile": "web: uvicorn nothere:app --port $PORT\n"})
    with pytest.raises(
        UsageError, match=r"Procfile web: runs nothere:app .* module 'nothere' is not in .*fix the Procfile"
    ):
        detect_app(tmp_path)


def test_a_stale_readme_is_passed_over(tmp_path):
    write(tmp_path, {"svc.py": FASTAPI_MAIN, "README.md": "`uvicorn gone:app`\n"})
    assert detect_app(tmp_path).ref == "svc:app"


def test_two_services_naming_different_apps_are_a_tie(tmp_path):
    compose = "services:\n  a:\n    command: uvicorn svc:app\n  b:\n    command: uvicorn svc:other\n"
    write(tmp_path, {"svc.py": FASTAPI_MAIN, "compose.yaml": compose})
    with pytest.raises(UsageError, match=r"compose.yaml names several apps \(svc:app, svc:other\): pass --app"):
        detect_app(tmp_path)


@pytest.mark.parametrize(
    ("line", "server", "ref", "interface"),
    [
        ("uvicorn pkg.main:app --host 0.0.0.0 --port $PORT", "uvicorn", "pkg.main:app", "asgi"),
        ("uvicorn --factory app:create_app", "uvicorn", "app:create_app()", "asgi"),
        ("uvicorn wsgi:app --interface wsgi", "uvicorn", "wsgi:app", "wsgi"),
        ("gunicorn -w4 -k uvicorn.workers.UvicornWorker main:app", "gunicorn", "main:app", "asgi"),
        ("gunicorn myproject.wsgi --log-file -", "gunicorn", "myproject.wsgi:application", "wsgi"),
        ("gunicorn --bind 0.0.0.0:8000 'app:create_app()'", "gunicorn", "app:create_app()", "wsgi"),
        ("granian --interface wsgi --factory app:create", "granian", "app:create()", "wsgi"),
        ("granian main:app", "granian", "main:app", None),
        ("hypercorn wsgi:main:app -b :80", "hypercorn", "main:app", "wsgi"),
        ("hypercorn main", "hypercorn", "main:app", None),
        ("daphne -b 0.0.0.0 -p 8000 proj.asgi:application", "daphne", "proj.asgi:application", "asgi"),
        ("fastapi run app/main.py", "fastapi", "app.main:app", "asgi"),
        ("fastapi run --entrypoint backend.main:api", "fastapi", "backend.main:api", "asgi"),
        ("python -m uvicorn main:app", "uvicorn", "main:app", "asgi"),
        ("uv run uvicorn main:app --reload", "uvicorn", "main:app", "asgi"),
        ("sh -c 'alembic upgrade head && exec uvicorn main:app'", "uvicorn", "main:app", "asgi"),
        ("PORT=80 exec gunicorn -c gunicorn.conf.py wsgi:app", "gunicorn", "wsgi:app", "wsgi"),
    ],
)
def test_the_five_servers_and_fastapi_commands_are_parsed(line, server, ref, interface):
    run = runcommand.parse(line)
    assert (run.server, run.ref, run.interface) == (server, ref, interface)


@pytest.mark.parametrize("line", ["echo hi", "uvicorn", "gunicorn --workers 4", "uvicorn $APP_MODULE", "python app.py"])
def test_commands_naming_no_app_are_none(line):
    assert runcommand.parse(line) is None


# ---- the interface in the config ----


def test_interface_comes_from_flag_setting_or_what_made_the_app(tmp_path):
    write(tmp_path, {"main.py": "from flask import Flask\napp = Flask(__name__)\n"})
    config = load_config(tmp_path)
    assert config.interface == "wsgi" and config.origins["interface"].startswith("detected")
    assert load_config(tmp_path, interface="asgi").interface == "asgi"
    write(tmp_path, {"pyproject.toml": '[tool.imgtool]\napp = "main:app"\ninterface = "asgi"\n'})
    assert load_config(tmp_path).interface == "asgi"
    write(tmp_path, {"pyproject.toml": '[tool.imgtool]\napp = "main:app"\n'})
    assert load_config(tmp_path).interface == "wsgi"  # an explicit app: what its module shows
    assert interface_of(tmp_path, "main:app") == "wsgi"


def test_an_unknown_interface_is_a_usage_error(tmp_path):
    write(
        tmp_path,
        {
            "main.py": "from flask import Flask\napp = Flask(__name__)\n",
            "pyproject.toml": '[tool.imgtool]\ninterface = "rsgi"\n',
        },
    )
    with pytest.raises(UsageError, match=r"interface 'rsgi' is not one of asgi, wsgi"):
        load_config(tmp_path)


def test_cli_procfile_naming_a_missing_module_exits_2_in_one_line(tmp_path):
    write(tmp_path, {"svc.py": FASTAPI_MAIN, "Procfile": "web: gunicorn missing.wsgi\n"})
    result = run_cli("config", "--json", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "module 'missing.wsgi' is not in" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Procfile", "svc.py"]


def test_cli_config_shows_the_interface(tmp_path):
    write(tmp_path, {"main.py": "def app(environ, start_response):\n    pass\n"})
    result = run_cli("config", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["interface"] == {"value": "wsgi", "from": "detected (what main:app is made by)"}
    assert settings["app"]["from"] == "detected (def app(environ, start_response) in main)"
