"""Rendered Dockerfiles build anywhere BuildKit runs, with no image that only one engine has.

imgtool's helper files reach every build as the named context `imgtool-assets` (a directory): the
command `imgtool render` prints, plain `docker compose build` of an emitted `--build` file, plain
`docker buildx bake` of an emitted bake file, and a second engine with an empty store (the
remote-builder path) all build, and what they build passes the smoke suite.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import RUN_ID, cli_env, run_cli
from tests.integration.conftest import second_engine

APP = "images/app"


def helper_images(client: docker.DockerClient) -> list[str]:
    """Images an older imgtool made for its helper files (`imgtool-assets:<hash>`, label imgtool=assets)."""
    found = client.images.list(filters={"label": "imgtool=assets"}) + client.images.list(name="imgtool-assets")
    return sorted({tag for image in found for tag in image.tags} | {image.id for image in found})


@pytest.fixture
def no_helper_images(docker_client):
    """No helper image is left for a build to lean on (an older imgtool may run beside this one: a race on
    removal is fine, what matters is that the build below never names such an image)."""
    for ref in helper_images(docker_client):
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(ref, force=True)


def assert_reads_the_named_context(dockerfile: str) -> None:
    """Helper files come from the named build context, never from an image named imgtool-assets:<tag>."""
    assert "from=imgtool-assets," in dockerfile and "COPY --from=imgtool-assets " in dockerfile
    assert "imgtool-assets:" not in dockerfile


def printed_command(dockerfile: Path) -> list[str]:
    """The `docker buildx build ...` line from the header `imgtool render` wrote."""
    lines = dockerfile.read_text().splitlines()
    found = [line.removeprefix("#").strip() for line in lines[:10] if line.startswith("#   docker buildx build ")]
    assert len(found) == 1, "\n".join(lines[:10])
    return shlex.split(found[0])


def retagged(argv: list[str], tag: str, *extra: str) -> list[str]:
    index = argv.index("--tag")
    return [*argv[:index], *extra, "--tag", tag, *argv[index + 2 :]]


def smoke(image: str, env: dict | None = None) -> dict:
    result = run_cli("test", "--image", image, "--json", env=env)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    verdicts = {check["check"]: check["status"] for check in report["servers"][0]["results"]}
    assert verdicts["health"] == "pass" and verdicts["http1"] == "pass", verdicts
    return verdicts


def test_the_command_render_prints_builds_the_dockerfile(docker_client, tmp_path, no_helper_images):
    dockerfile = tmp_path / "Dockerfile"
    result = run_cli("render", "-s", "granian", "--context", APP, "-o", str(dockerfile))
    assert result.returncode == 0, result.stderr
    assert_reads_the_named_context(dockerfile.read_text())
    tag = f"imgtool-test-rendered:{RUN_ID}"
    argv = retagged(printed_command(dockerfile), tag)
    assert argv[argv.index("--file") + 1] == str(dockerfile)
    try:
        built = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        assert docker_client.images.get(tag).labels["imgtool.server"] == "granian"
        assert smoke(tag)["h2c"] == "pass"
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def test_plain_docker_compose_builds_the_emitted_file(docker_client, tmp_path, no_helper_images):
    output = tmp_path / "compose.yaml"
    result = run_cli("compose", "-s", "granian", "--build", "--context", APP, "-o", str(output))
    assert result.returncode == 0, result.stderr
    build = yaml.safe_load(output.read_text())["services"]["granian"]["build"]
    assert build["additional_contexts"] == {"imgtool-assets": ".imgtool/assets"}
    assert (tmp_path / ".imgtool" / "assets" / "launch.py").is_file()
    assert_reads_the_named_context((tmp_path / build["dockerfile"]).read_text())
    project = f"imgtool-anywhere-{secrets.token_hex(4)}"
    compose = ["docker", "compose", "-p", project, "-f", str(output)]
    try:
        built = subprocess.run([*compose, "build"], capture_output=True, text=True, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        smoke(f"{project}-granian")
    finally:
        subprocess.run([*compose, "down", "--rmi", "local"], capture_output=True, timeout=300)


def test_plain_buildx_bake_builds_the_emitted_file(docker_client, tmp_path, no_helper_images):
    output = tmp_path / "docker-bake.hcl"
    result = run_cli("bake", "-s", "uvicorn", "--context", APP, "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert 'contexts   = { "imgtool-assets" = ".imgtool/assets" }' in output.read_text()
    assert_reads_the_named_context((tmp_path / ".imgtool" / "docker-bake" / "uvicorn.Dockerfile").read_text())
    tag = f"imgtool-test-bake:{RUN_ID}"
    header = [line for line in output.read_text().splitlines() if line.startswith("#   docker buildx bake ")]
    command = [*shlex.split(header[0].removeprefix("#")), "--set", f"uvicorn.tags={tag}", "uvicorn"]
    try:
        built = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=cli_env(), timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        assert smoke(tag)["ws"] == "pass"
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def test_a_second_engine_with_an_empty_store_builds_the_rendered_dockerfile(docker_client, tmp_path):
    """The remote-builder path: the printed command, pointed at another engine with DOCKER_HOST."""
    dockerfile = tmp_path / "Dockerfile"
    result = run_cli("render", "-s", "granian", "--context", APP, "-o", str(dockerfile))
    assert result.returncode == 0, result.stderr
    base = next(line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM "))
    tag = "imgtool-test-remote:granian"
    with second_engine(tmp_path / "engine") as host:
        remote = docker.DockerClient(base_url=host, timeout=300)
        assert remote.images.list() == []
        # No registry answers here: the base travels as a tarball, as it would be pulled elsewhere.
        remote.images.load(docker_client.images.get(base).save(named=True))
        # That engine's bridge has no NAT, so the build's package downloads use the host network.
        argv = retagged(printed_command(dockerfile), tag, "--network", "host")
        built = subprocess.run(argv, capture_output=True, text=True, env=cli_env({"DOCKER_HOST": host}), timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        assert remote.images.get(tag).labels["imgtool.server"] == "granian"
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(tag)
        smoke(tag, env={"DOCKER_HOST": host})
        remote.close()
