"""The images workflow's build steps, run on this machine as far as its engine allows.

The workflow's buildx steps (imgtool's helper files as the named context `imgtool-assets`) are
translated from images.yml into `docker buildx build` calls: the load step for this engine's
platform runs whole and the workflow's own smoke step passes on what it loaded; the push (every
platform, SBOM and provenance) runs with the push swapped for a local OCI layout. A builder that cannot export OCI or
attestations (the docker driver without the containerd image store) refuses: that refusal, word for
word, is what the test accepts. What every builder can do runs in full: the staged context builds
the rendered Dockerfile for this engine's platform, and the image serves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, RUN_ID, cli_env, run_cli
from tests.integration.conftest import running, wait_for_health
from toolkit.engine import SYSTEM_CA_BUNDLE

IMAGES_WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"
# What an engine says when its builder lacks the feature (not a mistake in the invocation).
REFUSALS = ("is not supported for the docker driver", "unsupported frontend capability")


@pytest.fixture(scope="module")
def workspace(docker_client, tmp_path_factory) -> Path:
    """A runner's workspace after the workflow's render and staging steps: build/Dockerfile, build/assets."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "build" / "junit").mkdir(parents=True)  # as the workflow's render step does
    dockerfile = root / "build" / "Dockerfile"
    result = run_cli("render", "--server", "granian", "--context", "images/app", "--output", str(dockerfile))
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "toolkit.workflow", "assets", "--dockerfile", str(dockerfile), "build/assets"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    return root


def test_the_staged_context_builds_the_rendered_dockerfile_for_this_platform(docker_client, workspace):
    tag = f"imgtool-test-staged-assets:{RUN_ID}"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[docker_client.info()["Architecture"]]
    argv = ["docker", "buildx", "build", "--load", "--platform", f"linux/{arch}", "--tag", tag]
    # The host's CA bundle, as the workflow passes it (secret-files): the index sits behind a TLS proxy here.
    if SYSTEM_CA_BUNDLE.is_file():
        argv += ["--secret", f"id=ca,src={SYSTEM_CA_BUNDLE}"]
    argv += ["--build-context", "imgtool-assets=build/assets", "--file", "build/Dockerfile", str(ROOT / "images/app")]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=workspace)
        assert result.returncode == 0, result.stderr[-2000:]
        with running(docker_client, tag) as (_, target):
            assert wait_for_health(target.url("/health")).status_code == 200
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def _buildx_argv(with_: dict, env: dict, output: str | None = None) -> list[str]:
    """`docker buildx build` for a docker/build-push-action step, as far as it runs off GitHub.

    GitHub-only inputs are left out: labels and tags from the metadata step, the GitHub cache (type=gha),
    the `no-cache` expression. A push becomes `output` (a local OCI layout) when given.
    """

    def value(text) -> str:
        text = str(text)
        text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m[1]], text)
        return text.replace("${{ github.workspace }}", env["GITHUB_WORKSPACE"])

    argv = ["docker", "buildx", "build", "--progress=plain"]
    for key, val in with_.items():
        lines = [value(line) for line in str(val).splitlines() if line.strip() and "steps.meta" not in line]
        if key == "file":
            argv += ["--file", *lines]
        elif key == "platforms":
            argv += ["--platform", *lines]
        elif key == "build-contexts":
            argv += [arg for line in lines for arg in ("--build-context", line)]
        elif key == "secret-files":
            argv += [arg for line in lines for arg in ("--secret", "id={},src={}".format(*line.split("=", 1)))]
        elif key == "load" and val is True:
            argv.append("--load")
        elif key in ("sbom", "provenance"):
            argv.append(f"--{key}={str(val).lower() if isinstance(val, bool) else value(val)}")
        elif key == "tags":
            argv += [arg for line in lines for arg in ("--tag", line)]
    if output is not None:
        argv += ["--output", output]
    context = value(with_["context"])
    return [*argv, str(Path(context) if Path(context).is_absolute() else Path(env["CONTEXT_ROOT"]) / context)]


