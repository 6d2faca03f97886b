"""The compose file under Swarm: `imgtool compose --swarm` deployed with `docker stack deploy` on a
single-node swarm the test starts (on a second engine) and leaves.

The images go through the session registry, as on a real cluster: `imgtool build --push` on the main
engine (the session's `pushed_app`), then small derived images (a new revision; one whose health check
never passes) pushed beside it; the swarm's engine pulls them by digest. Load comes from a container on
the stack's attachable overlay network (the app image running tests/integration/swarm_load.py), since the
ingress routing mesh needs IPVS, which this kernel lacks: the stack uses endpoint_mode dnsrr.

  1. 3 replicas become healthy; each runs one worker, as its CPU limit (1) says, on a 2-core machine;
  2. a rolling update to a new image under 16 clients' load: no request lost or damaged;
  3. an update to an image that never becomes healthy rolls back by itself, under load too; its time is measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from tests.conftest import RUN_ID, run_cli
from tests.integration.conftest import forget_names, second_engine, single_node_swarm

APP = "images/app"
STACK = "imgtool-test"
SERVICE = f"{STACK}_granian"
NETWORK = f"{STACK}_imgtool"
REPLICAS = 3
CLIENTS = 16
START_PERIOD = 5
LOAD_SCRIPT = Path(__file__).with_name("swarm_load.py")


def _push_derived(client: docker.DockerClient, source: str, tag: str, instruction: str) -> None:
    """`FROM source` plus one instruction, tagged and pushed: a new image without a new build."""
    client.images.build(fileobj=io.BytesIO(f"FROM {source}\n{instruction}\n".encode()), tag=tag, rm=True)
    repository, _, name = tag.rpartition(":")
    for event in client.images.push(repository, tag=name, stream=True, decode=True):
        assert "error" not in event, event


def _stack_file(registry_repo: str, revision: str, output: Path) -> dict:
    """`imgtool compose --swarm` for the image `imgtool build`/the push above named `<repo>:granian<revision>`."""
    result = run_cli(
        "compose", "--swarm", "--replicas", str(REPLICAS), "--endpoint-mode", "dnsrr",
        "--start-period", str(START_PERIOD), "-s", "granian", "--context", APP,
        "--tag", f"{registry_repo}:{{server}}{revision}", "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = yaml.safe_load(output.read_text())
    assert "@sha256:" in model["services"]["granian"]["image"], "the stack must pin what every node pulls"
    return model


def _deploy(env: dict, stack_file: Path, wait: bool) -> float:
    started = time.monotonic()
    deployed = subprocess.run(
        ["docker", "stack", "deploy", f"--detach={'false' if wait else 'true'}", "-c", str(stack_file), STACK],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    assert "Ignoring unsupported options" not in deployed.stderr + deployed.stdout, deployed.stderr
    return time.monotonic() - started


def _update_state(client: docker.DockerClient) -> str | None:
    service = client.services.get(SERVICE)
    return (service.attrs.get("UpdateStatus") or {}).get("State")


def _wait_for_state(client: docker.DockerClient, states: set[str], timeout: float, started: float) -> dict:
    """Poll the service's UpdateStatus until one of `states`; the seconds since `started` each state was seen."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while True:
        state = _update_state(client)
        seen.setdefault(str(state), round(time.monotonic() - started, 1))
        if state in states:
            return seen
        assert time.monotonic() < deadline, f"update states {seen} after {timeout} s, expected {states}"
        time.sleep(0.25)


def _healthy_tasks(client: docker.DockerClient) -> list[docker.models.containers.Container]:
    containers = client.containers.list(filters={"label": f"com.docker.swarm.service.name={SERVICE}"})
    return [c for c in containers if (c.attrs["State"].get("Health") or {}).get("Status") == "healthy"]


def _wait_healthy(client: docker.DockerClient, image_digest: str, timeout: float) -> list:
    """The service's running containers once exactly REPLICAS are healthy and all run `image_digest`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            healthy = _healthy_tasks(client)
            running = client.containers.list(filters={"label": f"com.docker.swarm.service.name={SERVICE}"})
        except docker.errors.NotFound:  # a task's container went away between list and inspect
            healthy, running = [], []
        images = {c.attrs["Config"]["Image"].rpartition("@")[2] for c in healthy}
        if len(healthy) == REPLICAS and len(running) == REPLICAS and images == {image_digest}:
            return healthy
        assert time.monotonic() < deadline, f"{len(healthy)}/{len(running)} healthy on {images}"
        time.sleep(0.25)


@contextlib.contextmanager
def _load(client: docker.DockerClient, image: str, control: Path):
    """The load generator on the stack's network for the duration of the block; yields a dict it fills."""
    control.mkdir(exist_ok=True)
    stop_file = control / "stop"
    stop_file.unlink(missing_ok=True)
    container = client.containers.run(
        image,
        entrypoint=["/opt/venv/bin/python", "/load/swarm_load.py"],
        command=["granian", "8000", str(CLIENTS), "300", "/control/stop"],
        network=NETWORK,
        volumes={
            str(LOAD_SCRIPT): {"bind": "/load/swarm_load.py", "mode": "ro"},
            str(control): {"bind": "/control", "mode": "ro"},
        },
        labels={"imgtool.test": RUN_ID},
        detach=True,
    )  # fmt: skip
    result: dict = {}
    try:
        deadline = time.monotonic() + 30
        while b"swarm_load: started" not in container.logs():
            assert container.reload() or container.status == "running", container.logs().decode()[-2000:]
            assert time.monotonic() < deadline, "the load generator did not start"
            time.sleep(0.1)
        time.sleep(2)  # load established before anything changes
        yield result
        stop_file.touch()
        assert container.wait(timeout=60)["StatusCode"] == 0, container.logs().decode()[-2000:]
        result.update(json.loads(container.logs().decode().strip().splitlines()[-1]))
    finally:
        container.remove(force=True)


