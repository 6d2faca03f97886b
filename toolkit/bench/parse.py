"""What the load generators said: wrk's and h2load's reports, the built-in generator's samples, as LoadResult.

Pure: text and numbers in, numbers out.
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from toolkit.bench.choices import Tool
from toolkit.errors import UsageError

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


@dataclass
class LoadResult:
    generator: Tool
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
    points = {int(p): _to_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.M)}
    mean = re.search(r"^\s+Latency\s+(\S+)", text, re.M)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    threads = re.search(r"(\d+) threads and (\d+) connections", text)
    return LoadResult(
        generator=Tool.WRK,
        protocol="http1",
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2)) / 1000,
        requests_per_second=float(rps.group(1)),
        p50_ms=points.get(50),
        p99_ms=points.get(99),
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
        generator=Tool.H2LOAD,
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
    """Nearest-rank percentiles: what wrk and most load tools report. (`statistics.quantiles` interpolates
    between samples, so its p99 would be a latency no request had.)"""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return tuple(ordered[max(0, math.ceil(point / 100 * len(ordered)) - 1)] for point in points)


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
        generator=Tool.HTTPX,
        protocol=protocol,
        requests=done,
        seconds=seconds,
        requests_per_second=done / seconds if seconds else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=statistics.fmean(latencies_ms) if done else None,
        socket_errors=transport_errors,
        bad_status=bad_status,
        connections=connections,
    )
