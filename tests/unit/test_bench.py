"""imgtool bench's pure parts: wrk/h2load parsers, percentiles, worker counting, the report, picking generators.

The fixtures are real output captured on this machine (granian image pinned to CPU 0, the tool
on CPU 1); the error one is wrk against a socket that answers 503 or closes at once.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from toolkit import bench
from toolkit.bench import load, parse, procs
from toolkit.bench.report import BenchReport, BenchResult
from toolkit.errors import EnvironmentProblem, UsageError

WRK = """\
Running 3s test @ http://127.0.0.1:33111/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.79ms  701.68us   7.45ms   73.06%
    Req/Sec    17.83k     1.15k   19.65k    77.42%
  Latency Distribution
     50%    1.76ms
     75%    2.17ms
     90%    2.62ms
     99%    3.67ms
  54958 requests in 3.10s, 8.86MB read
Requests/sec:  17730.37
Transfer/sec:      2.86MB
"""

WRK_ERRORS = """\
Running 2s test @ http://127.0.0.1:18777/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    51.35us   49.77us   2.58ms   97.42%
    Req/Sec    19.06k   700.10    20.13k    71.43%
  Latency Distribution
     50%   42.00us
     75%   57.00us
     90%   72.00us
     99%  171.00us
  39778 requests in 2.10s, 2.09MB read
  Socket errors: connect 0, read 79556, write 0, timeout 0
  Non-2xx or 3xx responses: 39778
Requests/sec:  18941.59
Transfer/sec:      0.99MB
"""

H2LOAD = """\
starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 0s of warm-up time and 3s of main duration for \
measurements.
Warm-up started for thread #0.
Main benchmark duration is started for thread #0.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 3.00s, 17614.00 req/s, 1.04MB/s
requests: 52842 total, 52922 started, 52842 done, 52842 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 52842 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 3.13MB (3277612) total, 465.38KB (476546) headers (space savings 91.73%), 1.76MB (1849470) data
                     min         max         mean         sd        +/- sd
