"""The bench report: per-image results, the table's rows, the line naming the load, and the plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from toolkit.bench.choices import Tool
from toolkit.bench.parse import LoadResult
from toolkit.errors import UsageError


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
    generators: dict[str, Tool]
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
    if Tool.HTTPX in report.generators.values():
        note = " (built-in generator: far slower than the servers, so req/s is a floor; install wrk/h2load)"
    return (
        f"load: {', '.join(parts)}{note}; {report.connections} connections for {report.duration_seconds:g} s on "
        f"{report.path}; server on CPU {report.server_cpus}, load on CPU {report.load_cpus}"
    )


def plot(report: BenchReport) -> bytes:
    """A PNG: req/s per server (HTTP/1.1 and h2c bars) and p99 latency. Needs matplotlib."""
    import io

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
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    return image.getvalue()


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install -e '.[bench]'") from None
