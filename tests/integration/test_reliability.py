"""Reliability on real containers: SIGTERM under load, dead workers, crashing apps, parallel runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, RUN_ID, TAG_PREFIX, cli_env
from tests.integration.conftest import copy_reference_app, edit, run_cli, running, wait_for_health
from tests.integration.drain import Outcome, drain_under_load
from toolkit.containers import TEST_LABEL
from toolkit.servers import GRACEFUL_TIMEOUT, SERVERS

STOP_GRACE = GRACEFUL_TIMEOUT + 5
LIST_PROCESSES = (
    "import json, os\n"
    "rows = []\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
    "        cmd = open(f'/proc/{pid}/cmdline').read().replace('\\0', ' ')\n"
    "    except OSError:\n"
    "        continue\n"
    "    rows.append([int(pid), int(stat[1]), cmd])\n"
    "print(json.dumps(rows))\n"
)


def workers(container) -> list[int]:
    """PIDs of the server's worker processes: children of PID 1, less helpers."""
    output = container.exec_run(["python3", "-c", LIST_PROCESSES]).output
    rows = json.loads(output)
    return [
        pid for pid, ppid, cmd in rows if ppid == 1 and "resource_tracker" not in cmd and "-c import json" not in cmd
    ]


@pytest.mark.parametrize("server", SERVERS)
def test_sigterm_under_load_loses_no_in_flight_request(docker_client, reference_images, server):
    spec = SERVERS[server]
    with running(docker_client, reference_images[server]) as (container, target):
        wait_for_health(target.url("/health"))

        def stop() -> int:
            container.stop(timeout=STOP_GRACE)
            container.reload()
            return container.attrs["State"]["ExitCode"]

        result = drain_under_load(target, stop, clients=16, duration=5.0, stop_after=2.0, request_ms=200)
    print(f"\n{server} SIGTERM under load: {result.summary()}")
    assert result.before[Outcome.OK] > 16, "the load never got going"
    assert result.damaged == 0, "a response was cut short or was not a 200"
    assert result.stop_seconds < STOP_GRACE, "the container outlived its grace period"
    if spec.graceful:
        assert result.lost_in_flight == 0
        assert result.exit_code in spec.clean_exit_codes
    else:
        # The registry says this server drops in-flight requests; if that stops being true, say so.
        assert result.lost_in_flight > 0, f"{server} drained cleanly: mark it graceful in servers.py"


# The servers that run several workers ($WORKERS in their command): one of two is killed.
@pytest.mark.parametrize("server", [name for name, spec in SERVERS.items() if "$WORKERS" in " ".join(spec.command)])
def test_killed_worker_is_replaced(docker_client, reference_images, server):
    spec = SERVERS[server]
    # A server that cannot respawn is brought back by the restart policy the compose file sets
    # (hypercorn exits 0 when a worker dies, so "on-failure" would not do).
    policy = {} if spec.respawns_workers else {"restart_policy": {"Name": "unless-stopped"}}
    with running(docker_client, reference_images[server], environment={"WEB_CONCURRENCY": "2"}, **policy) as (
        container,
        target,
    ):
        wait_for_health(target.url("/health"))
        before = workers(container)
        assert len(before) == 2, f"expected two workers, found {before}"
        container.exec_run(["python3", "-c", f"import os, signal; os.kill({before[-1]}, signal.SIGKILL)"])
        killed = time.monotonic()
        failures = 0
        while True:
            assert time.monotonic() - killed < 30, f"{server} did not recover within 30 s"
            container.reload()
            # A restarted container gets a new ephemeral host port.
            bindings = container.attrs["NetworkSettings"]["Ports"].get("8000/tcp") or []
            url = f"http://127.0.0.1:{bindings[0]['HostPort']}/health" if bindings else target.url("/health")
            try:
                healthy = wait_for_health(url, timeout=0.5).status_code == 200
            except AssertionError:
                healthy, failures = False, failures + 1
            if container.status == "running" and healthy:
                current = workers(container)
                # After a restart the new container namespace may reuse the same PIDs.
                replaced = before[-1] not in current or container.attrs["RestartCount"] >= 1
                if len(current) == 2 and replaced:
                    break
            time.sleep(0.05)
        recovered = time.monotonic() - killed
    print(f"\n{server}: worker replaced in {recovered:.2f}s; /health failed {failures} time(s) meanwhile")
    if spec.respawns_workers:
        assert failures == 0, "/health must stay 200 while the surviving worker serves"
    else:
        assert container.attrs["RestartCount"] >= 1


@pytest.fixture(scope="module")
def crash_on_start_images(docker_client, reference_images, tmp_path_factory):
    """The reference app, raising at import when CRASH_AT_IMPORT is set (so the build's import check passes)."""
    context = copy_reference_app(tmp_path_factory.mktemp("crash-at-import") / "app")
    edit(
        context / "app.py",
        "STATE = {",
        'if os.environ.get("CRASH_AT_IMPORT"):\n'
        '    raise RuntimeError("imgtool-test: crashed at import on purpose")\n\n'
        "STATE = {",
    )
    tags = {}
    for server in SERVERS:
        tag = f"{TAG_PREFIX}imgtool-test-broken-crash-at-import:{server}"
        result = run_cli("build", "--server", server, "--context", str(context), "--tag", tag, "--json")
        assert result.returncode == 0, result.stderr[-2000:]
        tags[server] = tag
    yield tags
    for tag in tags.values():
        docker_client.images.remove(tag, force=True)


@pytest.mark.parametrize("server", SERVERS)
def test_app_crashing_at_start_exits_and_reports_the_traceback(crash_on_start_images, server):
    result = run_cli(
        "test", "--image", crash_on_start_images[server], "--check", "health", "--env", "CRASH_AT_IMPORT=1", "--json"
    )
    report = json.loads(result.stdout)
    health = report["servers"][0]["results"][0]
    assert result.returncode == 1
    assert health["status"] == "FAIL"
    assert "exited with code" in health["detail"], f"must exit, not hang: {health['detail']}"
    assert health["detail"] != "container exited with code 0 before becoming healthy"
    assert "RuntimeError: imgtool-test: crashed at import on purpose" in report["servers"][0]["logs"]


def test_two_smoke_runs_at_once_do_not_collide(docker_client, reference_images):
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "toolkit", "test", "--demo", "--server", "granian", "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env({"IMGTOOL_RUN_ID": f"{RUN_ID}-{index}"}),
        )
        for index in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
        assert json.loads(stdout)["ok"] is True
    for index in range(2):
        label = f"{TEST_LABEL}={RUN_ID}-{index}"
        assert docker_client.containers.list(all=True, filters={"label": label}) == []
