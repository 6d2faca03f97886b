"""`imgtool bench` against real containers, and the worker count following the container's CPU limit.

No timed assertions: performance is measured by benchmarks/run.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, RUN_ID, cli_env, run_cli
from tests.integration.conftest import interrupt_once_running, leftover_test_containers
from toolkit import bench


def test_bench_granian_json(docker_client, reference_images):
    assert leftover_test_containers(docker_client) == [], "an earlier test left containers"
    result = run_cli(
        "bench", "--demo", "--server", "granian", "--duration", "2s", "--connections", "8", "--json", timeout=180
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["connections"] == 8 and report["duration_seconds"] == 2 and report["path"] == "/"
    assert set(report["generators"]) == {"http1", "h2c"}  # granian claims h2c
    assert report["server_cpus"] == "0"
    [entry] = report["results"]
    assert entry["name"] == "granian" and entry["image"] == reference_images["granian"]
    assert entry["error"] is None
    assert entry["image_size_bytes"] > 0 and entry["healthy_seconds"] > 0
    assert entry["rss_bytes"] > 0 and entry["workers"] == 1  # pinned to one CPU: one worker
    for protocol in ("http1", "h2c"):
        load = entry[protocol]
        assert load["protocol"] == protocol
        assert load["generator"] == report["generators"][protocol]
        assert load["requests"] > 0 and load["requests_per_second"] > 0
        assert load["errors"] == load["socket_errors"] + load["bad_status"]
        assert load["bad_status"] == 0
    assert leftover_test_containers(docker_client) == []


def test_bench_with_the_builtin_generator_says_so(docker_client, reference_images):
    result = run_cli(
        "bench",
        "--demo",
        "--server",
        "uvicorn",
        "--duration",
        "1s",
        "--connections",
        "4",
        "--generator",
        "httpx",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "uvicorn" in result.stdout
    assert "http1: httpx (built-in generator" in result.stdout
    assert leftover_test_containers(docker_client) == []


def test_bench_plot_without_matplotlib_is_one_line(tmp_path):
    """A python that cannot import matplotlib: blocked with a None entry in sys.modules."""
    code = "import sys; sys.modules['matplotlib'] = None; sys.argv[0] = 'imgtool'; from toolkit.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "bench", "--plot", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["imgtool: error: --plot needs matplotlib: pip install -e '.[bench]'"]


def test_ctrl_c_during_bench_leaves_nothing_behind(docker_client, reference_images):
    # Two seconds into the load, not during start-up.
    interrupt_once_running(docker_client, "bench", "--demo", "--server", "granian", "--duration", "10s", settle=2)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_worker_count_follows_the_cpu_limit_and_the_env_override(docker_client, reference_images, server):
    subject = bench.Subject(name=server, ref=reference_images[server])
    override = bench.Subject(name=server, ref=reference_images[server], environment={"WEB_CONCURRENCY": "3"})
    counts = {}
    with bench.Bench(docker_client, RUN_ID) as runner:
        for case, chosen, options in (
            ("cpuset 0", subject, {"cpuset_cpus": "0"}),
            ("--cpus 1", subject, {"cpuset_cpus": None, "nano_cpus": 1_000_000_000}),
            ("WEB_CONCURRENCY=3", override, {"cpuset_cpus": "0"}),
        ):
            with runner.start_healthy(chosen, **options) as (container, _, _):
                counts[case] = runner.settled_workers(container)
    assert counts == {"cpuset 0": 1, "--cpus 1": 1, "WEB_CONCURRENCY=3": 3}
    assert leftover_test_containers(docker_client) == []
