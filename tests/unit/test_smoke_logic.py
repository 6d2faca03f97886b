import json

import junitparser
import pytest

from toolkit.servers import SERVERS
from toolkit.smoke import CHECKS, CheckResult, Report, ServerReport, Status
from toolkit.smoke import report as render
from toolkit.smoke.runner import ImageUnderTest, decide, plan_checks


@pytest.mark.parametrize(
    ("claimed", "passed", "status"),
    [(True, True, Status.PASS), (True, False, Status.FAIL), (False, False, Status.NA), (False, True, Status.STALE)],
)
def test_decide_keeps_the_registry_honest(claimed, passed, status):
    result = decide("h2c", claimed, passed, "what happened", "no HTTP/2", 0.1)
    assert result.status is status
    assert result.failed is (status in (Status.FAIL, Status.STALE))


def test_na_keeps_the_reason_and_what_was_observed():
    result = decide("h2c", False, False, "RemoteProtocolError", "no HTTP/2", 0.1)
    assert "no HTTP/2" in result.detail and "RemoteProtocolError" in result.detail


def image(routes=True, spec="granian", claimed=None, ws_path=None):
    server = SERVERS.get(spec)
    return ImageUnderTest(
        ref="x",
        name=spec,
        port=8000,
        health_path="/health",
        reference_routes=routes,
        ws_path=ws_path or ("/ws" if routes else None),
        spec=server,
        app="app:app" if server else None,
        claimed=frozenset(claimed or (server.claims if server else {"http1"})),
    )


def test_every_check_runs_on_an_imgtool_reference_image():
    assert plan_checks(image(), set(CHECKS)) == dict.fromkeys(CHECKS)


def test_generic_images_skip_checks_needing_reference_routes():
    plan = plan_checks(image(routes=False, spec="none"), set(CHECKS))
    assert plan["ws"] and plan["lifespan"] and plan["graceful"] and plan["h2-tls"]
    assert plan["health"] is None and plan["http1"] is None and plan["h2c"] is None


def test_any_app_that_names_a_websocket_route_gets_the_ws_check():
    reason = "needs a WebSocket route: --ws-path or [tool.imgtool] ws-path"
    assert plan_checks(image(routes=False), set(CHECKS))["ws"] == reason
    assert plan_checks(image(routes=False, ws_path="/chat"), set(CHECKS))["ws"] is None


def test_health_always_runs_and_unselected_checks_are_skipped():
    plan = plan_checks(image(), {"http1"})
    assert plan["health"] is None and plan["http1"] is None
    assert plan["ws"] == "not selected"


def sample_report():
    return Report(
        [
            ServerReport(
                "granian",
                "img:granian",
                [CheckResult("health", Status.PASS, "ok", 0.5), CheckResult("h2c", Status.FAIL, "reset", 0.1)],
                seconds=1.0,
                logs="Traceback: boom",
            ),
            ServerReport("uvicorn", "img:uvicorn", [CheckResult("h2c", Status.NA, "HTTP/1.1 only", 0.1)], 1.0),
        ]
    )


def test_report_failed_only_on_fail_or_stale():
    assert sample_report().failed
    assert not Report([ServerReport("u", "i", [CheckResult("h2c", Status.NA), CheckResult("ws", Status.SKIP)])]).failed


def test_json_report_round_trips():
    data = json.loads(json.dumps(render.as_dict(sample_report())))
    assert data["ok"] is False
    assert data["servers"][0]["results"][1] == {
        "check": "h2c",
        "status": "FAIL",
        "detail": "reset",
        "seconds": 0.1,
        "short": "",
    }


def test_junit_report_parses(tmp_path):
    path = tmp_path / "report.xml"
    path.write_text(render.junit(sample_report()))
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"granian", "uvicorn"}
    assert suites["granian"].failures == 1 and suites["uvicorn"].skipped == 1
    failed = [case for case in suites["granian"] if case.result]
    assert failed[0].name == "h2c" and "reset" in failed[0].result[0].message


def test_failures_list_the_logs_of_failing_servers():
    lines = render.failures(sample_report())
    assert lines[0] == "granian h2c: FAIL: reset"
    assert any("Traceback: boom" in line for line in lines)
