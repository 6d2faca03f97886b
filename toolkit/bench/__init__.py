"""`imgtool bench`: load each image on one CPU from the other, and report what it costs and delivers.

    parse   what wrk, h2load and the built-in generator said (LoadResult, percentiles)   pure
    load    which generator, pinned to the load CPU, driven against a URL                 subprocess, network
    procs   the container's processes from /proc: workers, RSS                            pure, plus `docker exec`
    report  per-image results, the table, the plot                                       pure
    runner  Subject and Bench: start, wait for the first 200, measure, remove             Docker

Every container is published on 127.0.0.1 only, pinned to CPU 0 (`cpuset`), labelled
`imgtool.test=<run id>` and removed afterwards, also on Ctrl-C (toolkit.containers). Load is bounded:
a fixed number of connections for a fixed time. The names below are what the CLI and
benchmarks/run.py use; the rest is in the modules.
"""

# benchmarks/run.py takes its median from here.
from statistics import median

from toolkit.bench.load import SERVER_CPUS, Generator, Via, load_cpus, measure_url, pick_generators, wait_for_200
from toolkit.bench.parse import parse_duration
from toolkit.bench.report import TABLE_COLUMNS, BenchReport, describe_generators, plot, require_matplotlib, table_rows
from toolkit.bench.runner import Bench, Subject, subject_for

__all__ = [
    "SERVER_CPUS",
    "TABLE_COLUMNS",
    "Bench",
    "BenchReport",
    "Generator",
    "Subject",
    "Via",
    "describe_generators",
    "load_cpus",
    "measure_url",
    "median",
    "parse_duration",
    "pick_generators",
    "plot",
    "require_matplotlib",
    "subject_for",
    "table_rows",
    "wait_for_200",
]
