"""`imgtool bench`: load each image on one CPU from the other, and report what it costs and delivers.

    choices  Generator, Via (the CLI's choices) and Tool (what generated a load)          enums only
    parse    what wrk, h2load and the built-in generator said (LoadResult, percentiles)   pure
    load     which generator, pinned to the load CPU, driven against a URL                 subprocess, network
    procs    the container's processes from /proc: workers, RSS                            pure, plus `docker exec`
    report   per-image results, the table, the plot                                       pure
    runner   Subject and Bench: start, wait for the first 200, measure, remove             Docker

Every container is published on 127.0.0.1 only, pinned to CPU 0 (`cpuset`), labelled
`imgtool.test=<run id>` and removed afterwards, also on Ctrl-C (toolkit.containers). Load is bounded:
a fixed number of connections for a fixed time.

The names below are what the CLI and benchmarks/run.py use, each imported from its module on first
use: the CLI's options import `toolkit.bench.choices` at start-up, which must not load httpx or Docker.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Generator": "toolkit.bench.choices",
    "Via": "toolkit.bench.choices",
    "parse_duration": "toolkit.bench.parse",
    "SERVER_CPUS": "toolkit.bench.load",
    "load_cpus": "toolkit.bench.load",
    "measure_url": "toolkit.bench.load",
    "pick_generators": "toolkit.bench.load",
    "wait_for_200": "toolkit.bench.load",
    "TABLE_COLUMNS": "toolkit.bench.report",
    "BenchReport": "toolkit.bench.report",
    "describe_generators": "toolkit.bench.report",
    "plot": "toolkit.bench.report",
    "require_matplotlib": "toolkit.bench.report",
    "table_rows": "toolkit.bench.report",
    "Bench": "toolkit.bench.runner",
    "Subject": "toolkit.bench.runner",
    "subject_for": "toolkit.bench.runner",
    # benchmarks/run.py takes its median from here.
    "median": "statistics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
