"""`imgtool bench`: load each image on one CPU from the other, and report what it costs and delivers.

The top half is pure (parsing wrk/h2load output, percentiles, worker counting, the report); the
runner at the bottom talks to the engine and to the load generators. Every container is published
on 127.0.0.1 only, pinned to CPU 0 (`cpuset`), labelled `imgtool.test=<run id>` and removed
afterwards, also on Ctrl-C. Load is bounded: a fixed number of connections for a fixed time, only
to 127.0.0.1.

Load generators: `wrk` (HTTP/1.1) and `h2load` (h2c, for servers claiming it) when installed,
pinned to CPU 1 with `taskset`; else a built-in asyncio + httpx generator (much slower than the
servers it measures: its figures are a floor, and the report says which generator ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import httpx

from toolkit.errors import EnvironmentProblem, UsageError

SERVER_CPUS = "0"
LOAD_CPU = 1
WARMUP_SECONDS = 1.0
HEALTH_TIMEOUT = 30.0
# h2 load: connections x streams per connection = the HTTP/1.1 concurrency.
H2_STREAMS = 8
BENCH_ROLE = "bench"
# Processes that are not workers: multiprocessing's helpers, and the /proc probe itself.
HELPER_MARKERS = ("multiprocessing.resource_tracker", "multiprocessing.semaphore_tracker", "imgtool-proc-probe")
INIT_NAMES = ("docker-init", "tini", "dumb-init")

# ---------------------------------------------------------------------------------------------
# Pure: durations, parsers, percentiles, worker counting, the report.
# ---------------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_duration(text: str) -> float:
    """`10s`, `500ms`, `1m` or a plain number of seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match:
        raise UsageError(f"--duration {text!r} is not a duration: e.g. 10s, 500ms or 1m")
    value = float(match.group(1)) * {"ms": 0.001, None: 1.0, "s": 1.0, "m": 60.0}[match.group(2)]
    if not 1 <= value <= 600:
        raise UsageError(f"--duration {text} is out of range: pick between 1s and 10m")
    return value


def _to_ms(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)", value.strip())
    if not match:
        raise ValueError(f"not a latency: {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _bytes(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?B)", value.strip())
    if not match:
        return 0.0
    return float(match.group(1)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[match.group(2)]


@dataclass
class LoadResult:
    generator: str  # wrk, h2load or httpx
    protocol: str  # http1 or h2c
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    socket_errors: int  # connect/read/write/timeout (wrk), failed streams (h2load), transport errors (httpx)
    bad_status: int  # responses that were not 2xx (wrk counts status > 399)
    connections: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors}


def parse_wrk(text: str, connections: int = 0) -> LoadResult:
    """The report of `wrk --latency`: req/s, p50/p99, socket errors and non-2xx/3xx responses."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", text, re.M)
    if not rps or not total:
        raise ValueError("not wrk output: no 'Requests/sec' line")
    percentiles = {int(p): _to_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.M)}
    mean = re.search(r"^\s+Latency\s+(\S+)", text, re.M)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    threads = re.search(r"(\d+) threads and (\d+) connections", text)
    return LoadResult(
        generator="wrk",
        protocol="http1",
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2)) / 1000,
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        mean_ms=_to_ms(mean.group(1)) if mean else None,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        bad_status=int(bad.group(1)) if bad else 0,
        connections=int(threads.group(2)) if threads else connections,
    )


def parse_h2load(text: str, log: str = "", connections: int = 0) -> LoadResult:
    """h2load's summary; p50/p99 come from its `--log-file` (one request per line), when given."""
    finished = re.search(r"^finished in ([\d.]+\w+), ([\d.]+) req/s", text, re.M)
    counts = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
        r"(\d+) timeout",
        text,
        re.M,
    )
    if not finished or not counts:
        raise ValueError("not h2load output: no 'finished in' and 'requests:' lines")
    _total, _started, done, _succeeded, failed, _errored, timeout = (int(n) for n in counts.groups())
    status = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    bad_status = sum(int(n) for n in status.groups()[1:]) if status else 0
    mean = re.search(r"^time for request:\s+\S+\s+\S+\s+(\S+)", text, re.M)
    rps = float(finished.group(2))
    statuses, latencies = parse_h2load_log(log)
    p50, p99 = percentiles(latencies, (50, 99)) if latencies else (None, None)
    if latencies:
        bad_status = sum(1 for code in statuses if not 200 <= code < 300)
    return LoadResult(
        generator="h2load",
        protocol="h2c",
        requests=done,
        seconds=done / rps if rps else 0.0,
        requests_per_second=rps,
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=_to_ms(mean.group(1)) if mean else None,
        # h2load's "failed" counts errored streams and non-2xx/3xx responses; keep statuses apart.
        socket_errors=max(failed - bad_status, 0) + timeout,
        bad_status=bad_status,
        connections=connections,
    )


