"""Known web frameworks as data: how a project's module makes its ASGI or WSGI app, read without importing it.

One row per way of making an app: the import path and the name called (a class, or a factory function), the
interface the result speaks, and how to reach the callable when the object made is not itself the app. Adding a
framework is one row. Each row was checked against that framework's own documentation or examples (`docs`).

reach:
  "itself"     `x = Symbol(...)`: x is the app.
  "first"      `x, ... = Symbol(...)`: the call returns a tuple whose first item is the app (FastHTML's fast_app).
  "attribute"  `x = Symbol(...)`: the app is `x.<via>` (Dash: its Flask server).
  "method"     `x = Symbol(...)`: the app is what `x.<via>()` returns (an MCP server's HTTP app, Pyramid's WSGI app).
  "argument"   `Symbol(x, ...)`: the call hands the app in as its first argument (NiceGUI's ui.run_with).
  "project"    not an app: the project's own handler serves it (Django Ninja is routed through Django's).
"""

from __future__ import annotations

from dataclasses import dataclass

REACHES = ("itself", "first", "attribute", "method", "argument", "project")


@dataclass(frozen=True)
class Framework:
    name: str
    package: str  # the import path the symbol is reached from (or any module below it)
    symbol: str  # the class or factory the project calls
    interface: str  # "asgi" | "wsgi"
    reach: str = "itself"
    via: str = ""  # the attribute or method name, for reach "attribute" and "method"
    # 1: a fallback, chosen only where the same project has no row-0 app (Django's WSGI handler beside its ASGI one).
    rank: int = 0
    docs: str = ""


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("Litestar", "litestar", "Litestar", "asgi", docs="docs.litestar.dev: app = Litestar([index])"),
    Framework("Starlite", "starlite", "Starlite", "asgi", docs="Litestar's former name: app = Starlite(...)"),
    Framework("FastAPI", "fastapi", "FastAPI", "asgi", docs="fastapi.tiangolo.com: app = FastAPI(); fastapi run"),
    Framework(
        "Starlette", "starlette", "Starlette", "asgi", docs="starlette.io: from starlette.applications import Starlette"
    ),
    Framework("Quart", "quart", "Quart", "asgi", docs="quart.palletsprojects.com: app = Quart(__name__)"),
    Framework(
        "Django (ASGI)",
        "django.core.asgi",
        "get_asgi_application",
        "asgi",
        docs="docs.djangoproject.com, How to deploy with ASGI: application = get_asgi_application()",
    ),
    Framework(
        "Django (WSGI)",
        "django.core.wsgi",
        "get_wsgi_application",
        "wsgi",
        rank=1,
        docs="docs.djangoproject.com, How to deploy with WSGI: application = get_wsgi_application()",
    ),
    Framework(
        "Channels",
        "channels.routing",
        "ProtocolTypeRouter",
        "asgi",
        docs="channels.readthedocs.io: application = ProtocolTypeRouter({'http': django_asgi_app, ...})",
    ),
    Framework(
        "Channels (get_default_application)",
        "channels.routing",
        "get_default_application",
        "asgi",
        docs="Channels 2's asgi.py: application = get_default_application()",
    ),
    Framework("BlackSheep", "blacksheep", "Application", "asgi", docs="blacksheep docs: app = Application()"),
    Framework("Falcon (ASGI)", "falcon.asgi", "App", "asgi", docs="falcon.readthedocs.io: app = falcon.asgi.App()"),
    Framework("Falcon (WSGI)", "falcon", "App", "wsgi", docs="falcon.readthedocs.io: app = falcon.App()"),
    Framework("Falcon 2 (WSGI)", "falcon", "API", "wsgi", docs="Falcon < 3: api = falcon.API()"),
    Framework("FastHTML", "fasthtml", "FastHTML", "asgi", docs="fastht.ml: the FastHTML class inherits from Starlette"),
    Framework(
        "FastHTML (fast_app)",
        "fasthtml",
        "fast_app",
        "asgi",
        reach="first",
        docs="fastht.ml: app, rt = fast_app(); fast_app(...) -> tuple[FastHTML, RouteFuncs]",
    ),
    Framework("Sanic", "sanic", "Sanic", "asgi", docs="sanic.dev, ASGI deployment: app = Sanic('MyApp'); uvicorn"),
    Framework(
        "Connexion (AsyncApp)",
        "connexion",
        "AsyncApp",
        "asgi",
        docs="connexion.readthedocs.io 3.x: app = connexion.AsyncApp(__name__); uvicorn run:app",
    ),
    Framework(
        "Connexion (FlaskApp)",
        "connexion",
        "FlaskApp",
        "asgi",
        docs="connexion.readthedocs.io 3.x: FlaskApp wraps Flask in Connexion's ASGI middleware stack",
    ),
    Framework("Esmerald", "esmerald", "Esmerald", "asgi", docs="esmerald.dev: app = Esmerald(routes=[...])"),
    Framework("Ravyn", "ravyn", "Ravyn", "asgi", docs="Esmerald's successor, ravyn docs: app = Ravyn()"),
    Framework("Lilya", "lilya", "Lilya", "asgi", docs="lilya.dev: from lilya.apps import Lilya; app = Lilya()"),
    Framework(
        "Emmett",
        "emmett",
        "App",
        "asgi",
        docs="emmett app.py: App.__call__(scope, receive, send) returns the ASGI handler's coroutine",
    ),
    Framework("Responder", "responder", "API", "asgi", docs="responder docs: api = responder.API()"),
    Framework(
        "Piccolo Admin",
        "piccolo_admin",
        "create_admin",
        "asgi",
        docs="piccolo-admin: admin = create_admin([Director, Movie]); 'the admin is an ASGI app'",
    ),
    Framework(
        "python-socketio (ASGI)",
        "socketio",
        "ASGIApp",
        "asgi",
        docs="python-socketio: app = socketio.ASGIApp(sio, other_asgi_app)",
    ),
    Framework(
        "python-socketio (WSGI)",
        "socketio",
        "WSGIApp",
        "wsgi",
        docs="python-socketio: app = socketio.WSGIApp(sio, flask_app)",
    ),
    Framework("Strawberry", "strawberry.asgi", "GraphQL", "asgi", docs="strawberry.rocks, ASGI: app = GraphQL(schema)"),
    Framework("Ariadne (ASGI)", "ariadne.asgi", "GraphQL", "asgi", docs="ariadne docs: app = GraphQL(schema)"),
    Framework(
        "Ariadne (WSGI)", "ariadne.wsgi", "GraphQL", "wsgi", docs="ariadne docs, WSGI: application = GraphQL(schema)"
    ),
    Framework(
        "MCP Python SDK",
        "mcp.server.fastmcp",
        "FastMCP",
        "asgi",
        reach="method",
        via="streamable_http_app",
        docs="modelcontextprotocol/python-sdk README: Mount('/', app=mcp.streamable_http_app())",
    ),
    Framework(
        "FastMCP",
        "fastmcp",
        "FastMCP",
        "asgi",
        reach="method",
        via="http_app",
        docs="gofastmcp.com, HTTP deployment: app = mcp.http_app(); uvicorn app:app",
    ),
    Framework(
        "Django Ninja",
        "ninja",
        "NinjaAPI",
        "asgi",
        reach="project",
        docs="django-ninja.dev: api = NinjaAPI(); path('api/', api.urls) in Django's urls.py",
    ),
    Framework("Shiny", "shiny", "App", "asgi", docs="shiny.posit.co/py: app = App(app_ui, server) is an ASGI app"),
    Framework(
        "NiceGUI",
        "nicegui.ui",
        "run_with",
        "asgi",
        reach="argument",
        docs="nicegui.io: ui.run_with(fastapi_app) adds NiceGUI to a FastAPI app served by uvicorn",
    ),
    Framework(
        "Gradio",
        "gradio",
        "mount_gradio_app",
        "asgi",
        docs="gradio docs: app = gr.mount_gradio_app(fastapi_app, demo, path='/') returns the FastAPI app",
    ),
    Framework("Panther", "panther", "Panther", "asgi", docs="pantherpy docs: app = Panther(__name__, configs=...)"),
    Framework("Flask", "flask", "Flask", "wsgi", docs="flask.palletsprojects.com: app = Flask(__name__)"),
    Framework("Bottle", "bottle", "Bottle", "wsgi", docs="bottlepy.org: app = Bottle()"),
    Framework("Bottle (default_app)", "bottle", "default_app", "wsgi", docs="bottlepy.org: app = default_app()"),
    Framework(
        "Pyramid",
        "pyramid.config",
        "Configurator",
        "wsgi",
        reach="method",
        via="make_wsgi_app",
        docs="docs.pylonsproject.org: config = Configurator(); app = config.make_wsgi_app()",
    ),
    Framework(
        "Dash",
        "dash",
        "Dash",
        "wsgi",
        reach="attribute",
        via="server",
        docs="dash.plotly.com deployment: app = Dash(__name__); server = app.server; gunicorn app:server",
    ),
    Framework(
        "web.py",
        "web",
        "application",
        "wsgi",
        reach="method",
        via="wsgifunc",
        docs="webpy.org: app = web.application(urls, globals()); application = app.wsgifunc()",
    ),
)


def lookup(qualified: str) -> Framework | None:
    """The row for a called name resolved through the module's imports (`fastapi.applications.FastAPI`): its
    symbol under the row's package; the longest package wins (`falcon.asgi.App` is ASGI, `falcon.App` WSGI)."""
    module, _, symbol = qualified.rpartition(".")
    matches = [
        row
        for row in FRAMEWORKS
        if row.symbol == symbol and (module == row.package or module.startswith(row.package + "."))
    ]
    return max(matches, key=lambda row: len(row.package), default=None)
