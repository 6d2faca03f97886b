"""`imgtool test` against real containers: every claim proven, every check shown to fail when broken."""

from __future__ import annotations

import json
import time

import junitparser
import pytest

from tests.conftest import run_cli
from tests.integration.conftest import interrupt_once_running, leftover_test_containers
from toolkit.servers import SERVERS
from toolkit.smoke import CHECKS


def smoke(*args: str) -> tuple[int, dict]:
    demo = () if "--image" in args else ("--demo",)
    result = run_cli("test", *demo, *args, "--json", timeout=300)
    assert result.stdout, f"no JSON on stdout; stderr:\n{result.stderr}"
    return result.returncode, json.loads(result.stdout)


def statuses(report: dict, server_index: int = 0) -> dict[str, tuple[str, str]]:
    return {r["check"]: (r["status"], r["detail"]) for r in report["servers"][server_index]["results"]}


@pytest.mark.parametrize("server", SERVERS)
def test_every_claimed_check_passes_and_the_rest_are_na(docker_client, reference_images, server, tmp_path):
    junit_path = tmp_path / "junit.xml"
    code, report = smoke("--server", server, "--junit", str(junit_path))
    results = statuses(report)
    spec = SERVERS[server]
    print(f"{server}: {report['servers'][0]['seconds']:.1f}s")
    assert code == 0, results
    assert list(results) == list(CHECKS)
    for check, (status, detail) in results.items():
        if check in spec.claims or check in ("health", "nonroot", "readonly"):
            assert status == "pass", f"{check}: {status} {detail}"
        else:
            assert status == "n/a", f"{check}: {status} {detail}"
            assert spec.limitations[check] in detail
    xml = junitparser.JUnitXml.fromfile(str(junit_path))
    (suite,) = list(xml)
    assert suite.name == server and suite.tests == len(CHECKS) and suite.failures == 0
    assert leftover_test_containers(docker_client) == []


def test_wrong_health_path_fails_health(docker_client, broken_images):
    code, report = smoke("--image", broken_images["wrong-health"], "--timeout", "6")
    results = statuses(report)
    assert code == 1
    assert results["health"][0] == "FAIL" and "not healthy" in results["health"][1]
    assert results["http1"][0] == "FAIL" and "never became healthy" in results["http1"][1]


def test_health_path_flag_overrides_the_label_and_fails_when_wrong(reference_images):
    code, report = smoke("--server", "granian", "--health-path", "/nope", "--timeout", "4", "--check", "health")
    health = statuses(report)["health"]
    assert code == 1 and health[0] == "FAIL"
    # The image's own HEALTHCHECK asked the flag's path (HEALTH_PATH is read at run time): no rebuild needed.
    assert "/nope answered 404 (needs 2xx)" in health[1], health


def test_health_path_flag_changes_what_the_image_asks_without_a_rebuild(reference_images):
    code, report = smoke("--server", "granian", "--health-path", "/info", "--check", "health", "--check", "http1")
    assert code == 0, statuses(report)
    assert "GET /info: 200" in statuses(report)["health"][1]


def test_server_without_http2_fails_h2c_when_asked_for_it(reference_images):
    code, report = smoke("--image", reference_images["uvicorn"], "--protocol", "h2c", "--protocol", "http1")
    results = statuses(report)
    assert code == 1
    assert results["h2c"][0] == "FAIL"
    assert results["http1"][0] == "pass"
    assert results["ws"] == ("skip", "not selected")


def test_app_crashing_at_startup_fails_with_its_traceback_in_the_report(broken_images):
    started = time.monotonic()
    code, report = smoke("--image", broken_images["crash"])
    results = statuses(report)
    assert code == 1
    assert results["health"][0] == "FAIL" and "exited with code" in results["health"][1]
    assert time.monotonic() - started < 60, "a crashing app must not hang the suite"
    logs = report["servers"][0]["logs"]
    assert "RuntimeError: imgtool-test: startup crashed on purpose" in logs


def test_app_without_websocket_route_fails_ws(broken_images):
    code, report = smoke("--image", broken_images["no-ws"])
    results = statuses(report)
    assert code == 1
    assert results["ws"][0] == "FAIL"
    assert {status for check, (status, _) in results.items() if check != "ws"} == {"pass"}


def test_server_ignoring_sigterm_fails_graceful(broken_images):
    code, report = smoke("--image", broken_images["ignores-sigterm"], "--check", "graceful")
    results = statuses(report)
    assert code == 1
    assert results["graceful"][0] == "FAIL" and "still running" in results["graceful"][1]


def test_table_output_for_people(reference_images):
    result = run_cli("test", "--demo", "--server", "daphne")
    assert result.returncode == 0
    assert "┃ check" in result.stdout and "daphne" in result.stdout
    assert "graceful n/a on daphne: daphne kills in-flight requests on SIGTERM" in result.stdout


def test_ctrl_c_during_test_leaves_nothing_behind(docker_client, reference_images):
    stderr = interrupt_once_running(docker_client, "test", "--demo", "--server", "hypercorn")
    assert "interrupted" in stderr