def parse_h2load_log(text: str) -> tuple[list[int], list[float]]:
    """h2load --log-file lines `start_us<TAB>status<TAB>duration_us` → (statuses, latencies in ms)."""
    statuses: list[int] = []
    latencies: list[float] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        with contextlib.suppress(ValueError):
            statuses.append(int(parts[1]))
            latencies.append(int(parts[2]) / 1000)
    return statuses, latencies


def percentiles(values: Sequence[float], points: Sequence[float]) -> tuple[float, ...]:
    """Nearest-rank percentiles (what wrk and most load tools report)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return tuple(ordered[max(0, math.ceil(point / 100 * len(ordered)) - 1)] for point in points)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize_requests(
    latencies_ms: Sequence[float],
    bad_status: int,
    transport_errors: int,
    seconds: float,
    connections: int,
    protocol: str,
) -> LoadResult:
    """The built-in generator's raw samples → the same shape as wrk's and h2load's reports."""
    p50, p99 = percentiles(latencies_ms, (50, 99)) if latencies_ms else (None, None)
    done = len(latencies_ms)
    return LoadResult(
        generator="httpx",
        protocol=protocol,
        requests=done,
        seconds=seconds,
        requests_per_second=done / seconds if seconds else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=sum(latencies_ms) / done if done else None,
        socket_errors=transport_errors,
        bad_status=bad_status,
        connections=connections,
    )


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    rss_kb: int
    cmdline: str


# Run inside the container with its own python: one line per process, from /proc.
PROC_PROBE = r"""
import os  # imgtool-proc-probe
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        status = open(f"/proc/{pid}/status").read()
        raw = open(f"/proc/{pid}/cmdline", "rb").read()
        cmdline = raw.replace(b"\0", b" ").replace(b"\n", b" ").decode(errors="replace").strip()
    except OSError:
        continue
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = fields.get("VmRSS", "0 kB").split()[0]
    print(pid, fields["PPid"].strip(), rss, cmdline, sep="\t")
"""


def parse_processes(text: str) -> list[Process]:
    processes = []
    for line in text.splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[0].isdigit():
            processes.append(Process(int(parts[0]), int(parts[1]), int(parts[2] or 0), parts[3]))
    return processes


def server_processes(processes: Sequence[Process]) -> list[Process]:
    """The container's own processes: not the probe, nor anything started by `docker exec` (PPid 0)."""
    return [p for p in processes if (p.pid == 1 or p.ppid != 0) and "imgtool-proc-probe" not in p.cmdline]


def count_workers(processes: Sequence[Process]) -> int:
    """Workers serving requests: the server's children, or the server itself when it has none.

    An init (docker-init, tini) as PID 1 is looked through; multiprocessing's resource tracker
    is not a worker.
    """
    mine = [p for p in server_processes(processes) if not any(m in p.cmdline for m in HELPER_MARKERS)]
    if not mine:
        return 0
    root = next((p for p in mine if p.pid == 1), min(mine, key=lambda p: p.pid))
    while True:
        children = [p for p in mine if p.ppid == root.pid]
        is_init = any(name in root.cmdline.split(" ", 1)[0] for name in INIT_NAMES)
        if is_init and len(children) == 1:
            root = children[0]
            continue
        return len(children) or 1


def rss_bytes(processes: Sequence[Process]) -> int:
    return sum(p.rss_kb for p in server_processes(processes)) * 1024


@dataclass
class BenchResult:
    name: str
    image: str
    image_size_bytes: int = 0
    healthy_seconds: float | None = None
    rss_bytes: int | None = None
    processes: int | None = None
    workers: int | None = None
    http1: LoadResult | None = None
    h2c: LoadResult | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["http1"] = self.http1.as_dict() if self.http1 else None
        data["h2c"] = self.h2c.as_dict() if self.h2c else None
        return data


@dataclass
class BenchReport:
    duration_seconds: float
    connections: int
    path: str
    generators: dict[str, str]
    server_cpus: str
    load_cpus: str
    run_id: str
    results: list[BenchResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(result.error for result in self.results)

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "duration_seconds": self.duration_seconds,
            "connections": self.connections,
            "path": self.path,
            "generators": self.generators,
            "server_cpus": self.server_cpus,
            "load_cpus": self.load_cpus,
            "results": [result.as_dict() for result in self.results],
        }


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