def test_swarm_stack_replicas_rolling_update_under_load_and_rollback(docker_client, pushed_app, tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the worker-count check needs 2 or more cores")
    registry_repo, v1_digest = pushed_app
    pushed = [f"{registry_repo}:granian-v2", f"{registry_repo}:granian-never-healthy"]
    try:
        source = f"{registry_repo}@{v1_digest}"
        _push_derived(docker_client, source, pushed[0], "LABEL org.opencontainers.image.revision=v2")
        _push_derived(docker_client, source, pushed[1], "ENV HEALTH_PATH=/never-healthy")

        v1 = _stack_file(registry_repo, "", tmp_path / "v1.yaml")
        v2 = _stack_file(registry_repo, "-v2", tmp_path / "v2.yaml")
        bad = _stack_file(registry_repo, "-never-healthy", tmp_path / "bad.yaml")
        digest = {name: model["services"]["granian"]["image"].rpartition("@")[2] for name, model in
                  (("v1", v1), ("v2", v2), ("bad", bad))}  # fmt: skip
        assert digest["v1"] == v1_digest and len(set(digest.values())) == 3

        with second_engine(tmp_path / "engine") as host, single_node_swarm(host) as swarm:
            env = {**os.environ, "DOCKER_HOST": host}
            env.pop("DOCKER_CONTEXT", None)
            try:
                # 1. Three healthy replicas, one worker each: the CPU limit (1), not the host's 2 cores.
                _deploy(env, tmp_path / "v1.yaml", wait=True)
                tasks = _wait_healthy(swarm, digest["v1"], timeout=120)
                for task in tasks:
                    # The server's main process and one worker (a health check may be running beside them).
                    commands = [row[-1] for row in task.top(ps_args="-ww -o pid,args")["Processes"]]
                    server = [command for command in commands if "granian" in command]
                    assert len(server) == 2, commands
                    assert task.attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
                    assert task.attrs["HostConfig"]["ReadonlyRootfs"] is True
                    assert task.attrs["HostConfig"]["CapDrop"] == ["ALL"]

                # 2. A rolling update to a new image under load: nothing lost, nothing damaged.
                with _load(swarm, f"{registry_repo}@{digest['v1']}", tmp_path / "control") as update_load:
                    started = time.monotonic()
                    _deploy(env, tmp_path / "v2.yaml", wait=False)
                    update_states = _wait_for_state(swarm, {"completed"}, timeout=180, started=started)
                    _wait_healthy(swarm, digest["v2"], timeout=60)
                # 3. An image that never becomes healthy: the update rolls back by itself, still under load.
                with _load(swarm, f"{registry_repo}@{digest['v1']}", tmp_path / "control") as rollback_load:
                    started = time.monotonic()
                    _deploy(env, tmp_path / "bad.yaml", wait=False)
                    ends = {"rollback_completed", "rollback_paused", "paused"}
                    rollback_states = _wait_for_state(swarm, ends, timeout=240, started=started)
                    assert "rollback_completed" in rollback_states, swarm.services.get(SERVICE).attrs["UpdateStatus"]
                    _wait_healthy(swarm, digest["v2"], timeout=60)
                spec = swarm.services.get(SERVICE).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
                assert spec["Image"].endswith(digest["v2"])

                print(
                    f"\nrolling update v1 -> v2 ({REPLICAS} replicas, {CLIENTS} clients), seconds after deploy "
                    f"{update_states}: {json.dumps(update_load)}\nnever-healthy update (start period "
                    f"{START_PERIOD} s), seconds after deploy {rollback_states}: {json.dumps(rollback_load)}"
                )
                for load in (update_load, rollback_load):
                    assert load["failed"] == 0 and load["damaged"] == 0, load
                    assert load["completed"] == load["sent"] > 200, load
            finally:
                subprocess.run(["docker", "stack", "rm", STACK], capture_output=True, env=env, timeout=120)
                deadline = time.monotonic() + 60
                # sparse: a full list inspects each container, and they are going away meanwhile.
                while swarm.containers.list(all=True, sparse=True) and time.monotonic() < deadline:
                    time.sleep(0.5)
    finally:
        for tag in pushed:
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.images.remove(tag, force=True)
        # The derived builds pulled the app by digest: that reference goes too (the image may stay, named).
        forget_names(docker_client, registry_repo)
