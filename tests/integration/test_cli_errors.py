"""Bad input: one clear line naming the problem and the fix, exit 2, no traceback, nothing left behind."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.integration.conftest import copy_reference_app, leftover_test_containers, single_line_error


def temp_leftovers(root: Path | None = None) -> set[str]:
    return set(glob.glob(os.path.join(root or tempfile.gettempdir(), "imgtool-*")))


def private_tmp(tmp_path: Path) -> dict[str, str]:
    """A TMPDIR of the test's own: what imgtool leaves there is its own, whatever else runs beside it."""
    directory = tmp_path / "tmpdir"
    directory.mkdir()
    return {"TMPDIR": str(directory)}


CASES = {
    "unknown server": (
        ["build", "--demo", "--server", "tornado"],
        {},
        "unknown server 'tornado': choose one of uvicorn",
    ),
    "malformed app": (["build", "--demo", "--app", "main.app"], {}, "is not module:attribute"),
    "missing context": (["build", "--context", "/nonexistent/app"], {}, "is not a directory"),
    "app not in context": (["build", "--demo", "--app", "nothere:app"], {}, "is not in"),
    "all with server": (["build", "--demo", "--all", "--server", "granian"], {}, "exclude each other"),
    "invalid tag": (["build", "--demo", "--tag", "Bad Tag"], {}, "'--tag' / '-t': 'Bad Tag' is not an image name"),
    "unknown protocol": (["test", "--protocol", "h3"], {}, "'h3' is not one of 'http1', 'h2c', 'h2-tls', 'ws'"),
    "missing image": (
        ["test", "--image", "imgtool-test/none:missing"],
        {},
        "image imgtool-test/none:missing not found",
    ),
    "base missing": (["build", "--demo", "--base", "imgtool-test/no-such-base:1"], {}, "cannot be pulled"),
    "daemon unreachable": (
        ["build", "--demo"],
        {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        "Docker engine unreachable",
    ),
    "buildx missing": (["build", "--demo"], {"DOCKER_CONFIG": "EMPTY"}, "docker buildx is not installed"),
    "unwritable junit path": (["test", "--junit", "/nonexistent/dir/report.xml"], {}, "does not exist"),
    "unwritable render output": (["render", "--demo", "-o", "/nonexistent/dir/Dockerfile"], {}, "does not exist"),
    "unknown check": (["test", "--check", "speed"], {}, "'speed' is not one of 'health'"),
    "malformed env": (["test", "--env", "NOVALUE"], {}, "is not KEY=VALUE"),
    "invalid config value": (["build", "--context", "BAD_CONFIG"], {}, "is not a TCP port"),
    "unknown config key": (["build", "--context", "UNKNOWN_KEY"], {}, "unknown [tool.imgtool] key(s) 'colour' in"),
    "app not importable": (["build", "--context", "NOT_IMPORTABLE", "--json"], {}, "cannot be imported in the image"),
    "push to no registry": (["build", "--demo", "--push"], {}, "--push needs a tag naming a registry"),
    "unknown builder": (["build", "--builder", "imgtool-test-no-such-builder"], {}, "--builder imgtool-test-no-such"),
    "build network": (["build", "--network", "bridge"], {}, "'--network': 'bridge' is not one of 'default', 'host'"),
    "swarm with build": (["compose", "--swarm", "--build"], {}, "--swarm runs images from a registry"),
    "swarm replicas": (["compose", "--replicas", "0"], {}, "'--replicas': 0 is not a replica count"),
    "kube version": (["kube", "--kube-version", "1"], {}, "is not a Kubernetes minor version"),
    "kube namespace": (["kube", "--namespace", "default"], {}, "other than default"),
    "syntax error": (["build", "--context", "SYNTAX_ERROR", "--json"], {}, "(SyntaxError: "),
    "wrong attribute": (["build", "--context", "WRONG_ATTRIBUTE", "--json"], {}, "(AttributeError: "),
    "key with underscore": (["build", "--context", "UNDERSCORE_KEY"], {}, "did you mean `health-path`?"),
    "demo and context": (["build", "--demo", "--context", "/tmp"], {}, "--demo and --context exclude each other"),
    # Only the engine (or the registry behind it) can tell these: its answer, in one line.
    "registry unreachable": (["base", "pull", "--registry", "127.0.0.1:1"], {}, "registry 127.0.0.1:1 is unreachable"),
    "no such base": (["render", "--demo", "--base", "imgtool-test/no-such-base:2"], {}, "cannot be pulled"),
    "not a PEM key": (["verify", "127.0.0.1:1/app:x", "--key", "/etc/hostname"], {}, "holds no PEM key"),
}
CONTEXT_TOKENS = ("BAD_CONFIG", "UNKNOWN_KEY", "NOT_IMPORTABLE", "SYNTAX_ERROR", "WRONG_ATTRIBUTE", "UNDERSCORE_KEY")


def prepare(tmp_path, token: str) -> str:
    """Contexts that are broken in one way each."""
    context = copy_reference_app(tmp_path / token.lower())
    pyproject = context / "pyproject.toml"
    if token == "BAD_CONFIG":
        pyproject.write_text(pyproject.read_text() + "port = 99999\n")
    elif token == "UNKNOWN_KEY":
        pyproject.write_text(pyproject.read_text() + 'colour = "blue"\n')
    elif token == "NOT_IMPORTABLE":
        (context / "app.py").write_text("import a_module_nobody_installed\n" + (context / "app.py").read_text())
    elif token == "SYNTAX_ERROR":
        (context / "app.py").write_text((context / "app.py").read_text() + "\ndef broken(:\n")
    elif token == "WRONG_ATTRIBUTE":
        pyproject.write_text(pyproject.read_text().replace('app = "app:app"', 'app = "app:application"'))
    elif token == "UNDERSCORE_KEY":
        pyproject.write_text(pyproject.read_text() + 'health_path = "/health"\n')
    return str(context)


@pytest.mark.parametrize("case", CASES)
def test_bad_input(docker_client, case, tmp_path):
    args, env, message = CASES[case]
    args = [prepare(tmp_path, arg) if arg in CONTEXT_TOKENS else arg for arg in args]
    env = {key: str(tmp_path) if value == "EMPTY" else value for key, value in env.items()}
    tmp = private_tmp(tmp_path)
    result = run_cli(*args, env={**env, **tmp}, timeout=120)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    line = single_line_error(result.stderr)
    assert message in line
    assert ": " in line.split("error:", 1)[-1], "the message must name the fix after the problem"
    assert temp_leftovers(Path(tmp["TMPDIR"])) == set()
    assert leftover_test_containers(docker_client) == []


def test_ctrl_c_during_build_leaves_nothing_behind(docker_client, reference_images, tmp_path):
    tmp = private_tmp(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "build", "--demo", "--server", "daphne", "--no-cache", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **tmp},
    )
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert temp_leftovers(Path(tmp["TMPDIR"])) == set()


@pytest.mark.parametrize("command", [["build", "--server", "granian"], ["test"], ["compose"], ["config"], ["bench"]])
def test_a_directory_without_a_project_is_one_line_naming_the_fix(docker_client, tmp_path, command):
    (tmp_path / "README.md").write_text("not a Python project\n")
    result = run_cli(*command, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    line = single_line_error(result.stderr)
    assert f"{tmp_path} holds no Python project" in line
    assert "cd into your project, pass --context DIR, or --demo for imgtool's bundled app" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "README.md"]


def test_a_base_without_the_python_the_project_needs_is_one_line_naming_both(docker_client, tmp_path):
    # 3.12: no Debian suite reachable here ships it, so no offline base can exist for it.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "new"\nrequires-python = "==3.12.*"\n')
    (tmp_path / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    if docker_client.images.list(name="python:3.12-slim"):
        pytest.skip("a python:3.12-slim base is present here: nothing is missing")
    result = run_cli("build", "--server", "granian", cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    line = single_line_error(result.stderr)
    assert "the project needs Python ==3.12.* (requires-python in pyproject.toml)" in line
    assert "offline bases are Python 3.11 (bookworm), 3.13 (trixie), 3.14 (forky), 3.15 (forky)" in line