TABLE_COLUMNS = (
    "server",
    "image",
    "healthy",
    "RSS",
    "workers",
    "req/s",
    "p50",
    "p99",
    "errors",
    "h2c req/s",
    "h2c p50",
    "h2c p99",
    "h2c errors",
)


def table_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """One row per image, each cell already formatted (sizes in MB, latencies in ms)."""
    rows = []
    for r in report.results:
        h1, h2 = r.http1, r.h2c
        rows.append(
            (
                r.name,
                _fmt(r.image_size_bytes / 1e6 if r.image_size_bytes else None, ".0f", " MB"),
                _fmt(r.healthy_seconds, ".2f", " s"),
                _fmt(r.rss_bytes / 1e6 if r.rss_bytes is not None else None, ".0f", " MB"),
                _fmt(r.workers, "d"),
                _fmt(h1.requests_per_second if h1 else None, ",.0f"),
                _fmt(h1.p50_ms if h1 else None, ".2f", " ms"),
                _fmt(h1.p99_ms if h1 else None, ".2f", " ms"),
                _fmt(h1.errors if h1 else None, "d"),
                _fmt(h2.requests_per_second if h2 else None, ",.0f"),
                _fmt(h2.p50_ms if h2 else None, ".2f", " ms"),
                _fmt(h2.p99_ms if h2 else None, ".2f", " ms"),
                _fmt(h2.errors if h2 else None, "d"),
            )
        )
    return rows


def describe_generators(report: BenchReport) -> str:
    parts = [f"{protocol}: {tool}" for protocol, tool in report.generators.items()]
    note = ""
    if "httpx" in report.generators.values():
        note = " (built-in generator: far slower than the servers, so req/s is a floor; install wrk/h2load)"
    return (
        f"load: {', '.join(parts)}{note}; {report.connections} connections for {report.duration_seconds:g} s on "
        f"{report.path}; server on CPU {report.server_cpus}, load on CPU {report.load_cpus}"
    )


