"""Shared fixtures: a real Docker engine (skip only where none exists and CI is not set)."""

from __future__ import annotations

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


def run_cli(*args: str, timeout: float = 600, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run imgtool as a user would, in a subprocess, capturing both streams."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(env),
        **kwargs,
    )


def cli_env(extra: dict | None = None) -> dict:
    return {**os.environ, "COLUMNS": "200", "IMGTOOL_RUN_ID": RUN_ID, **(extra or {})}


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
