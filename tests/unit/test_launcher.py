"""The image's launcher (images/assets/launch.py), imported as a plain module."""

import importlib.util
import os

import pytest

from toolkit import IMAGES_DIR


@pytest.fixture
def launch(monkeypatch):
    spec = importlib.util.spec_from_file_location("launch", IMAGES_DIR / "assets" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("WEB_CONCURRENCY", "IMGTOOL_DEFAULT_WORKERS", "PORT", "IMGTOOL_ONE_WORKER", "IMGTOOL_PREFLIGHT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(module, "python_script", lambda name: None)  # no console script of this interpreter here
    return module


def test_web_concurrency_overrides(launch, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    assert launch.workers() == "7"


def test_default_follows_the_cpus_this_process_may_use(launch, monkeypatch):
    monkeypatch.setattr(launch, "cgroup_cpu_quota", lambda: None)
    assert launch.workers() == str(len(os.sched_getaffinity(0)))


def test_cgroup_quota_caps_workers(launch, monkeypatch):
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(launch, "cgroup_cpu_quota", lambda: 1.5)
    assert launch.workers() == "2"


def test_server_default_can_pin_one_worker(launch, monkeypatch):
    monkeypatch.setenv("IMGTOOL_DEFAULT_WORKERS", "1")
    assert launch.workers() == "1"


def test_tokens_are_filled_and_the_server_execed(launch, monkeypatch):
    calls = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, argv: calls.append((file, argv)))
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    launch.main(["granian", "--port", "$PORT", "--workers", "$WORKERS", "--bind=0.0.0.0:$PORT"])
    assert calls == [("granian", ["granian", "--port", "9001", "--workers", "3", "--bind=0.0.0.0:9001"])]


def test_preflight_import_runs_from_the_registry_threshold(launch, monkeypatch):
    imported = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, argv: None)
    monkeypatch.setattr(launch, "preflight_import", imported.append)
    monkeypatch.setenv("IMGTOOL_APP", "app:app")
    monkeypatch.setenv("IMGTOOL_PREFLIGHT", "2")
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    launch.main(["uvicorn"])
    assert imported == []
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    launch.main(["uvicorn"])
    assert imported == ["app:app"]
    monkeypatch.setenv("IMGTOOL_PREFLIGHT", "0")
    launch.main(["uvicorn"])
    assert imported == ["app:app"]


def test_preflight_import_failure_exits_1_with_the_traceback(launch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        launch.preflight_import("a_module_that_does_not_exist:app")
    assert exit_info.value.code == 1
    assert "ModuleNotFoundError" in capsys.readouterr().err


def test_one_worker_becomes_the_servers_own_single_process_mode(launch, monkeypatch):
    calls = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, argv: calls.append(argv))
    monkeypatch.setenv("IMGTOOL_ONE_WORKER", "0")
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    launch.main(["hypercorn", "--workers", "$WORKERS"])
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    launch.main(["hypercorn", "--workers", "$WORKERS"])
    assert calls == [["hypercorn", "--workers", "0"], ["hypercorn", "--workers", "3"]]


SERVER_SCRIPT = """
import os, sys
print("server", os.getpid(), sys.argv[1:], sys.path[0] == os.path.dirname(sys.argv[0]), __name__, flush=True)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


def test_a_console_script_of_this_python_runs_in_the_launchers_own_process(tmp_path):
    """No second interpreter start: the script runs as __main__ of the launcher's process, with its exit code."""
    import subprocess
    import sys

    script = tmp_path / "bin" / "fake-server"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n{SERVER_SCRIPT}")
    script.chmod(0o755)
    launcher = IMAGES_DIR / "assets" / "launch.py"
    code = (
        "import os, runpy, sys; print('launcher', os.getpid(), flush=True); "
        f"sys.argv = [{str(launcher)!r}, 'fake-server', '--port', '$PORT']; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = {**os.environ, "PATH": f"{script.parent}:{os.environ['PATH']}", "PORT": "9002", "EXIT_WITH": "3"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    launcher_line, server_line = result.stdout.splitlines()
    assert result.returncode == 3, result.stderr
    assert server_line.split(" ", 2)[2] == "['--port', '9002'] True __main__"
    assert launcher_line.split()[1] == server_line.split()[1]  # the same PID: no exec, no new interpreter


def test_a_script_for_another_interpreter_or_a_binary_is_execed(tmp_path):
    spec = importlib.util.spec_from_file_location("launch_real", IMAGES_DIR / "assets" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    other = tmp_path / "other"
    other.write_text("#!/usr/bin/env perl\nprint 1;\n")
    other.chmod(0o755)
    assert module.python_script(str(other)) is None
    assert module.python_script("/bin/true") is None
