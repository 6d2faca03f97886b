"""A container's processes, read from its /proc by its own python: worker count and memory.

The parsing and counting are pure; `read_processes` and `settled_workers` exec the probe in a container.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

# Processes that are not workers: multiprocessing's helpers, and the probe itself (PROC_PROBE's marker).
PROBE_MARKER = "imgtool-proc-probe"
HELPER_MARKERS = ("multiprocessing.resource_tracker", "multiprocessing.semaphore_tracker", PROBE_MARKER)
INIT_NAMES = ("docker-init", "tini", "dumb-init")

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


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    rss_kb: int
    cmdline: str


def parse_processes(text: str) -> list[Process]:
    processes = []
    for line in text.splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[0].isdigit():
            processes.append(Process(int(parts[0]), int(parts[1]), int(parts[2] or 0), parts[3]))
    return processes


def server_processes(processes: Sequence[Process]) -> list[Process]:
    """The container's own processes: not the probe, nor anything started by `docker exec` (PPid 0)."""
    return [p for p in processes if (p.pid == 1 or p.ppid != 0) and PROBE_MARKER not in p.cmdline]


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


def read_processes(container) -> list[Process]:
    """The container's processes from /proc, read by its own python; [] when it has none."""
    for python in ("python3", "python"):
        result = container.exec_run([python, "-c", PROC_PROBE])
        if result.exit_code == 0:
            return parse_processes(result.output.decode(errors="replace"))
    return []


def settled_workers(container, timeout: float = 15.0, still: float = 1.0) -> int:
    """The worker count once it has held still for `still` seconds (workers start one by one)."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = count_workers(read_processes(container))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= still:
            break
        time.sleep(0.25)
    return last
