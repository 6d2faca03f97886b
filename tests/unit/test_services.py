"""Backing services (`--with postgres --with redis`): the registry and the compose model additions; no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolkit import compose
from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.errors import UsageError
from toolkit.plan import BaseImage, make_plan
from toolkit.servers import SERVERS
from toolkit.services import SERVICES, parse_with, service_model, with_services

BASE = BaseImage(name="imgtool/python:3.11-bookworm", bootstrapped=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")


def app_model(*servers: str) -> dict:
    config = load_config(context=BUNDLED_APP_CONTEXT)
    plans = [make_plan(config, SERVERS[name], BASE, ASSETS, several=len(servers) > 1) for name in servers]
    return compose.compose_model(plans)


def test_registry_entries_are_complete():
    for name, spec in SERVICES.items():
        assert spec.name == name
        assert spec.image and spec.healthcheck[0] in ("CMD", "CMD-SHELL")
        assert spec.data_dir.startswith("/") and spec.volume == f"{name}-data"
        assert spec.app_environment, f"{name} gives the app no connection settings"


def test_parse_with_defaults_and_overrides():
    selected = parse_with(["postgres", "redis=registry.example.com/redis:7@sha256:" + "c" * 64])
    assert [(item.spec.name, item.image) for item in selected] == [
        ("postgres", SERVICES["postgres"].image),
        ("redis", "registry.example.com/redis:7@sha256:" + "c" * 64),
    ]
    assert parse_with(None) == [] and parse_with([]) == []


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["mysql"], "unknown service 'mysql' for --with: choose from postgres, redis"),
        (["postgres", "postgres=other:1"], "--with postgres given twice"),
        (["postgres="], "is not an image reference"),
        (["postgres=bad image"], "is not an image reference"),
        (["redis=https://example.com/redis"], "is not an image reference"),
    ],
)
def test_parse_with_rejects_bad_input_in_one_line(values, fragment):
    with pytest.raises(UsageError) as error:
        parse_with(values)
    assert fragment in str(error.value)


def test_postgres_service_has_healthcheck_volume_and_no_published_port():
    service = service_model(parse_with(["postgres=wt-standin:15"])[0])
    assert service["image"] == "wt-standin:15"
    assert service["pull_policy"] == "missing"
    assert service["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    test = service["healthcheck"]["test"]
    # TCP on 127.0.0.1: during the official image's first-start init only the Unix socket listens.
    assert test[0] == "CMD-SHELL" and "pg_isready -h 127.0.0.1" in test[1]
    # $$: compose leaves the variable to the container's shell.
    assert "$${POSTGRES_USER}" in test[1]
    assert "ports" not in service
    assert service["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-imgtool}"


def test_with_services_wires_every_app_to_each_service():
    model = with_services(app_model("granian", "uvicorn"), parse_with(["postgres", "redis"]))
    assert list(model) == ["name", "services", "volumes"]
    assert list(model["services"]) == ["granian", "uvicorn", "postgres", "redis"]
    assert model["volumes"] == {"postgres-data": {}, "redis-data": {}}
    for app in ("granian", "uvicorn"):
        service = model["services"][app]
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
        env = service["environment"]
        assert env["PORT"] == "8000"  # what the app had stays
        assert env["DATABASE_URL"] == (
            "postgresql://${POSTGRES_USER:-app}:${POSTGRES_PASSWORD:-imgtool}@postgres:5432/${POSTGRES_DB:-app}"
        )
        assert env["POSTGRES_SERVER"] == env["POSTGRES_HOST"] == "postgres"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        # The app keeps its hardening; the services bring their own data volumes.
        assert service["read_only"] is True


def test_with_services_only_to_the_named_apps_and_leaves_the_input_alone():
    original = app_model("granian")
    model = with_services(original, parse_with(["redis"]), apps=[])
    assert "depends_on" not in model["services"]["granian"]
    assert "depends_on" not in original["services"]["granian"] and "redis" not in original["services"]
    assert with_services(original, []) is original


def test_a_service_cannot_shadow_an_app_service():
    model = {"name": "x", "services": {"redis": {"image": "app"}}}
    with pytest.raises(UsageError, match="already in the stack"):
        with_services(model, parse_with(["redis"]))


def test_the_compose_file_text_keeps_the_interpolations(tmp_path):
    model = with_services(app_model("granian"), parse_with(["postgres"]))
    text = compose.dump(model)
    loaded = yaml.safe_load(text)
    assert loaded == model
    assert "${POSTGRES_PASSWORD:-imgtool}" in text
