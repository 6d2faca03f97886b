"""Kubernetes manifests from real BuildPlans of the bundled app; schemas checked offline; no Docker, no cluster."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from toolkit import kube
from toolkit.config import BUNDLED_APP_CONTEXT, load_config
from toolkit.errors import UsageError
from toolkit.plan import USER_UID, BaseImage, make_plan
from toolkit.servers import GRACEFUL_TIMEOUT, SERVERS, get_server

BASE = BaseImage(name="imgtool/python:3.11-bookworm", bootstrapped=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")
PINNED = "localhost:5000/app:granian@sha256:" + "b" * 64


def plans_for(*names: str, workers: int | None = None):
    config = load_config(context=BUNDLED_APP_CONTEXT)
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    specs = [get_server(name) for name in names] if names else list(SERVERS.values())
    return [make_plan(config, spec, BASE, ASSETS, several=len(specs) > 1) for spec in specs]


def objects(*names: str, images: dict | None = None, **options) -> list[dict]:
    return kube.manifests(plans_for(*names), images or {}, kube.KubeOptions(**options))


def by_kind(items: list[dict], kind: str) -> list[dict]:
    return [item for item in items if item["kind"] == kind]


def container(items: list[dict], index: int = 0) -> dict:
    return by_kind(items, "Deployment")[index]["spec"]["template"]["spec"]["containers"][0]


def test_objects_per_server_in_a_namespace_of_their_own():
    items = objects("granian", "uvicorn", max_replicas=6)
    assert [item["kind"] for item in items] == ["Namespace"] + [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    ] * 2
    assert items[0]["metadata"]["name"] == "reference-app"
    assert items[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {item["metadata"].get("namespace") for item in items[1:]} == {"reference-app"}
    assert [d["metadata"]["name"] for d in by_kind(items, "Deployment")] == [
        "reference-app-granian",
        "reference-app-uvicorn",
    ]
    assert "HorizontalPodAutoscaler" not in [item["kind"] for item in objects("granian")]


def test_service_budget_policy_and_autoscaler_select_the_deployments_pods():
    items = objects("granian", replicas=3, max_replicas=9)
    deployment = by_kind(items, "Deployment")[0]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert by_kind(items, "Service")[0]["spec"]["selector"] == selector
    assert by_kind(items, "Service")[0]["spec"]["ports"][0]["targetPort"] == "http"
    assert by_kind(items, "PodDisruptionBudget")[0]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector},
    }
    policy = by_kind(items, "NetworkPolicy")[0]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector and policy["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]}
    ]
    hpa = by_kind(items, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_probes_are_the_images_health_path_on_its_port():
    spec = container(objects("granian", start_period=20))
    assert spec["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = spec["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 20


def test_security_context_meets_the_restricted_standard():
    items = objects("granian")
    pod = by_kind(items, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == USER_UID == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # granian reads GRANIAN_* variables as flags
    security = container(items)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
    assert container(items)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"


def test_the_grace_period_covers_the_pre_stop_pause_and_the_drain():
    pod = by_kind(objects("granian"), "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > kube.PRESTOP_SECONDS + GRACEFUL_TIMEOUT
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": kube.PRESTOP_SECONDS}}


def test_before_kubernetes_1_30_the_pause_is_the_images_python():
    pre_stop = container(objects("granian", kube_version="1.29"))["lifecycle"]["preStop"]
    assert pre_stop["exec"]["command"][0] == "/opt/venv/bin/python"
    assert "time.sleep(5)" in pre_stop["exec"]["command"][-1]


def test_workers_follow_the_cpu_limit_where_the_server_scales_by_cpu():
    items = objects(cpus="1500m")
    for index, name in enumerate(SERVERS):
        env = {item["name"]: item for item in container(items, index)["env"]}
        assert env["PORT"]["value"] == "8000"
        if SERVERS[name].default_workers == "auto":
            assert env["WEB_CONCURRENCY"]["valueFrom"]["resourceFieldRef"] == {
                "containerName": name,
                "resource": "limits.cpu",
                "divisor": "1",
            }
        else:  # hypercorn and daphne: one worker unless told otherwise
            assert "WEB_CONCURRENCY" not in env
        resources = container(items, index)["resources"]
        assert resources["requests"] == resources["limits"] == {"cpu": "1500m", "memory": "512Mi"}
    # A project's own `workers` setting is baked into the image and stays in charge.
    planned = kube.manifests(plans_for("granian", workers=3), {}, kube.KubeOptions())
    assert [item["name"] for item in container(planned)["env"]] == ["PORT"]


def test_a_pinned_image_is_pulled_if_not_present_with_the_reason_for_the_policy_checker():
    pinned = objects("granian", images={"granian": PINNED})
    assert container(pinned)["image"] == PINNED and container(pinned)["imagePullPolicy"] == "IfNotPresent"
    annotations = by_kind(pinned, "Deployment")[0]["metadata"]["annotations"]
    assert annotations == {"checkov.io/skip1": kube.IMAGE_PULL_POLICY_REASON}
    assert kube.IMAGE_PULL_POLICY_REASON.startswith("CKV_K8S_15=")
    plain = objects("granian")
    assert container(plain)["image"] == "imgtool-reference-app:granian"
    assert container(plain)["imagePullPolicy"] == "Always"
    assert "annotations" not in by_kind(plain, "Deployment")[0]["metadata"]


LATEST = ".".join(kubernetes_validate.latest_version().split(".")[:2])


@pytest.mark.parametrize(
    ("written_for", "checked_against"),
    [(kube.DEFAULT_KUBE_VERSION, kube.DEFAULT_KUBE_VERSION), ("1.29", "1.29"), (kube.DEFAULT_KUBE_VERSION, LATEST)],
)
def test_every_object_passes_the_kubernetes_schema_strictly(written_for, checked_against):
    items = objects(images={"granian": PINNED}, max_replicas=4, kube_version=written_for)
    assert kube.validate(items, checked_against) == []


def test_a_field_the_schema_lacks_is_reported():
    items = objects("granian")
    container(items)["restart"] = "Always"  # no such container field
    problems = kube.validate(items, "1.30")
    assert len(problems) == 1 and "Deployment/reference-app-granian" in problems[0]
    # 1.28's schema has no sleep action (1.29's has it, alpha and off): before 1.30 the exec form is written.
    assert kube.validate(objects("granian", kube_version="1.30"), "1.28")
    assert kube.validate(objects("granian", kube_version="1.28"), "1.28") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 0}, "--replicas 0"),
        ({"replicas": 3, "max_replicas": 2}, "--max-replicas 2"),
        ({"cpus": "one"}, "--cpus"),
        ({"cpus": "0"}, "--cpus"),
        ({"memory": "512MB"}, "--memory"),
        ({"kube_version": "2.0"}, "--kube-version"),
        ({"namespace": "default"}, "--namespace"),
        ({"namespace": "Has_Caps"}, "--namespace"),
        ({"start_period": 0}, "--start-period"),
    ],
)
def test_options_are_checked(options, message):
    with pytest.raises(UsageError, match=message):
        objects("granian", **options)


def test_yaml_is_one_document_per_object_after_a_header():
    items = objects("granian", images={"granian": PINNED})
    text = kube.dump(items)
    assert text.startswith("# Generated by imgtool") and "kubectl apply -f" in text
    assert list(yaml.safe_load_all(text)) == items
