"""Container entrypoint: fill in $PORT and $WORKERS, then exec the server (it becomes PID 1).

With IMGTOOL_PREFLIGHT=N (N > 0) the app is imported first when N or more workers will run, for
servers that would otherwise respawn a crashing app forever or exit 0 (see the registry).
Workers come from WEB_CONCURRENCY when set, else from the CPUs this container may use
(cgroup quota and cpuset), never the host's CPU count: one worker per host core OOMs big hosts.
"""

import math
import os
import sys


def cgroup_cpu_quota():
    """CPUs allowed by the cgroup CPU quota, or None when unlimited (cgroup v2, then v1)."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus():
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def workers():
    configured = os.environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        return configured
    default = os.environ.get("IMGTOOL_DEFAULT_WORKERS", "auto")
    return str(available_cpus()) if default == "auto" else default


def preflight_import(app):
    """Import the app's module once; a failure exits 1 with the traceback instead of a hang."""
    import importlib
    import traceback

    try:
        importlib.import_module(app.partition(":")[0])
    except BaseException:
        traceback.print_exc()
        print(f"launch.py: the app {app} failed to import; not starting the server", file=sys.stderr)
        sys.exit(1)


def main(argv):
    if not argv:
        sys.exit("launch.py: no server command given")
    count = workers()
    threshold = int(os.environ.get("IMGTOOL_PREFLIGHT", "0") or 0)
    if threshold and count.isdigit() and int(count) >= threshold and os.environ.get("IMGTOOL_APP"):
        preflight_import(os.environ["IMGTOOL_APP"])
    values = {"$PORT": os.environ.get("PORT", "8000"), "$WORKERS": count}
    command = []
    for arg in argv:
        for token, value in values.items():
            arg = arg.replace(token, value)
        command.append(arg)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
