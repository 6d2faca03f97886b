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
    for name in ("WEB_CONCURRENCY", "IMGTOOL_DEFAULT_WORKERS", "PORT"):
        monkeypatch.delenv(name, raising=False)
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
