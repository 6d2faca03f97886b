"""The images workflow's build steps, run on this machine as far as its engine allows.

The workflow's two buildx steps (the assets OCI layout, then the multi-arch image with SBOM and
provenance) are translated from images.yml into `docker buildx build` calls and run with the push
swapped for a local OCI layout. Engines whose builder cannot export OCI or attestations (Docker
20.10's built-in BuildKit with the docker driver) refuse: that refusal, word for word, is the skip
reason. What every engine can do runs in full: the staged assets build into the very files of
imgtool's own assets image, so the named build context is a drop-in for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, RUN_ID, run_cli

IMAGES_WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"
# What an engine says when its builder lacks the feature (not a mistake in the invocation).
REFUSALS = ("is not supported for the docker driver", "unsupported frontend capability")


@pytest.fixture(scope="module")
def workspace(docker_client, tmp_path_factory) -> dict:
    """A runner's workspace after the workflow's render and assets steps: build/Dockerfile, build/assets."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "build").mkdir()
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
    ref = result.stdout.strip().removeprefix("ref=")
    assert re.fullmatch(r"imgtool-assets:[0-9a-f]{16}", ref)
    return {"root": root, "ref": ref}


def _files(client, image: str) -> dict[str, tuple]:
    """Every regular file of an image: path -> (mode, sha256)."""
    container = client.containers.create(image, command=["/nothing"])
    try:
        stream = b"".join(container.export())
    finally:
        container.remove(force=True)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name not in (".dockerenv",):
                data = archive.extractfile(member).read()
                files[member.name] = (member.mode & 0o777, hashlib.sha256(data).hexdigest())
    return files


def test_staged_assets_build_imgtools_own_assets_image(docker_client, workspace):
    tag = f"imgtool-test-staged-assets:{RUN_ID}"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[docker_client.info()["Architecture"]]
    try:
        result = subprocess.run(
            ["docker", "buildx", "build", "--load", "--platform", f"linux/{arch}", "--tag", tag, "build/assets"],
            capture_output=True,
            text=True,
            cwd=workspace["root"],
        )
        assert result.returncode == 0, result.stderr[-2000:]
        staged, own = _files(docker_client, tag), _files(docker_client, workspace["ref"])
        # engine.ensure_assets_image builds with `COPY . /`, so its own Dockerfile rides along; unused.
        own.pop("Dockerfile", None)
        assert "uv/uv" in own and "launch.py" in own
        assert staged == own
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def _buildx_argv(with_: dict, env: dict, ref: str, output: str) -> list[str]:
    """`docker buildx build` for a docker/build-push-action step, pushing replaced by a local output."""

    def value(text) -> str:
        text = str(text)
        text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m[1]], text)
        text = text.replace("${{ steps.assets.outputs.ref }}", ref)
        return text.replace("${{ github.workspace }}", env["GITHUB_WORKSPACE"])

    argv = ["docker", "buildx", "build", "--progress=plain"]
    for key, val in with_.items():
        lines = [value(line) for line in str(val).splitlines() if line.strip()]
        if key == "file":
            argv += ["--file", *lines]
        elif key == "platforms":
            argv += ["--platform", *lines]
        elif key == "build-contexts":
            argv += [arg for line in lines for arg in ("--build-context", line)]
        elif key == "outputs":
            argv += [arg for line in lines for arg in ("--output", line)]
        elif key in ("sbom", "provenance"):
            argv.append(f"--{key}={str(val).lower() if isinstance(val, bool) else value(val)}")
        elif key == "tags" and "steps.meta" not in str(val):
            argv += [arg for line in lines for arg in ("--tag", line)]
    if not any(arg == "--output" for arg in argv):
        argv += ["--output", output]
    context = value(with_["context"])
    return [*argv, str(Path(context) if Path(context).is_absolute() else Path(env["CONTEXT_ROOT"]) / context)]


def test_the_workflows_buildx_steps_run_locally_or_the_engine_says_why_not(docker_client, workspace):
    data = yaml.safe_load(IMAGES_WORKFLOW.read_text())
    steps = [step for step in data["jobs"]["image"]["steps"] if "docker/build-push-action@" in step.get("uses", "")]
    assert len(steps) == 2, "expected the assets step and the image step"
    root = workspace["root"]
    env = {**data["env"], "GITHUB_WORKSPACE": str(root)}
    assets_step, image_step = steps
    # Paths in the assets step are relative to the workspace; the image's context to the repository.
    assets_argv = _buildx_argv(assets_step["with"], {**env, "CONTEXT_ROOT": str(root)}, workspace["ref"], "")
    image_layout = root / "image-oci"
    image_argv = _buildx_argv(
        image_step["with"],
        {**env, "CONTEXT_ROOT": str(ROOT)},
        workspace["ref"],
        f"type=oci,dest={image_layout},tar=false",
    )
    assert "--sbom=true" in image_argv and "--provenance=mode=max" in image_argv
    assert f"{workspace['ref']}=oci-layout://{root}/build/assets-oci:staged" in image_argv

    refusals = []
    for name, argv in (("assets step", assets_argv), ("image step", image_argv)):
        result = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=900)
        if result.returncode != 0:
            said = [line for line in result.stderr.splitlines() if "ERROR" in line or "error" in line.lower()]
            message = said[-1] if said else result.stderr.strip()[-300:]
            assert any(refusal in result.stderr for refusal in REFUSALS), f"{' '.join(argv)}:\n{result.stderr[-3000:]}"
            refusals.append(f"{name}: {message.strip()}")
    if refusals:
        # Docker's own driver (the only builder an offline engine can run: a docker-container
        # builder needs the moby/buildkit image from a registry) has no OCI export and no
        # attestations. The invocation got as far as the builder's capability check; on GitHub's
        # runners setup-buildx-action provides a docker-container builder that runs it whole.
        driver = subprocess.run(["docker", "buildx", "inspect"], capture_output=True, text=True).stdout
        assert re.search(r"^Driver:\s+docker$", driver, re.MULTILINE), f"refused by a capable builder: {refusals}"
        print("this engine's builder refuses, as expected for the docker driver: " + " | ".join(refusals))
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
