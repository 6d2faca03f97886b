"""The container contract: the labels imgtool writes and reads, run ids, and the containers a run starts.

Images carry `imgtool.*` labels (written by plan.py, compose.py and base.py; read by the smoke suite,
bench and `imgtool base`). Every container `imgtool test` and `imgtool bench` start is labelled
`imgtool.test=<run id>` and `imgtool.test.role=<role>`, publishes its port on 127.0.0.1 only and is
removed afterwards; the label also finds what a Ctrl-C left between `docker run` and its context manager.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

import docker
import docker.errors
import docker.models.containers

from toolkit.errors import UsageError
from toolkit.servers import SERVERS, ServerSpec

# ---- label keys ----

# "base" on the offline bootstrap base, "compose" on the services of an emitted compose file.
LABEL = "imgtool"
VERSION_LABEL = "imgtool.version"
SERVER_LABEL = "imgtool.server"
APP_LABEL = "imgtool.app"
# "asgi" or "wsgi": how the image's server calls the app (absent on images from before WSGI: asgi).
INTERFACE_LABEL = "imgtool.interface"
PROTOCOLS_LABEL = "imgtool.protocols"
PORT_LABEL = "imgtool.port"
HEALTH_PATH_LABEL = "imgtool.health-path"
# "reference" when the app serves the bundled app's routes, else "generic".
ROUTES_LABEL = "imgtool.routes"
# A WebSocket route of the app ([tool.imgtool] ws-path), for the smoke suite's ws check.
WS_PATH_LABEL = "imgtool.ws-path"
# "server" on a per-server base (`imgtool base build`), with its Python version and packages.
SERVER_BASE_LABEL = "imgtool.base"
PYTHON_LABEL = "imgtool.python"
PACKAGES_LABEL = "imgtool.packages"
# On every container a smoke or bench run starts: the run's id, and what the container is for.
TEST_LABEL = "imgtool.test"
ROLE_LABEL = "imgtool.test.role"

DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"
RUN_ID_ENV = "IMGTOOL_RUN_ID"

Container = docker.models.containers.Container


class Role(StrEnum):
    """What a container of a run is for: its `imgtool.test.role` label and part of its name."""

    MAIN = "main"  # the smoke suite's main container: health, protocols, graceful stop, lifespan
    TLS = "tls"  # the smoke suite's TLS listener (h2-tls)
    READONLY = "readonly"  # the smoke suite's hardened container
    BENCH = "bench"  # a container under load


# ---- run ids ----


def new_run_id() -> str:
    return secrets.token_hex(4)


def current_run_id() -> str:
    """`IMGTOOL_RUN_ID` when a caller (CI, a test session) set it to find and clean exactly its own
    containers; else a new id."""
    return os.environ.get(RUN_ID_ENV) or new_run_id()


# ---- what an image's labels say ----


@dataclass(frozen=True)
class ImageLabels:
    """What imgtool's labels say about an image; the defaults for an image without them."""

    ref: str
    server: str | None = None
    app: str | None = None
    port: int = DEFAULT_PORT
    # None: the image has no health route; any answer below 500 at / counts (the image's own rule).
    health_path: str | None = None
    reference_routes: bool = False
    ws_path: str | None = None
    interface: str = "asgi"

    @property
    def spec(self) -> ServerSpec | None:
        """The registry's entry for the image's server, set up for the image's interface; None for an image imgtool
        did not build."""
        spec = SERVERS.get(self.server or "")
        if spec is None or self.interface not in spec.interfaces:
            return spec
        return spec.serving(self.interface)

    @property
    def name(self) -> str:
        """How reports name the image: its server, else its reference."""
        spec = self.spec
        return spec.name if spec else self.ref


def image_labels(client: docker.DockerClient, ref: str) -> ImageLabels:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {ref} not found: build it first (imgtool build) or pass an existing --image") from None
    labels = image.labels or {}
    reference_routes = labels.get(ROUTES_LABEL) == "reference"
    return ImageLabels(
        ref=ref,
        server=labels.get(SERVER_LABEL),
        app=labels.get(APP_LABEL),
        port=int(labels.get(PORT_LABEL, DEFAULT_PORT)),
        health_path=labels.get(HEALTH_PATH_LABEL) or None,
        reference_routes=reference_routes,
        ws_path=labels.get(WS_PATH_LABEL) or ("/ws" if reference_routes else None),
        interface=labels.get(INTERFACE_LABEL) or "asgi",
    )


# ---- the containers of a run ----


def run_labels(run_id: str, role: Role) -> dict[str, str]:
    return {TEST_LABEL: run_id, ROLE_LABEL: role}


@contextlib.contextmanager
def run_container(
    client: docker.DockerClient,
    ref: str,
    *,
    run_id: str,
    role: Role,
    port: int,
    subject: str,
    kind: str = "test",
    **options,
) -> Iterator[Container]:
    """A started container of `ref` with `port` published on 127.0.0.1 (an ephemeral host port), labelled
    with the run id and its role; always removed with its anonymous volumes, also on errors and Ctrl-C.

    Named `imgtool-<kind>-<run id>-<subject>-<role>-<4 hex>`: a run may start the same subject and role
    again (bench's repeated starts), and a container whose removal lags never blocks the next.
    """
    slug = re.sub(r"[^a-zA-Z0-9_.-]", "-", subject)
    container = client.containers.run(
        ref,
        detach=True,
        name=f"imgtool-{kind}-{run_id}-{slug}-{role}-{secrets.token_hex(2)}",
        labels=run_labels(run_id, role),
        ports={f"{port}/tcp": (LOOPBACK, None)},
        **options,
    )
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def remove_test_containers(client: docker.DockerClient, run_id: str | None = None) -> int:
    """Remove the containers a run left (all runs' when run_id is None); returns how many."""
    label = f"{TEST_LABEL}={run_id}" if run_id else TEST_LABEL
    found = client.containers.list(all=True, filters={"label": label})
    for container in found:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    return len(found)


class Run:
    """The containers of one run (`imgtool test`, `imgtool bench`), as a context manager: each started with
    the run's labels, all removed when it ends. Ctrl-C can land between the engine creating a container and
    `run` returning it: the label finds what no context manager got to see."""

    kind = "test"  # the second word of the containers' names

    def __init__(self, client: docker.DockerClient, run_id: str):
        self.client = client
        self.run_id = run_id

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        remove_test_containers(self.client, self.run_id)

    def start(
        self, ref: str, role: Role, port: int, subject: str, **options
    ) -> contextlib.AbstractContextManager[Container]:
        """`run_container` for this run."""
        return run_container(
            self.client, ref, run_id=self.run_id, role=role, port=port, subject=subject, kind=self.kind, **options
        )


# ---- addresses ----


class NotPublished(Exception):
    """Docker published no host port for the container's port (it exited, or was started without one)."""


def host_port(container: Container, port: int) -> int:
    """The 127.0.0.1 port Docker published the container's `port` on, read fresh from the engine."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
    if not bindings:
        raise NotPublished(f"port {port} was not published (container {container.status})")
    return int(bindings[0]["HostPort"])


def base_url(container: Container, port: int, bridge: bool = False) -> str:
    """`http://127.0.0.1:<host port>` (through Docker's userland proxy); with `bridge`, the container's own
    address on Docker's bridge where it has one, as a load balancer would reach it. The port must be
    published either way: a container that lost it is not serving."""
    published = host_port(container, port)
    address = container.attrs["NetworkSettings"].get("IPAddress")
    if bridge and address:
        return f"http://{address}:{port}"
    return f"http://{LOOPBACK}:{published}"
