"""Shared fixtures: a real Docker engine (skip only where none exists and CI is not set)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Every imgtool run in this pytest session labels its containers with this id, so leftover
# checks see only this session's containers, even while another session runs beside it.
RUN_ID = f"pytest-{os.getpid()}-{secrets.token_hex(3)}"
# Put before every default tag by imgtool (IMGTOOL_TAG_PREFIX): sessions sharing one engine keep apart.
TAG_PREFIX = os.environ.get("IMGTOOL_TAG_PREFIX", "")


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.docker)


def run_cli(
    *args: str, timeout: float = 600, env: dict | None = None, cwd: Path = ROOT, **kwargs
) -> subprocess.CompletedProcess:
    """Run imgtool as a user would, in a subprocess, capturing both streams.

    The project is the current directory: `cwd` (default the repository root, which is imgtool's own
    project, so commands that act on the bundled app pass --demo).
    """
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(env),
        **kwargs,
    )


def cli_env(extra: dict | None = None) -> dict:
    return {**os.environ, "COLUMNS": "200", "IMGTOOL_RUN_ID": RUN_ID, **(extra or {})}


# checkov (the policy checker for `imgtool kube`'s manifests) pins packaging<24, which pytest>=9 refuses:
# it lives in a venv of its own, made by scripts/setup or, failing that, here.
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_REQUIREMENT = "checkov>=3.2,<4"


@pytest.fixture(scope="session")
def checkov() -> Path:
    if not CHECKOV.exists():
        venv = CHECKOV.parent.parent
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        installed = made.returncode == 0 and (
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", CHECKOV_REQUIREMENT],
                capture_output=True,
                text=True,
                timeout=900,
            ).returncode
            == 0
        )
        if not installed or not CHECKOV.exists():
            message = f"cannot install {CHECKOV_REQUIREMENT} into {venv}: run scripts/setup"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true: {message}")
            pytest.skip(message)
    return CHECKOV


def run_checkov(checkov: Path, path: Path) -> dict:
    """checkov's Kubernetes checks on one file, offline (--skip-download: no platform, no network): its JSON."""
    result = subprocess.run(
        [str(checkov), "--framework", "kubernetes", "--skip-download", "--output", "json", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Docker engine answers ({exc}): run scripts/provision-docker")
        pytest.skip("no Docker engine on this machine")
    return client
