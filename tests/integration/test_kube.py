"""`imgtool kube` for an image pushed to a registry: schema-valid offline, and clean under a policy checker.

No cluster runs here (README: what a kind or k3s run would add). The manifests are checked two ways:
against the Kubernetes OpenAPI schemas kubernetes-validate ships (strict: no unknown field passes), for
the oldest version they are written for and the newest the package knows; and by checkov's Kubernetes
checks (offline, --skip-download), where no check may fail and every skipped one carries its reason.
"""

from __future__ import annotations

import json

import kubernetes_validate
import yaml

from tests.conftest import run_checkov, run_cli
from toolkit import kube

APP = "images/app"
LATEST = ".".join(kubernetes_validate.latest_version().split(".")[:2])


def test_kube_manifests_for_a_pushed_image_are_valid_and_pass_the_policy_checks(pushed_app, checkov, tmp_path):
    repository, digest = pushed_app
    output = tmp_path / "k8s.yaml"
    result = run_cli(
        "kube", "-s", "granian", "--context", APP, "--tag", f"{repository}:{{server}}", "--replicas", "3",
        "--max-replicas", "6", "-o", str(output), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    assert said["schema_checked"] is True and said["kube_version"] == kube.DEFAULT_KUBE_VERSION
    items = list(yaml.safe_load_all(output.read_text()))
    assert [item["kind"] for item in items] == [
        "Namespace", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler"
    ]  # fmt: skip
    pod = items[1]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"{repository}:granian@{digest}"
    assert kube.validate(items, LATEST) == []

    report = run_checkov(checkov, output)
    summary = report["summary"]
    print(f"\ncheckov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} skipped, {summary['resource_count']} resources")  # fmt: skip
    failed = [(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])]
    assert failed == [] and summary["parsing_errors"] == 0 and summary["passed"] > 50
    skipped = {c["check_id"]: c["check_result"].get("suppress_comment") for c in report["results"]["skipped_checks"]}
    # Only the documented suppressions, each with its reason.
    assert skipped == {"CKV_K8S_15": kube.IMAGE_PULL_POLICY_REASON.split("=", 1)[1]}


def test_kube_for_clusters_before_1_30_pauses_with_the_images_python(pushed_app, tmp_path):
    repository, _ = pushed_app
    output = tmp_path / "k8s.yaml"
    result = run_cli(
        "kube", "-s", "granian", "--context", APP, "--tag", f"{repository}:{{server}}", "--kube-version", "1.28",
        "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "valid for Kubernetes 1.28" in result.stderr
    deployment = list(yaml.safe_load_all(output.read_text()))[1]
    pre_stop = deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
    assert pre_stop["exec"]["command"][:2] == ["/opt/venv/bin/python", "-c"]
