"""Measuring images: start each one (CPU 0, 127.0.0.1, labelled with the run id), wait for its first 200,
load it, read its processes, remove it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import docker
import docker.errors

from toolkit import containers
from toolkit.bench.choices import Tool, Via
from toolkit.bench.load import SERVER_CPUS, BenchFailure, measure_url, wait_for_200
from toolkit.bench.procs import count_workers, read_processes, rss_bytes, server_processes, settled_workers
from toolkit.bench.report import BenchResult
from toolkit.containers import Container, Role


@dataclass(frozen=True)
class Subject:
    """An image to measure, and how to run it."""

    name: str
    ref: str
    port: int = containers.DEFAULT_PORT
    # None: no health route; any answer below 500 at / counts.
    health_path: str | None = None
    h2c: bool = False
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)


def subject_for(client: docker.DockerClient, ref: str, health_path: str | None = None) -> Subject:
    """What imgtool's labels say about an image (server, port, health path, h2c claim); `health_path`
    overrides the label, for the image's own HEALTHCHECK too (HEALTH_PATH)."""
    labels = containers.image_labels(client, ref)
    spec = labels.spec
    return Subject(
        name=labels.name,
        ref=ref,
        port=labels.port,
        health_path=health_path or labels.health_path,
        h2c=spec is not None and "h2c" in spec.claims,
        environment={"HEALTH_PATH": health_path} if health_path else {},
    )


class Bench(containers.Run):
    """Starts, measures and removes containers; everything it started carries the run id label."""

    kind = "bench"

    def __init__(self, client: docker.DockerClient, run_id: str, via: str = Via.bridge):
        super().__init__(client, run_id)
        self.via = Via(via)

    def container(
        self, subject: Subject, role: Role = Role.BENCH, **options
    ) -> contextlib.AbstractContextManager[Container]:
        """A started container of the subject on CPU 0 (unless `options` say otherwise), always removed."""
        run_options = {"cpuset_cpus": SERVER_CPUS, "environment": dict(subject.environment), **options}
        if subject.command is not None:
            run_options["command"] = list(subject.command)
        return self.start(subject.ref, role, subject.port, subject.name, **run_options)

    @contextlib.contextmanager
    def start_healthy(self, subject: Subject, **options) -> Iterator[tuple[Container, str, float]]:
        """Yields (container, base URL, seconds from `docker run` to the first 200 on the health path)."""
        began = time.monotonic()
        with self.container(subject, **options) as container:
            try:
                base_url = containers.base_url(container, subject.port, bridge=self.via is Via.bridge)
            except containers.NotPublished as exc:
                raise BenchFailure(str(exc)) from None

            def alive() -> str | None:
                container.reload()
                if container.status in ("exited", "dead"):
                    tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
                    last = tail[-1] if tail else "no output"
                    return f"container exited with code {container.attrs['State']['ExitCode']}: {last}"
                return None

            path = subject.health_path or "/"
            ready = wait_for_200(base_url + path, alive=alive, configured=subject.health_path is not None)
            yield container, base_url, ready - began

    def time_to_healthy(self, subject: Subject, **options) -> float:
        with self.start_healthy(subject, **options) as (_, _, seconds):
            return seconds

    def settled_workers(self, container: Container, timeout: float = 15.0, still: float = 1.0) -> int:
        """The worker count once it has held still for `still` seconds (workers start one by one)."""
        return settled_workers(container, timeout, still)

    def measure(
        self, subject: Subject, generators: dict[str, Tool], seconds: float, connections: int, path: str
    ) -> BenchResult:
        result = BenchResult(name=subject.name, image=subject.ref)
        try:
            result.image_size_bytes = int(self.client.images.get(subject.ref).attrs["Size"])
            with self.start_healthy(subject) as (container, base_url, healthy):
                result.healthy_seconds = healthy
                result.http1, result.h2c = measure_url(base_url, path, subject.h2c, generators, seconds, connections)
                processes = read_processes(container)
                if processes:
                    result.rss_bytes = rss_bytes(processes)
                    result.processes = len(server_processes(processes))
                    result.workers = count_workers(processes)
                else:
                    stats = container.stats(stream=False)
                    result.rss_bytes = stats.get("memory_stats", {}).get("usage")
        except (BenchFailure, docker.errors.APIError, ValueError) as exc:
            result.error = str(exc).splitlines()[0][:300]
        return result
