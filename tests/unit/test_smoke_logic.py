import json

import junitparser
import pytest

from toolkit.servers import SERVERS
from toolkit.smoke import CHECKS, CheckResult, Report, ServerReport, Status
from toolkit.smoke import report as render
from toolkit.smoke.runner import NO_PROBE, NO_WS_ROUTE, ImageUnderTest, decide, describe_image, judge, plan_checks


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


@pytest.mark.parametrize("passed", [True, False])
def test_an_intermittent_behaviour_is_observed_either_way_never_stale(passed):
    result = decide("graceful", False, passed, "exit 0 1.2 s after SIGTERM", "waits now and then", 0.1, True)
    assert result.status is Status.NA and not result.failed
    assert "waits now and then" in result.detail and "exit 0 1.2 s" in result.detail


def test_a_claimed_intermittent_mark_does_not_soften_a_failure():
    assert decide("graceful", True, False, "still running", None, 0.1, True).status is Status.FAIL


def test_hypercorn_serving_wsgi_marks_its_graceful_shutdown_intermittent():
    spec = SERVERS["hypercorn"].serving("wsgi")
    assert "graceful" not in spec.claims and spec.intermittent == {"graceful"}
    assert SERVERS["hypercorn"].intermittent == frozenset()


def image(routes=True, spec="granian", claimed=None, ws_path=None, command=None):
    server = SERVERS.get(spec)
    app = "app:app" if server else None
    return ImageUnderTest(
        ref="x",
        name=spec,
        port=8000,
        health_path="/health",
        reference_routes=routes,
        ws_path=ws_path or ("/ws" if routes else None),
        spec=server,
        app=app,
        claimed=frozenset(claimed or (server.claims if server else {"http1"})),
        limitations=dict(server.limitations) if server else {},
        command=tuple(command if command is not None else (server.argv(app) if server else ["serve"])),
    )


def test_every_check_runs_on_an_imgtool_reference_image():
    assert plan_checks(image(), set(CHECKS)) == dict.fromkeys(CHECKS)


def test_every_check_runs_on_any_imgtool_built_app_through_the_probe():
    # No reference routes, no ws-path: ws finds its routes in the app's own route table, lifespan and graceful
    # are seen through the probe that wraps the app.
    subject = image(routes=False)
    assert subject.probe_command is not None
    assert plan_checks(subject, set(CHECKS)) == dict.fromkeys(CHECKS)


def test_an_image_whose_command_names_no_app_skips_what_needs_the_probe():
    plan = plan_checks(image(routes=False, spec="none"), set(CHECKS))
    assert plan["ws"] == NO_WS_ROUTE and plan["lifespan"] == NO_PROBE and plan["h2-tls"]
    # The burst needs nothing from the app: graceful runs on any image.
    assert plan["health"] is None and plan["http1"] is None and plan["h2c"] is None and plan["graceful"] is None
    custom = image(routes=False, command=["/start-my-server"])
    assert custom.probe_command is None and plan_checks(custom, set(CHECKS))["lifespan"] == NO_PROBE


def test_a_named_websocket_route_gets_the_ws_check_without_the_probe():
    assert plan_checks(image(routes=False, spec="none", ws_path="/chat"), set(CHECKS))["ws"] is None


def test_health_always_runs_and_unselected_checks_are_skipped():
    plan = plan_checks(image(), {"http1"})
    assert plan["health"] is None and plan["http1"] is None
    assert plan["ws"] == "not selected"


def test_graceful_passing_without_a_held_request_cannot_make_the_registry_stale():
    # daphne does not claim graceful; its pass is STALE only where requests were held in the app.
    probed = image(spec="daphne")
    assert judge(probed, "graceful", True, "held requests answered", 3.0).status is Status.STALE
    burst_only = image(spec="daphne", command=["/start-daphne"])
    result = judge(burst_only, "graceful", True, "burst answered whole", 3.0)
    assert result.status is Status.NA
    assert result.detail == "daphne kills in-flight requests on SIGTERM; observed: burst answered whole"
    assert judge(burst_only, "graceful", False, "exit 1", 3.0).status is Status.NA
    assert judge(image(), "graceful", False, "exit 1", 3.0).status is Status.FAIL


class _Images:
    def __init__(self, config, labels):
        self.image = type("Image", (), {"attrs": {"Config": config}, "labels": labels})()

    def get(self, ref):
        return self.image


class _Client:
    def __init__(self, config, labels=None):
        self.images = _Images(config, labels or {})


def test_describe_image_reads_the_command_and_pythonpath_the_probe_needs():
    config = {"Cmd": ["granian", "--interface", "asgi", "web:app"], "Env": ["PATH=/x", "PYTHONPATH=/app:/app/src"]}
    labels = {"imgtool.server": "granian", "imgtool.app": "web:app"}
    described = describe_image(_Client(config, labels), "img")
    assert described.command == ("granian", "--interface", "asgi", "web:app")
    assert described.pythonpath == "/app:/app/src"
    assert described.probe_command == ["granian", "--interface", "asgi", "imgtool_probe:app"]
    assert described.pythonpath == describe_image(_Client(config, labels), "img", environment={"A": "1"}).pythonpath
    assert describe_image(_Client(config, labels), "img", environment={"PYTHONPATH": "/mine"}).pythonpath == "/mine"


def test_protocol_flags_replace_only_the_protocol_claims():
    labels = {"imgtool.server": "uvicorn", "imgtool.app": "web:app"}
    described = describe_image(_Client({"Cmd": []}, labels), "img", protocols=["h2c"])
    assert described.claimed == {"health", "nonroot", "readonly", "h2c", "lifespan", "graceful"}


def test_an_image_of_an_unknown_server_is_held_to_lifespan_and_graceful():
    described = describe_image(_Client({"Cmd": ["serve"]}), "img")
    assert described.spec is None
    assert described.claimed == {"health", "nonroot", "readonly", "http1", "lifespan", "graceful"}


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
