"""Container entrypoint: fill in $PORT, $WORKERS and $THREADS, then become the server (PID 1).

A server started by a console script of this venv runs in this very process (the script is run as
__main__, as its own interpreter would): no second interpreter start. Anything else is exec'd.
With IMGTOOL_PREFLIGHT=N (N > 0) the app is imported first when N or more workers will run, for
servers that would otherwise respawn a crashing app forever or exit 0 (see the registry); the server is
then exec'd, so its supervisor does not keep the app's modules. IMGTOOL_ONE_WORKER is the worker count
that makes the server serve in its own process (hypercorn: 0), used when one worker is wanted.
Workers come from WEB_CONCURRENCY when set, else from the CPUs this container may use
(cgroup quota and cpuset), never the host's CPU count: one worker per host core OOMs big hosts.
Threads per worker (a threaded WSGI worker: gunicorn's gthread) come from WEB_THREADS when set, else from the
image's IMGTOOL_DEFAULT_THREADS.
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


def threads():
    configured = os.environ.get("WEB_THREADS", "").strip()
    return configured or os.environ.get("IMGTOOL_DEFAULT_THREADS", "1")


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


def python_script(name):
    """The path of `name` on PATH when it is a script for this very interpreter (a venv console script)."""
    if os.sep in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d, name) for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            try:
                with open(path, "rb") as f:
                    first = f.readline(256)
            except OSError:
                return None
            interpreter = first[2:].decode(errors="replace").split()[0] if first.startswith(b"#!") else ""
            same = interpreter and os.path.realpath(interpreter) == os.path.realpath(sys.executable)
            return path if same else None
    return None


def run_in_process(path, argv):
    """Run a console script as this process's __main__, as `python path argv...` would (never returns)."""
    import runpy

    sys.argv = [path, *argv]
    sys.path[0] = os.path.dirname(path)  # not this launcher's directory: its files must not shadow the app's
    runpy.run_path(path, run_name="__main__")
    sys.exit(0)


def main(argv):
    if not argv:
        sys.exit("launch.py: no server command given")
    count = workers()
    if count == "1" and os.environ.get("IMGTOOL_ONE_WORKER"):
        count = os.environ["IMGTOOL_ONE_WORKER"]
    threshold = int(os.environ.get("IMGTOOL_PREFLIGHT", "0") or 0)
    preflight = bool(threshold and count.isdigit() and int(count) >= threshold and os.environ.get("IMGTOOL_APP"))
    if preflight:
        preflight_import(os.environ["IMGTOOL_APP"])
    values = {"$PORT": os.environ.get("PORT", "8000"), "$WORKERS": count, "$THREADS": threads()}
    command = []
    for arg in argv:
        for token, value in values.items():
            arg = arg.replace(token, value)
        command.append(arg)
    script = None if preflight else python_script(command[0])
    if script is not None:
        run_in_process(script, command[1:])
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
