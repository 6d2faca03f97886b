import pytest

from toolkit.errors import UsageError
from toolkit.servers import BEHAVIOURS, PROTOCOLS, SERVERS, get_server, select_servers


def test_registry_has_the_five_server_setups():
    assert list(SERVERS) == ["uvicorn", "hypercorn", "daphne", "granian", "gunicorn"]


@pytest.mark.parametrize("spec", SERVERS.values(), ids=list(SERVERS))
def test_every_spec_is_complete(spec):
    assert spec.packages and spec.command
    assert "{app}" in spec.command and any("$PORT" in part for part in spec.command)
    assert spec.protocols <= set(PROTOCOLS) and "http1" in spec.protocols
    unclaimed = (set(PROTOCOLS) | set(BEHAVIOURS)) - spec.claims
    assert unclaimed <= set(spec.limitations), f"{spec.name} lacks a reason for {unclaimed - set(spec.limitations)}"
    assert not set(spec.limitations) & spec.claims
    assert spec.without_lifespan.startswith("serves it"), "measured with a Django app: none may refuse it"


def test_no_server_forces_lifespan_on_an_app_that_refuses_it():
    """uvicorn's `--lifespan on` stopped a Django app at start (exit 3); auto serves it, and still stops on
    an app whose startup fails. The others have no such switch (hypercorn, granian asgi and gunicorn's
    worker continue without lifespan; daphne never sends it)."""
    for spec in SERVERS.values():
        argv = spec.argv("m:a")
        if "--lifespan" in argv:
            assert argv[argv.index("--lifespan") + 1] == "auto", spec.name
    assert "--lifespan" in SERVERS["uvicorn"].argv("m:a")


@pytest.mark.parametrize("spec", SERVERS.values(), ids=list(SERVERS))
def test_tls_command_names_certificate_and_key(spec):
    argv = spec.tls_argv("app:app", "/certs/cert.pem", "/certs/key.pem")
    joined = " ".join(argv)
    assert "/certs/cert.pem" in joined and "/certs/key.pem" in joined
    assert "app:app" in argv and "{" not in joined


def test_throughput_defaults():
    uvicorn = SERVERS["uvicorn"].argv("m:a")
    assert uvicorn[uvicorn.index("--loop") + 1] == "uvloop" and uvicorn[uvicorn.index("--http") + 1] == "httptools"
    granian = SERVERS["granian"].argv("m:a")
    assert granian[granian.index("--interface") + 1] == "asgi"
    assert SERVERS["gunicorn"].deprecation and "uvicorn --workers" in SERVERS["gunicorn"].deprecation


def test_unknown_server_lists_the_valid_ones():
    with pytest.raises(UsageError, match=f"choose one of {', '.join(SERVERS)}$"):
        get_server("tornado")


def test_select_servers():
    assert [s.name for s in select_servers(None, False)] == ["granian"]
    assert select_servers(None, True) == list(SERVERS.values())
    assert [s.name for s in select_servers(["daphne", "daphne", "uvicorn"], False)] == ["daphne", "uvicorn"]
    with pytest.raises(UsageError, match="exclude each other"):
        select_servers(["granian"], True)


def test_configured_servers_are_the_default_but_flags_win():
    assert [s.name for s in select_servers(None, False, ("uvicorn", "daphne"))] == ["uvicorn", "daphne"]
    assert [s.name for s in select_servers(["granian"], False, ("uvicorn",))] == ["granian"]
    assert select_servers(None, True, ("uvicorn",)) == list(SERVERS.values())


# ---- WSGI ----


def test_the_servers_that_serve_wsgi_say_how_and_the_others_refuse_naming_those_that_can():
    assert [s.name for s in SERVERS.values() if "wsgi" in s.interfaces] == ["hypercorn", "granian", "gunicorn"]
    for name in ("uvicorn", "daphne"):
        with pytest.raises(
            UsageError, match=rf"{name} does not serve WSGI apps .*: choose --server hypercorn, granian, gunicorn"
        ):
            SERVERS[name].serving("wsgi")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("granian", ["granian", "--interface", "wsgi"]),
        ("hypercorn", ["hypercorn", "wsgi:main:app"]),
        ("gunicorn", ["gunicorn", "main:app", "--worker-class", "gthread", "--threads", "$THREADS"]),
    ],
)
def test_wsgi_commands(name, expected):
    spec = SERVERS[name].serving("wsgi")
    argv = spec.argv("main:app")
    assert argv[: len(expected)] == expected and "main:app" in " ".join(argv)
    assert spec.interface == "wsgi" and not spec.lifespan and "ws" not in spec.protocols
    assert {"ws", "lifespan"} <= set(spec.limitations)
    unclaimed = (set(PROTOCOLS) | set(BEHAVIOURS)) - spec.claims
    assert unclaimed <= set(spec.limitations)
    assert spec.serving("wsgi") is spec and SERVERS[name].serving("asgi") is SERVERS[name]


def test_gunicorn_wsgi_uses_its_own_threaded_worker_and_claims_h2_over_tls_only():
    spec = SERVERS["gunicorn"].serving("wsgi")
    assert "uvicorn" not in " ".join(spec.packages) and spec.default_threads == "8"
    assert spec.protocols == {"http1", "h2-tls"} and "forwarded-allow-ips" in spec.limitations["h2c"]
    assert spec.deprecation is None


def test_hypercorn_wsgi_keeps_its_prefix_for_a_factory():
    assert SERVERS["hypercorn"].serving("wsgi").argv("main:create()")[1] == "wsgi:main:create()"


def test_gunicorn_refuses_a_dotted_ref_with_the_fix():
    with pytest.raises(UsageError, match=r"add `application = app.server` to main and pass --app main:application"):
        SERVERS["gunicorn"].argv("main:app.server")
    assert SERVERS["uvicorn"].argv("main:mcp.streamable_http_app()")[1:3] == [
        "main:mcp.streamable_http_app",
        "--factory",
    ]


def test_select_servers_for_a_wsgi_app():
    assert [s.name for s in select_servers(None, True, interface="wsgi")] == ["hypercorn", "granian", "gunicorn"]
    with pytest.raises(UsageError, match="uvicorn does not serve WSGI"):
        select_servers(["uvicorn"], False, interface="wsgi")
