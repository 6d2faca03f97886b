"""Generating load: which generator runs, pinned to the load CPU, and driving it against a URL.

`wrk` (HTTP/1.1) and `h2load` (h2c) when installed, pinned to CPU 1 with `taskset`; else a built-in
asyncio + httpx generator (much slower than the servers it measures: its figures are a floor). Load is
bounded: a fixed number of connections for a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import httpx

from toolkit.bench.choices import Generator, Tool
from toolkit.bench.parse import LoadResult, parse_h2load, parse_wrk, summarize_requests
from toolkit.errors import EnvironmentProblem, UsageError

# The server's container runs on CPU 0 (cpuset), the load generator on CPU 1.
SERVER_CPUS = "0"
LOAD_CPU = 1
WARMUP_SECONDS = 1.0
HEALTH_TIMEOUT = 30.0
# h2 load: connections x streams per connection = the HTTP/1.1 concurrency.
H2_STREAMS = 8


class BenchFailure(Exception):
    """One image could not be measured; the report carries the reason and the run goes on."""


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


def pick_generators(choice: str = Generator.auto) -> dict[str, Tool]:
    """protocol → generator: wrk/h2load when installed (or forced), else the built-in httpx one."""
    try:
        choice = Generator(choice)
    except ValueError:
        raise UsageError(f"--generator {choice!r}: choose auto, wrk or httpx") from None
    if choice is Generator.wrk:
        missing = [tool for tool in (Tool.WRK, Tool.H2LOAD) if not shutil.which(tool)]
        if missing:
            raise EnvironmentProblem(
                f"{' and '.join(missing)} not installed: apt-get install -y wrk nghttp2-client (or --generator httpx)"
            )
    if choice is Generator.httpx:
        return {"http1": Tool.HTTPX, "h2c": Tool.HTTPX}
    return {
        "http1": Tool.WRK if shutil.which(Tool.WRK) else Tool.HTTPX,
        "h2c": Tool.H2LOAD if shutil.which(Tool.H2LOAD) else Tool.HTTPX,
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


def wrk_load(url: str, seconds: float, connections: int) -> LoadResult:
    whole = max(1, round(seconds))
    text = _run_tool([Tool.WRK, "-t1", f"-c{connections}", f"-d{whole}s", "--latency", url], whole)
    return parse_wrk(text, connections)


def h2load_load(url: str, seconds: float, connections: int) -> LoadResult:
    whole = max(1, round(seconds))
    clients = max(1, connections // H2_STREAMS)
    streams = max(1, connections // clients)
    with tempfile.TemporaryDirectory(prefix="imgtool-h2load-") as scratch:
        log_path = os.path.join(scratch, "requests.tsv")
        command = [Tool.H2LOAD, "-t1", f"-c{clients}", f"-m{streams}", f"-D{whole}", "--warm-up-time=1"]
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


def drive(url: str, protocol: str, generator: Tool, seconds: float, connections: int) -> LoadResult:
    if generator == Tool.WRK:
        return wrk_load(url, seconds, connections)
    if generator == Tool.H2LOAD:
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
    base_url: str, path: str, h2c: bool, generators: dict[str, Tool], seconds: float, connections: int
) -> tuple[LoadResult, LoadResult | None]:
    """Warm up, then HTTP/1.1 load, then h2c load when the server claims it."""
    url = base_url.rstrip("/") + path
    drive(url, "http1", generators["http1"], WARMUP_SECONDS, connections)
    http1 = drive(url, "http1", generators["http1"], seconds, connections)
    h2 = drive(url, "h2c", generators["h2c"], seconds, connections) if h2c else None
    return http1, h2