def plot(report: BenchReport, path: str) -> None:
    """A PNG: req/s per server (HTTP/1.1 and h2c bars) and p99 latency. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report.results if r.http1]
    names = [r.name for r in results]
    positions = range(len(results))
    width = 0.4
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    h1 = [r.http1.requests_per_second for r in results]
    h2 = [r.h2c.requests_per_second if r.h2c else 0 for r in results]
    throughput.bar([p - width / 2 for p in positions], h1, width, label="HTTP/1.1")
    throughput.bar([p + width / 2 for p in positions], h2, width, label="h2c (where claimed)")
    throughput.set_xticks(list(positions), names)
    throughput.set_ylabel("requests/s")
    throughput.set_title("Throughput (server on 1 CPU)")
    throughput.legend()
    latency.bar(list(positions), [r.http1.p99_ms or 0 for r in results], 0.6, color="tab:red")
    latency.set_xticks(list(positions), names)
    latency.set_ylabel("ms")
    latency.set_title(f"HTTP/1.1 p99 latency, {report.connections} connections")
    figure.suptitle(f"imgtool bench: {', '.join(f'{k} via {v}' for k, v in report.generators.items())}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install -e '.[bench]'") from None


# ---------------------------------------------------------------------------------------------
# The edge: load generators (subprocesses or httpx) and containers.
# ---------------------------------------------------------------------------------------------


def load_cpus() -> set[int] | None:
    """The CPU the load generator is pinned to; None where the machine has only one."""
    try:
        available = os.sched_getaffinity(0)
    except AttributeError:
        return None
    return {LOAD_CPU} if LOAD_CPU in available and len(available) > 1 else None


def _pinned(command: list[str]) -> list[str]:
    cpus = load_cpus()
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    return command


def pick_generators(choice: str = "auto") -> dict[str, str]:
    """protocol → generator: wrk/h2load when installed (or forced), else the built-in httpx one."""
    if choice not in ("auto", "wrk", "httpx"):
        raise UsageError(f"--generator {choice!r}: choose auto, wrk or httpx")
    if choice == "wrk":
        missing = [tool for tool in ("wrk", "h2load") if not shutil.which(tool)]
        if missing:
            raise EnvironmentProblem(
                f"{' and '.join(missing)} not installed: apt-get install -y wrk nghttp2-client (or --generator httpx)"
            )
    if choice == "httpx":
        return {"http1": "httpx", "h2c": "httpx"}
    return {
        "http1": "wrk" if shutil.which("wrk") else "httpx",
        "h2c": "h2load" if shutil.which("h2load") else "httpx",
    }


def _run_tool(command: list[str], seconds: float) -> str:
    try:
        result = subprocess.run(_pinned(command), capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"{command[0]} did not finish within {seconds + 30:.0f} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise BenchFailure(f"{command[0]} exited {result.returncode}: {last}")
    return result.stdout


class BenchFailure(Exception):
    """One image could not be measured; the report carries the reason and the run goes on."""


def wrk_load(url: str, seconds: float, connections: int) -> LoadResult:
    whole = max(1, round(seconds))
    text = _run_tool(["wrk", "-t1", f"-c{connections}", f"-d{whole}s", "--latency", url], whole)
    return parse_wrk(text, connections)


def h2load_load(url: str, seconds: float, connections: int) -> LoadResult:
    whole = max(1, round(seconds))
    clients = max(1, connections // H2_STREAMS)
    streams = max(1, connections // clients)
    with tempfile.TemporaryDirectory(prefix="imgtool-h2load-") as scratch:
        log_path = os.path.join(scratch, "requests.tsv")
        command = ["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{whole}", "--warm-up-time=1"]
        text = _run_tool([*command, f"--log-file={log_path}", url], whole + 1)
        with open(log_path) as log:
            return parse_h2load(text, log.read(), clients * streams)


async def _httpx_load(url: str, seconds: float, connections: int, http2: bool) -> LoadResult:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    counts = {"bad": 0, "transport": 0}
    async with httpx.AsyncClient(limits=limits, http1=not http2, http2=http2, timeout=5.0) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds

        async def worker() -> None:
            while loop.time() < deadline:
                began = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    counts["transport"] += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                if not 200 <= response.status_code < 300:
                    counts["bad"] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = loop.time() - started
    protocol = "h2c" if http2 else "http1"
    return summarize_requests(latencies, counts["bad"], counts["transport"], elapsed, connections, protocol)


def httpx_load(url: str, seconds: float, connections: int, http2: bool = False) -> LoadResult:
    """The built-in generator, pinned to the load CPU for its run (this thread only)."""
    cpus = load_cpus()
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        return asyncio.run(_httpx_load(url, seconds, connections, http2))
    finally:
        if cpus:
            os.sched_setaffinity(0, before)


def drive(url: str, protocol: str, generator: str, seconds: float, connections: int) -> LoadResult:
    if generator == "wrk":
        return wrk_load(url, seconds, connections)
    if generator == "h2load":
        return h2load_load(url, seconds, connections)
    return httpx_load(url, seconds, connections, http2=protocol == "h2c")


def wait_for_200(
    url: str,
    timeout: float = HEALTH_TIMEOUT,
    alive: Callable[[], str | None] | None = None,
    configured: bool = True,
) -> float:
    """Poll until GET url is healthy; returns the monotonic time it was. `alive` names a death.

    `configured`: a health route, which must answer 2xx; else any answer below 500 (the image's rule).
    """
    from toolkit.smoke.checks import health_ok

    deadline = time.monotonic() + timeout
    checks = 0
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                if health_ok(client.get(url).status_code, configured):
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            checks += 1
            if alive is not None and checks % 20 == 0:
                problem = alive()
                if problem:
                    raise BenchFailure(problem)
            if time.monotonic() > deadline:
                raise BenchFailure(f"{url} was not healthy within {timeout:.0f} s")
            time.sleep(0.01)


def measure_url(
    base_url: str, path: str, h2c: bool, generators: dict[str, str], seconds: float, connections: int
) -> tuple[LoadResult, LoadResult | None]:
    """Warm up, then HTTP/1.1 load, then h2c load when the server claims it."""
    url = base_url.rstrip("/") + path
    drive(url, "http1", generators["http1"], WARMUP_SECONDS, connections)
    http1 = drive(url, "http1", generators["http1"], seconds, connections)
    h2 = drive(url, "h2c", generators["h2c"], seconds, connections) if h2c else None
    return http1, h2


@dataclass(frozen=True)
class Subject:
    """An image to measure, and how to run it."""

    name: str
    ref: str
    port: int = 8000
    # None: no health route; any answer below 500 at / counts.
    health_path: str | None = "/health"
    h2c: bool = False
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)


def subject_for(client, ref: str, health_path: str | None = None) -> Subject:
    """What imgtool's labels say about an image (server, port, health path, h2c claim); `health_path`
    overrides the label, for the image's own HEALTHCHECK too (HEALTH_PATH)."""
    from toolkit.smoke.runner import describe_image

    image = describe_image(client, ref, health_path=health_path)
    return Subject(
        name=image.name,
        ref=ref,
        port=image.port,
        health_path=image.health_path,
        h2c="h2c" in image.claimed,
        environment=dict(image.environment),
    )


class Bench:
    """Starts, measures and removes containers; everything it started carries the run id label."""

    def __init__(self, client, run_id: str, via: str = "bridge"):
        self.client = client
        self.run_id = run_id
        # "bridge": load goes to the container's own address, as a load balancer's would;
        # "published": through the 127.0.0.1 port, i.e. Docker's userland proxy, which costs the
        # fastest server about a quarter of its throughput on this 2-core machine (measured).
        self.via = via

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc_info) -> None:
        from toolkit.smoke.runner import remove_test_containers

        remove_test_containers(self.client, self.run_id)

    @contextlib.contextmanager
    def container(self, subject: Subject, role: str = BENCH_ROLE, **options) -> Iterator:
        """A started container (CPU 0, 127.0.0.1); yields (container, seconds from `run` to started)."""
        from toolkit.smoke.runner import TEST_LABEL

        slug = re.sub(r"[^a-zA-Z0-9_.-]", "-", subject.name)
        run_options = {"cpuset_cpus": SERVER_CPUS, **options}
        if subject.command is not None:
            run_options["command"] = list(subject.command)
        container = self.client.containers.run(
            subject.ref,
            detach=True,
            name=f"imgtool-bench-{self.run_id}-{slug}-{role}-{time.monotonic_ns() % 10**6}",
            labels={TEST_LABEL: self.run_id, "imgtool.test.role": role},
            ports={f"{subject.port}/tcp": ("127.0.0.1", None)},
            environment=dict(subject.environment),
            **run_options,
        )
        try:
            yield container
        finally:
            import docker.errors

            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)

    def start_healthy(self, subject: Subject, **options):
        """Context manager yielding (container, base URL, seconds from `docker run` to first 200)."""
        return self._start_healthy(subject, **options)

    @contextlib.contextmanager
    def _start_healthy(self, subject: Subject, **options):
        began = time.monotonic()
        with self.container(subject, **options) as container:
            container.reload()
            bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{subject.port}/tcp") or []
            if not bindings:
                raise BenchFailure(f"port {subject.port} was not published (container {container.status})")
            address = container.attrs["NetworkSettings"].get("IPAddress")
            if self.via == "bridge" and address:
                base_url = f"http://{address}:{subject.port}"
            else:
                base_url = f"http://127.0.0.1:{bindings[0]['HostPort']}"

            def alive() -> str | None:
                container.reload()
                if container.status in ("exited", "dead"):
                    tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
                    last = tail[-1] if tail else "no output"
                    return f"container exited with code {container.attrs['State']['ExitCode']}: {last}"
                return None

            path = subject.health_path or "/"
            ready = wait_for_200(base_url + path, alive=alive, configured=subject.health_path is not None)
            yield container, base_url, ready - began

    def time_to_healthy(self, subject: Subject, **options) -> float:
        with self.start_healthy(subject, **options) as (_, _, seconds):
            return seconds

    def processes(self, container) -> list[Process]:
        """The container's processes from /proc, read by its own python; [] when it has none."""
        for python in ("python3", "python"):
            result = container.exec_run([python, "-c", PROC_PROBE])
            if result.exit_code == 0:
                return parse_processes(result.output.decode(errors="replace"))
        return []

    def settled_workers(self, container, timeout: float = 15.0, still: float = 1.0) -> int:
        """The worker count once it has held still for `still` seconds (workers start one by one)."""
        last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = count_workers(self.processes(container))
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= still:
                break
            time.sleep(0.25)
        return last

    def measure(
        self, subject: Subject, generators: dict[str, str], seconds: float, connections: int, path: str
    ) -> BenchResult:
        import docker.errors

        result = BenchResult(name=subject.name, image=subject.ref)
        try:
            result.image_size_bytes = int(self.client.images.get(subject.ref).attrs["Size"])
            with self.start_healthy(subject) as (container, base_url, healthy):
                result.healthy_seconds = healthy
                result.http1, result.h2c = measure_url(base_url, path, subject.h2c, generators, seconds, connections)
                processes = self.processes(container)
                if processes:
                    result.rss_bytes = rss_bytes(processes)
                    result.processes = len(server_processes(processes))
                    result.workers = count_workers(processes)
                else:
                    stats = container.stats(stream=False)
                    result.rss_bytes = stats.get("memory_stats", {}).get("usage")
        except (BenchFailure, docker.errors.APIError, ValueError) as exc:
            result.error = str(exc).splitlines()[0][:300]
        return result
