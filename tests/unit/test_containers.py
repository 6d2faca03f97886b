"""The container contract without an engine: labels, names, 127.0.0.1 only, removal, addresses, run ids."""

from __future__ import annotations

import re

import docker.errors
import pytest

from toolkit import containers
from toolkit.containers import Role


class FakeContainer:
    def __init__(self, ports=None, address="172.17.0.5", status="running"):
        self.attrs = {"NetworkSettings": {"Ports": ports, "IPAddress": address}}
        self.status = status
        self.removed = None

    def reload(self):
        pass

    def remove(self, **options):
        if self.removed is not None:
            raise docker.errors.NotFound("gone")
        self.removed = options


class FakeContainers:
    def __init__(self, container):
        self.container = container
        self.runs = []

    def run(self, ref, **options):
        self.runs.append((ref, options))
        return self.container

    def list(self, all, filters):
        return [self.container] if filters == {"label": "imgtool.test=abc"} else []


class FakeClient:
    def __init__(self, container):
        self.containers = FakeContainers(container)


def test_a_run_container_is_labelled_published_on_loopback_and_removed_on_error():
    container = FakeContainer()
    client = FakeClient(container)
    ref = "localhost:5000/app@sha256:" + "a" * 64
    with (
        pytest.raises(RuntimeError),
        containers.Run(client, "abc") as run,
        run.start(ref, Role.TLS, 8000, "localhost:5000/app", cpuset_cpus="0"),
    ):
        raise RuntimeError("a check blew up")
    [(ref, options)] = client.containers.runs
    assert ref.startswith("localhost:5000/app@sha256:")
    assert options["labels"] == {"imgtool.test": "abc", "imgtool.test.role": "tls"}
    assert options["ports"] == {"8000/tcp": ("127.0.0.1", None)}
    assert options["detach"] is True and options["cpuset_cpus"] == "0"
    # A name Docker accepts, whatever the subject is called; unique, so a second start never collides.
    assert re.fullmatch(r"imgtool-test-abc-localhost-5000-app-tls-[0-9a-f]{4}", options["name"])
    assert container.removed == {"force": True, "v": True}


def test_the_run_removes_what_its_label_finds():
    container = FakeContainer()
    assert containers.remove_test_containers(FakeClient(container), "abc") == 1
    assert container.removed == {"force": True, "v": True}
    assert containers.remove_test_containers(FakeClient(FakeContainer()), "other") == 0


def test_addresses_published_and_on_the_bridge():
    container = FakeContainer(ports={"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]})
    assert containers.host_port(container, 8000) == 49153
    assert containers.base_url(container, 8000) == "http://127.0.0.1:49153"
    assert containers.base_url(container, 8000, bridge=True) == "http://172.17.0.5:8000"
    hostless = FakeContainer(ports={"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}, address="")
    assert containers.base_url(hostless, 8000, bridge=True) == "http://127.0.0.1:49153"


def test_an_exited_container_publishes_nothing():
    with pytest.raises(containers.NotPublished, match=r"port 8000 was not published \(container exited\)"):
        containers.host_port(FakeContainer(ports=None, status="exited"), 8000)


def test_run_id_from_the_environment_or_new(monkeypatch):
    monkeypatch.setenv(containers.RUN_ID_ENV, "ci-1234")
    assert containers.current_run_id() == "ci-1234"
    monkeypatch.delenv(containers.RUN_ID_ENV)
    first, second = containers.current_run_id(), containers.current_run_id()
    assert re.fullmatch(r"[0-9a-f]{8}", first) and first != second
