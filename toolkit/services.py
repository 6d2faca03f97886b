"""Backing services for a local stack (`imgtool compose --with postgres --with redis`), as data.

Adding a service means adding one `ServiceSpec` here, like a server in toolkit/servers.py: its
image, the healthcheck that says it is ready, the named volume that keeps its data, its own
environment, and the connection settings the app receives. `with_services` adds them to a compose
model (pure): each service gets a healthcheck and a volume, and every app service gets the settings
and `depends_on: {<service>: {condition: service_healthy}}`, so the app starts only once it can connect.

The images are whatever the engine has or can pull (`pull_policy: missing`); `--with NAME=IMAGE`
names another one (a mirror, a pinned digest, or a locally built stand-in where no registry answers).
Nothing is published on the host: the app reaches a service by its name on the project's network.
Passwords are local-development defaults, overridable from the environment at `docker compose up`
(`POSTGRES_PASSWORD=... docker compose up`), never secrets worth keeping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from toolkit.errors import UsageError


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    summary: str
    image: str
    port: int
    # Compose healthcheck `test`; the intervals are shared (below).
    healthcheck: tuple[str, ...]
    # Where the service keeps its data; a named volume `<name>-data` is mounted there.
    data_dir: str
    # The service's own environment (compose interpolation allowed: ${VAR:-default}).
    environment: dict[str, str] = field(default_factory=dict)
    # What the app gets to connect (same interpolation, so one override changes both sides).
    app_environment: dict[str, str] = field(default_factory=dict)

    @property
    def volume(self) -> str:
        return f"{self.name}-data"


# Local development credentials: `${POSTGRES_PASSWORD:-imgtool}` lets `docker compose up` take another.
_PG_USER = "${POSTGRES_USER:-app}"
_PG_PASSWORD = "${POSTGRES_PASSWORD:-imgtool}"
_PG_DB = "${POSTGRES_DB:-app}"

SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            name="postgres",
            summary="PostgreSQL (official image's POSTGRES_* variables)",
            image="postgres:17-bookworm",
            port=5432,
            # $$: compose must leave these to the container's shell, which has them from `environment`.
            healthcheck=("CMD-SHELL", 'pg_isready -h 127.0.0.1 -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}"'),
            data_dir="/var/lib/postgresql/data",
            environment={"POSTGRES_USER": _PG_USER, "POSTGRES_PASSWORD": _PG_PASSWORD, "POSTGRES_DB": _PG_DB},
            app_environment={
                "DATABASE_URL": f"postgresql://{_PG_USER}:{_PG_PASSWORD}@postgres:5432/{_PG_DB}",
                # The names the FastAPI full-stack template and many settings classes read.
                "POSTGRES_SERVER": "postgres",
                "POSTGRES_HOST": "postgres",
                "POSTGRES_PORT": "5432",
                "POSTGRES_USER": _PG_USER,
                "POSTGRES_PASSWORD": _PG_PASSWORD,
                "POSTGRES_DB": _PG_DB,
            },
        ),
        ServiceSpec(
            name="redis",
            summary="Redis",
            image="redis:7-bookworm",
            port=6379,
            healthcheck=("CMD", "redis-cli", "ping"),
            data_dir="/data",
            app_environment={"REDIS_URL": "redis://redis:6379/0"},
        ),
    )
}

HEALTH_INTERVAL = "2s"
HEALTH_TIMEOUT = "3s"
HEALTH_RETRIES = 15
HEALTH_START_PERIOD = "30s"
# An image reference, loosely: no spaces or control characters, no scheme.
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


@dataclass(frozen=True)
class Selected:
    spec: ServiceSpec
    image: str


def get_service(name: str) -> ServiceSpec:
    try:
        return SERVICES[name]
    except KeyError:
        raise UsageError(f"unknown service {name!r} for --with: choose from {', '.join(SERVICES)}") from None


def parse_with(values: Sequence[str] | None) -> list[Selected]:
    """`--with NAME` or `--with NAME=IMAGE`, each service once, in the order given."""
    chosen: dict[str, Selected] = {}
    for value in values or []:
        name, sep, image = value.partition("=")
        spec = get_service(name.strip())
        image = image.strip() if sep else spec.image
        if not image or not _IMAGE_RE.match(image) or "://" in image:
            raise UsageError(f"--with {value!r}: {image!r} is not an image reference, e.g. --with {name}={spec.image}")
        if spec.name in chosen:
            raise UsageError(f"--with {spec.name} given twice: pass each service once")
        chosen[spec.name] = Selected(spec, image)
    return list(chosen.values())


def service_model(selected: Selected, labels: Mapping[str, str] | None = None) -> dict:
    spec = selected.spec
    service: dict = {
        "image": selected.image,
        "pull_policy": "missing",
        "restart": "unless-stopped",
    }
    if spec.environment:
        service["environment"] = dict(spec.environment)
    service.update(
        {
            "volumes": [f"{spec.volume}:{spec.data_dir}"],
            "healthcheck": {
                "test": list(spec.healthcheck),
                "interval": HEALTH_INTERVAL,
                "timeout": HEALTH_TIMEOUT,
                "retries": HEALTH_RETRIES,
                "start_period": HEALTH_START_PERIOD,
            },
            "labels": {"imgtool": "service", "imgtool.service": spec.name, **(labels or {})},
        }
    )
    return service


def with_services(model: dict, selected: Sequence[Selected], apps: Sequence[str] | None = None) -> dict:
    """The model with each selected service added, and every app service (default: all already in the
    model) given the connection settings and a healthy dependency on it. Returns a new dict."""
    if not selected:
        return model
    services = dict(model["services"])
    clash = [item.spec.name for item in selected if item.spec.name in services]
    if clash:
        raise UsageError(f"a service named {clash[0]} is already in the stack: it cannot also be added with --with")
    app_names = list(apps) if apps is not None else list(services)
    for name in app_names:
        app = dict(services[name])
        environment = dict(app.get("environment", {}))
        depends_on = dict(app.get("depends_on", {}))
        for item in selected:
            environment.update(item.spec.app_environment)
            depends_on[item.spec.name] = {"condition": "service_healthy"}
        app["environment"] = environment
        app["depends_on"] = depends_on
        services[name] = app
    for item in selected:
        services[item.spec.name] = service_model(item)
    volumes = dict(model.get("volumes", {}))
    for item in selected:
        volumes[item.spec.volume] = {}
    result = {key: value for key, value in model.items() if key not in ("services", "volumes")}
    result["services"] = services
    result["volumes"] = volumes
    # Keep the usual order: name, services, then volumes and secrets.
    order = ["name", "services", "volumes"]
    return {key: result[key] for key in [*order, *[k for k in result if k not in order]] if key in result}