def _workflow():
    data = yaml.safe_load(IMAGES_WORKFLOW.read_text())
    job = data["jobs"]["image"]
    env = {**data["env"], **job["env"], "GITHUB_WORKSPACE": "", "CONTEXT_ROOT": str(ROOT)}
    return data, job, env


def test_the_workflows_load_and_smoke_steps_run_here(docker_client, workspace):
    """This engine's platform: the workflow's own load step builds it, its own smoke step passes."""
    _, job, env = _workflow()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[docker_client.info()["Architecture"]]
    steps = job["steps"]
    [index] = [i for i, s in enumerate(steps) if s.get("with", {}).get("platforms") == f"linux/{arch}"]
    tested = f"imgtool-test-workflow-{RUN_ID}"
    env = {**env, "GITHUB_WORKSPACE": str(workspace), "TESTED": tested}
    argv = _buildx_argv(steps[index]["with"], env)
    assert "--load" in argv and "imgtool-assets=build/assets" in argv and f"{tested}:{arch}" in argv
    try:
        built = subprocess.run(argv, capture_output=True, text=True, cwd=workspace, timeout=900)
        assert built.returncode == 0, f"{' '.join(argv)}:\n{built.stderr[-3000:]}"
        smoke = steps[index + 1]["run"]
        assert smoke.startswith("imgtool test ")
        result = subprocess.run(
            ["bash", "-c", smoke],
            cwd=workspace,
            env=cli_env(
                {
                    "TESTED": tested,
                    "SERVER": "granian",
                    "PYTHON": "3.11",
                    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                }
            ),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert list((workspace / "build" / "junit").glob("smoke-granian-py3.11-*.xml"))
    finally:
        subprocess.run(["docker", "image", "rm", "-f", f"{tested}:{arch}"], capture_output=True)


def test_the_workflows_push_step_runs_locally_or_the_engine_says_why_not(docker_client, workspace):
    data, job, env = _workflow()
    [push] = [step for step in job["steps"] if step.get("id") == "push"]
    image_layout = workspace / "image-oci"
    env = {**env, "GITHUB_WORKSPACE": str(workspace)}
    argv = _buildx_argv(push["with"], env, f"type=oci,dest={image_layout},tar=false")
    assert "--sbom=true" in argv and "--provenance=mode=max" in argv
    assert "imgtool-assets=build/assets" in argv

    result = subprocess.run(argv, capture_output=True, text=True, cwd=workspace, timeout=900)
    if result.returncode != 0:
        said = [line for line in result.stderr.splitlines() if "ERROR" in line or "error" in line.lower()]
        message = said[-1] if said else result.stderr.strip()[-300:]
        assert any(refusal in result.stderr for refusal in REFUSALS), f"{' '.join(argv)}:\n{result.stderr[-3000:]}"
        # Docker's own driver (the only builder an offline engine can run: a docker-container
        # builder needs the moby/buildkit image from a registry) without the containerd image store
        # has no OCI export and no attestations. The invocation got as far as the builder's
        # capability check; on GitHub's runners setup-buildx-action provides a docker-container
        # builder that runs it whole.
        driver = subprocess.run(["docker", "buildx", "inspect"], capture_output=True, text=True).stdout
        assert re.search(r"^Driver:\s+docker$", driver, re.MULTILINE), f"refused by a capable builder: {message}"
        print(f"this engine's builder refuses, as expected for the docker driver: {message.strip()}")
        return

    index = json.loads((image_layout / "index.json").read_text())
    manifests = json.loads((image_layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in manifests["manifests"]
        if m.get("platform", {}).get("os") != "unknown"
    }
    attestations = [
        m
        for m in manifests["manifests"]
        if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
    ]
    assert platforms == set(data["env"]["PLATFORMS"].split(","))
    assert len(attestations) == len(platforms)