time for request:      306us     16.34ms      4.52ms      1.82ms    76.71%
time for connect:       50us       117us        86us        21us    75.00%
time to 1st byte:     2.39ms      3.35ms      2.84ms       422us    62.50%
req/s           :    2184.04     2216.03     2200.79       10.72    75.00%
"""

# hypercorn, 4 connections x 8 streams: streams still open when the duration ends count as errored.
H2LOAD_ERRORED = """\
finished in 3.00s, 1334.67 req/s, 87.59KB/s
requests: 4028 total, 4036 started, 4028 done, 4004 succeeded, 24 failed, 24 errored, 0 timeout
status codes: 4004 2xx, 0 3xx, 0 4xx, 0 5xx
"""

# The first lines of an `h2load --log-file`: start (us since epoch), status, duration (us).
H2LOAD_LOG = """\
1795675253492223\t200\t1575
1795675253492223\t200\t1899
1795675253492362\t200\t1763
1795675253492359\t200\t2702
1795675253492358\t404\t2705
"""

# The /proc probe's output in `imgtool-reference-app:uvicorn` with WEB_CONCURRENCY=3.
UVICORN_3 = (
    "1\t0\t24684\t/opt/venv/bin/python /opt/venv/bin/uvicorn app:app --host 0.0.0.0 --port 8000 --workers 3\n"
    "8\t1\t11520\t/opt/venv/bin/python -B -c from multiprocessing.resource_tracker import main;main(6)\n"
    "9\t1\t41196\t/opt/venv/bin/python -B -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=7, "
    "pipe_handle=9) --multiprocessing-fork\n"
    "10\t1\t41136\t/opt/venv/bin/python -B -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=7, "
    "pipe_handle=13) --multiprocessing-fork\n"
    "11\t1\t41164\t/opt/venv/bin/python -B -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=7, "
    "pipe_handle=17) --multiprocessing-fork\n"
    "18\t0\t8364\tpython3 -c  import os  # imgtool-proc-probe for pid in sorted(...)\n"
)
# ... and in `imgtool-reference-app:granian` pinned to CPU 0: the parent and one worker.
GRANIAN_1 = (
    "1\t0\t27488\t/opt/venv/bin/python /opt/venv/bin/granian --interface asgi --workers 1 app:app\n"
    "8\t1\t38568\t/opt/venv/bin/python /opt/venv/bin/granian --interface asgi --workers 1 app:app\n"
    "14\t0\t8400\tpython3 -c  import os  # imgtool-proc-probe\n"
)


def test_parse_wrk_reads_rate_percentiles_and_no_errors():
    result = parse.parse_wrk(WRK)
    assert result.generator == "wrk" and result.protocol == "http1"
    assert result.requests == 54958
    assert result.seconds == pytest.approx(3.10)
    assert result.requests_per_second == pytest.approx(17730.37)
    assert result.p50_ms == pytest.approx(1.76)
    assert result.p99_ms == pytest.approx(3.67)
    assert result.mean_ms == pytest.approx(1.79)
    assert result.connections == 32
    assert result.errors == 0


def test_parse_wrk_counts_socket_errors_and_bad_statuses_in_microseconds():
    result = parse.parse_wrk(WRK_ERRORS)
    assert result.socket_errors == 79556
    assert result.bad_status == 39778
    assert result.errors == 79556 + 39778
    assert result.p50_ms == pytest.approx(0.042)
    assert result.p99_ms == pytest.approx(0.171)
    assert result.as_dict()["errors"] == result.errors


def test_parse_wrk_rejects_other_output():
    with pytest.raises(ValueError, match="not wrk output"):
        parse.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_h2load_summary_without_log():
    result = parse.parse_h2load(H2LOAD, connections=32)
    assert result.generator == "h2load" and result.protocol == "h2c"
    assert result.requests == 52842
    assert result.requests_per_second == pytest.approx(17614.0)
    assert result.mean_ms == pytest.approx(4.52)
    assert result.p50_ms is None and result.p99_ms is None
    assert result.errors == 0
    assert result.connections == 32


def test_parse_h2load_takes_percentiles_and_statuses_from_the_log():
    result = parse.parse_h2load(H2LOAD, H2LOAD_LOG)
    assert result.p50_ms == pytest.approx(1.899)
    assert result.p99_ms == pytest.approx(2.705)
    assert result.bad_status == 1  # the 404 in the log


def test_parse_h2load_counts_failed_streams_as_errors():
    result = parse.parse_h2load(H2LOAD_ERRORED)
    assert result.socket_errors == 24
    assert result.bad_status == 0


def test_parse_h2load_rejects_a_failed_run():
    with pytest.raises(ValueError, match="not h2load output"):
        parse.parse_h2load("unable to connect")


def test_parse_h2load_log_skips_junk():
    statuses, latencies = parse.parse_h2load_log("garbage\n1\t200\t1000\n\n2\tx\t5\n")
    assert statuses == [200]
    assert latencies == [1.0]


def test_percentiles_nearest_rank():
    values = list(range(1, 101))
    assert parse.percentiles(values, (50, 99, 100)) == (50, 99, 100)
    assert parse.percentiles([7.0], (50, 99)) == (7.0, 7.0)
    with pytest.raises(ValueError):
        parse.percentiles([], (50,))


def test_summarize_requests_matches_the_tools_shape():
    result = parse.summarize_requests([1.0, 2.0, 3.0, 4.0], 1, 2, 2.0, 8, "h2c")
    assert result.generator == "httpx" and result.protocol == "h2c"
    assert result.requests_per_second == 2.0
    assert result.p50_ms == 2.0 and result.p99_ms == 4.0 and result.mean_ms == 2.5
    assert result.errors == 3
    empty = parse.summarize_requests([], 0, 5, 1.0, 8, "http1")
    assert empty.p50_ms is None and empty.requests_per_second == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("10", 10), ("1500ms", 1.5), ("2m", 120), (" 3s ", 3), ("2.5s", 2.5)]
)
def test_parse_duration(text, seconds):
    assert bench.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10h", "0s", "500ms", "11m", "-1s"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError, match="--duration"):
        bench.parse_duration(text)


def test_workers_and_rss_from_uvicorn_with_three_workers():
    processes = procs.parse_processes(UVICORN_3)
    assert len(processes) == 6
    # The resource tracker is a process of the container, but not a worker; the probe is neither.
    assert procs.count_workers(processes) == 3
    assert len(procs.server_processes(processes)) == 5
    assert procs.rss_bytes(processes) == (24684 + 11520 + 41196 + 41136 + 41164) * 1024


def test_workers_from_granian_parent_and_one_worker():
    assert procs.count_workers(procs.parse_processes(GRANIAN_1)) == 1


def test_a_single_process_server_is_one_worker():
    processes = procs.parse_processes("1\t0\t30000\tdaphne --bind 0.0.0.0 --port 8000 app:app\n")
    assert procs.count_workers(processes) == 1


def test_an_init_as_pid_1_is_looked_through():
    text = (
        "1\t0\t900\t/sbin/docker-init -- /opt/venv/bin/python /opt/imgtool/launch.py granian\n"
        "7\t1\t27000\t/opt/venv/bin/python /opt/venv/bin/granian --workers 2 app:app\n"
        "9\t7\t38000\t/opt/venv/bin/python /opt/venv/bin/granian --workers 2 app:app\n"
        "10\t7\t38000\t/opt/venv/bin/python /opt/venv/bin/granian --workers 2 app:app\n"
    )
    assert procs.count_workers(procs.parse_processes(text)) == 2


def test_no_processes_is_zero_workers():
    assert procs.count_workers([]) == 0


def _report() -> BenchReport:
    report = BenchReport(
        duration_seconds=10,
        connections=32,
        path="/",
        generators={"http1": "wrk", "h2c": "h2load"},
        server_cpus="0",
        load_cpus="1",
        run_id="abc",
    )
    report.results.append(
        BenchResult(
            name="granian",
            image="imgtool-reference-app:granian",
            image_size_bytes=235_000_000,
            healthy_seconds=0.58,
            rss_bytes=70_000_000,
            processes=2,
            workers=1,
            http1=parse.parse_wrk(WRK),
            h2c=parse.parse_h2load(H2LOAD, H2LOAD_LOG, 32),
        )
    )
    report.results.append(BenchResult(name="broken", image="x:y", error="container exited with code 1: boom"))
    return report


def test_report_rows_and_json_shape():
    report = _report()
    rows = bench.table_rows(report)
    assert len(rows[0]) == len(bench.TABLE_COLUMNS)
    assert rows[0][:9] == ("granian", "235 MB", "0.58 s", "70 MB", "1", "17,730", "1.76 ms", "3.67 ms", "0")
    assert rows[0][9] == "17,614"
    assert rows[1][0] == "broken" and set(rows[1][2:]) == {"-"}
    data = json.loads(json.dumps(report.as_dict()))
    assert data["generators"] == {"http1": "wrk", "h2c": "h2load"}
    first = data["results"][0]
    assert first["http1"]["requests_per_second"] == pytest.approx(17730.37)
    assert first["h2c"]["errors"] == 1
    assert data["results"][1]["http1"] is None
    assert report.failed


def test_the_output_names_the_generator():
    report = _report()
    assert "http1: wrk, h2c: h2load" in bench.describe_generators(report)
    report.generators = {"http1": "httpx"}
    assert "built-in generator" in bench.describe_generators(report)


def test_plot_makes_a_png():
    pytest.importorskip("matplotlib")
    assert bench.plot(_report())[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_usage_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(UsageError, match=r"pip install -e '\.\[bench\]'"):
        bench.require_matplotlib()


def test_pick_generators(monkeypatch):
    monkeypatch.setattr(load.shutil, "which", lambda tool: None)
    assert bench.pick_generators("auto") == {"http1": "httpx", "h2c": "httpx"}
    with pytest.raises(EnvironmentProblem, match="apt-get install -y wrk nghttp2-client"):
        bench.pick_generators("wrk")
    monkeypatch.setattr(load.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert bench.pick_generators("auto") == {"http1": "wrk", "h2c": "h2load"}
    assert bench.pick_generators("httpx") == {"http1": "httpx", "h2c": "httpx"}
    with pytest.raises(UsageError, match="--generator"):
        bench.pick_generators("ab")


def test_the_clis_choices_load_neither_httpx_nor_docker():
    """The CLI's options name Generator and Via at start-up: that must not cost the load generators' imports."""
    code = "import sys, toolkit.bench.choices; print(sorted(m for m in ('httpx', 'docker') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_names_what_the_cli_and_benchmarks_use():
    for name in bench.__all__:
        assert getattr(bench, name) is not None
    assert bench.median([4, 1, 2, 3]) == 2.5  # statistics' own
    with pytest.raises(AttributeError):
        _ = bench.no_such_name
