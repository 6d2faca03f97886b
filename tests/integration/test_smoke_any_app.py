"""The smoke suite on apps that are not the bundled one: lifespan, graceful and ws proven through the app's own
routes (imgtool's probe wraps the app in the main container), each shown to fail where the app or the server
misbehaves. One image per project, built once for the module, as a user would (the project is the current
directory, no flags); the faults are chosen at run time (MISBEHAVE=..., tests/projects/starlette-misbehaving).
Which server is not the point here (the five are held to the same checks on the bundled app in test_smoke.py):
uvicorn, whose single process lets the app's own SIGTERM handler stand in for a server that drops connections,
and granian for Channels.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import leftover_test_containers, running, wait_for_health

PROJECTS = Path(__file__).resolve().parent.parent / "projects"
STARLETTE = f"{TAG_PREFIX}imgtool-starlette-misbehaving:uvicorn"
CHANNELS = f"{TAG_PREFIX}imgtool-channels-chat:granian"
LIFESPAN_OFF = f"{TAG_PREFIX}imgtool-test-lifespan-off:uvicorn"


@pytest.fixture(scope="module")
def images(docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("any-app")
    built = []
    try:
        for name, server, tag in (
            ("starlette-misbehaving", "uvicorn", STARLETTE),
            ("channels-chat", "granian", CHANNELS),
        ):
            project = root / name
            shutil.copytree(PROJECTS / name, project, ignore=shutil.ignore_patterns("__pycache__"))
            result = run_cli("build", "--server", server, cwd=project, timeout=900)
            assert result.returncode == 0, result.stderr[-3000:]
            built.append(tag)
        # The same image with the server told to skip lifespan: `--lifespan off` in its command.
        command = docker_client.images.get(STARLETTE).attrs["Config"]["Cmd"]
        assert command[command.index("--lifespan") + 1] == "auto"
        command[command.index("--lifespan") + 1] = "off"
        dockerfile = f"FROM {STARLETTE}\nCMD {json.dumps(command)}\n"
        docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=LIFESPAN_OFF, rm=True)
        built.append(LIFESPAN_OFF)
        yield
    finally:
        for tag in built:
            docker_client.images.remove(tag, force=True)


def smoke(image: str, *args: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    result = run_cli("test", "--image", image, *args, "--json", timeout=300)
    assert result.stdout, result.stderr
    (server,) = json.loads(result.stdout)["servers"]
    return result.returncode, {r["check"]: (r["status"], r["detail"]) for r in server["results"]}, server["logs"]


def test_a_well_behaved_app_passes_lifespan_graceful_and_ws_on_its_own_routes(docker_client, images):
    code, results, _ = smoke(STARLETTE)
    assert code == 0, results
    assert {check: status for check, (status, _) in results.items()} == {
        "health": "pass",
        "nonroot": "pass",
        "http1": "pass",
        "h2c": "n/a",
        "h2-tls": "n/a",
        "ws": "pass",
        "lifespan": "pass",
        "graceful": "pass",
        "readonly": "pass",
    }
    # Under a Mount, behind a middleware; the route with a parameter is left alone while literal ones exist.
    assert results["ws"][1] == "upgrade at /live/feed, close 1000; found in the app's route table (starlette)"
    assert results["lifespan"][1] == (
        "the server sent lifespan.startup, completed before the first request (1 process); "
        "lifespan.shutdown after SIGTERM, completed"
    )
    graceful = results["graceful"][1]
    assert graceful.startswith("2 requests held 2 s in the app across SIGTERM answered 200 whole; burst of 8 ")
    assert "exit 0 " in graceful or "exit 143 " in graceful, graceful
    assert leftover_test_containers(docker_client) == []


def test_ws_fails_when_the_discovered_route_refuses_the_handshake(images):
    code, results, _ = smoke(STARLETTE, "--env", "MISBEHAVE=ws-refuses", "--check", "ws")
    assert code == 1
    status, detail = results["ws"]
    assert status == "FAIL"
    assert detail.startswith("WebSocket /live/feed: the handshake was refused with HTTP 403; found in the app's route")


def test_lifespan_fails_when_the_apps_startup_fails(images):
    code, results, logs = smoke(STARLETTE, "--env", "MISBEHAVE=startup-fails", "--timeout", "10")
    assert code == 1
    assert results["health"] == ("FAIL", "container exited with code 3 before becoming healthy")
    assert results["lifespan"] == (
        "FAIL",
        "the app answered lifespan.startup.failed (RuntimeError: imgtool-test: lifespan startup failed on purpose)",
    )
    assert "Application startup failed. Exiting." in logs


def test_lifespan_fails_when_the_server_runs_none(images):
    code, results, _ = smoke(LIFESPAN_OFF, "--check", "lifespan")
    assert code == 1
    status, detail = results["lifespan"]
    assert status == "FAIL" and detail.endswith("served its first request after no lifespan scope from the server")


def test_graceful_fails_when_sigterm_drops_the_requests_in_flight(images):
    code, results, _ = smoke(STARLETTE, "--env", "MISBEHAVE=exit-on-sigterm", "--check", "graceful")
    assert code == 1
    status, detail = results["graceful"]
    assert status == "FAIL" and detail.startswith("held request 1 lost ("), detail
    assert "held request 2 lost (" in detail


def test_graceful_fails_on_an_unclean_exit_after_a_clean_drain(images):
    code, results, _ = smoke(STARLETTE, "--env", "MISBEHAVE=exit-3", "--check", "graceful")
    assert code == 1
    # The requests in flight were answered: the exit code alone fails it.
    assert results["graceful"] == ("FAIL", "exit code 3 after SIGTERM (clean: [0, 143])")


def test_channels_route_with_a_path_parameter_opened_as_a_browser_would(docker_client, images):
    code, results, _ = smoke(CHANNELS)
    assert code == 0, results
    assert results["ws"] == (
        "pass",
        "upgrade at /ws/chat/imgtool/ (room_name=imgtool in /ws/chat/<str:room_name>/), close 1000; "
        "found in the app's route table (channels)",
    )
    # Channels' ProtocolTypeRouter has no lifespan: the app's fact, whatever granian claims.
    status, detail = results["lifespan"]
    assert status == "n/a" and "No application configured for scope type 'lifespan'" in detail
    assert results["graceful"][0] == "pass"
    # Origin is what makes it a browser's handshake: AllowedHostsOriginValidator refuses one without it.
    with running(docker_client, CHANNELS) as (_, target):
        wait_for_health(target.url("/"), timeout=60)
        url = f"ws://{target.host}:{target.port}/ws/chat/imgtool/"
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, open_timeout=10)
        assert refused.value.response.status_code == 403
        with ws_connect(url, open_timeout=10, origin=target.url("")) as socket:
            socket.send(json.dumps({"message": "hello"}))
            assert json.loads(socket.recv(timeout=10)) == {"room": "imgtool", "message": "hello"}
