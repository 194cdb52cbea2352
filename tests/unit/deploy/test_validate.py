"""aistudio.deploy.validate: the real manifests pass, and each rule catches the mistake it is for.

Every rule test copies k8s/ to a temporary directory, breaks one thing in the sources, renders
the overlay with the real `kubectl kustomize`, and asserts the exact problem line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from aistudio.deploy.validate import SCHEMA_DIR, image_problem, validate_all, validate_overlay

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "staging", "production")


@pytest.fixture
def k8s(tmp_path: Path) -> Path:
    """A private copy of k8s/ to break."""
    return Path(shutil.copytree(K8S, tmp_path / "k8s"))


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None], kind: str | None = None) -> None:
    """Apply `change` to the document of `kind` in a (multi-document) YAML file; comments are lost."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    matching = [doc for doc in documents if kind is None or doc.get("kind") == kind]
    assert matching, f"no {kind} in {path}"
    change(matching[0])
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def replace_text(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old`; a test must know exactly what it breaks."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def server(rollout: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in rollout["spec"]["template"]["spec"]["containers"] if c["name"] == "server")


# --- the real manifests -------------------------------------------------------------------------


def test_every_render_of_the_repository_manifests_has_no_problems() -> None:
    results = validate_all(K8S)
    assert set(results) == {"platform", *OVERLAYS}
    assert results == {name: [] for name in results}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_validates_on_its_own(overlay: str) -> None:
    assert validate_overlay(K8S / "overlays" / overlay) == []


def test_every_probe_in_the_sources_explains_its_timing() -> None:
    """Probe timings are judgement calls; the comment above each one says whose judgement."""
    missing = []
    for path in sorted(K8S.rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("#"):
                continue
            if any(probe in line for probe in ("startupProbe", "readinessProbe", "livenessProbe")):
                above = lines[max(0, number - 3) : number]
                if not any(previous.strip().startswith("#") for previous in above):
                    missing.append(f"{path.relative_to(REPO)}:{number + 1}: {line.strip()}")
    assert missing == []


# --- security ------------------------------------------------------------------------------------


def test_a_container_that_may_run_as_root_is_reported(k8s: Path) -> None:
    def allow_root(rollout: dict[str, Any]) -> None:
        del rollout["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
        del server(rollout)["securityContext"]["runAsNonRoot"]

    edit_yaml(k8s / "base" / "rollout.yaml", allow_root)
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: Rollout/model-server: container server does not set runAsNonRoot: true "
            "(pod or container securityContext)"
        )
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            lambda sc: sc.update(allowPrivilegeEscalation=True),
            "container server does not set securityContext.allowPrivilegeEscalation: false",
            id="privilege-escalation",
        ),
        pytest.param(
            lambda sc: sc.update(capabilities={"drop": ["NET_RAW"]}),
            "container server does not drop ALL capabilities",
            id="capabilities-kept",
        ),
        pytest.param(
            lambda sc: sc.update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
            "container server adds capabilities SYS_ADMIN; only NET_BIND_SERVICE is allowed",
            id="capability-added",
        ),
        pytest.param(
            lambda sc: sc.update(readOnlyRootFilesystem=False),
            "container server does not set securityContext.readOnlyRootFilesystem: true",
            id="writable-root",
        ),
    ],
)
def test_container_security_context_gaps_are_reported(k8s: Path, change: Callable, problem: str) -> None:
    edit_yaml(k8s / "base" / "rollout.yaml", lambda rollout: change(server(rollout)["securityContext"]))
    assert validate_overlay(k8s / "overlays" / "production") == [
        f"production: Rollout/model-server: {problem}"
    ]


def test_a_pod_without_a_seccomp_profile_is_reported_for_each_container(k8s: Path) -> None:
    edit_yaml(
        k8s / "base" / "rollout.yaml",
        lambda r: r["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
    )
    suffix = "has no seccompProfile type RuntimeDefault (pod or container securityContext)"
    assert validate_overlay(k8s / "overlays" / "dev") == [
        f"dev: Rollout/model-server: init container fetch-bundle {suffix}",
        f"dev: Rollout/model-server: container server {suffix}",
    ]


def test_a_read_only_root_without_a_writable_tmp_is_reported(k8s: Path) -> None:
    def drop_tmp(rollout: dict[str, Any]) -> None:
        mounts = server(rollout)["volumeMounts"]
        mounts[:] = [m for m in mounts if m["mountPath"] != "/tmp"]

    edit_yaml(k8s / "base" / "rollout.yaml", drop_tmp)
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Rollout/model-server: container server has a read-only root filesystem but no "
        "writable volume at /tmp"
    ]


def test_a_host_path_volume_is_reported(k8s: Path) -> None:
    edit_yaml(
        k8s / "base" / "rollout.yaml",
        lambda r: r["spec"]["template"]["spec"]["volumes"].append(
            {"name": "host", "hostPath": {"path": "/var"}}
        ),
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Rollout/model-server: volume host is a hostPath volume, which the restricted Pod "
        "Security level forbids"
    ]


def test_missing_limits_are_reported(k8s: Path) -> None:
    edit_yaml(
        k8s / "base" / "rollout.yaml",
        lambda r: r["spec"]["template"]["spec"]["initContainers"][0]["resources"].pop("limits"),
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Rollout/model-server: init container fetch-bundle sets no resources.limits.cpu, "
        "resources.limits.memory"
    ]


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_a_serving_container_without_a_probe_is_reported(k8s: Path, probe: str) -> None:
    edit_yaml(k8s / "base" / "rollout.yaml", lambda rollout: server(rollout).pop(probe))
    # The GPU component patches the startup probe; in dev nothing does, so the render succeeds.
    assert validate_overlay(k8s / "overlays" / "dev") == [
        f"dev: Rollout/model-server: container server has no {probe}"
    ]


# --- images --------------------------------------------------------------------------------------


def test_a_latest_image_tag_is_reported(k8s: Path) -> None:
    edit_yaml(
        k8s / "base" / "rollout.yaml",
        lambda r: server(r).update(image="ghcr.io/aistudio/model-server:latest"),
    )
    replace_text(k8s / "overlays" / "dev" / "kustomization.yaml", "    newTag: 0.1.0-cpu\n", "")
    assert validate_overlay(k8s / "overlays" / "dev") == [
        (
            "dev: Rollout/model-server: container server image ghcr.io/aistudio/model-server:latest "
            "uses the mutable tag latest; pin a version"
        )
    ]


def test_a_tag_where_only_digests_run_is_reported_with_the_fix(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "production" / "kustomization.yaml", "    digest: sha256:", "    newTag: x"
    )
    problems = validate_overlay(k8s / "overlays" / "production")
    assert len(problems) == 2, problems  # the init container and the server
    assert problems[0].startswith(
        "production: Rollout/model-server: container fetch-bundle image ghcr.io/aistudio/model-server:x"
    )
    assert "is not pinned by digest; this environment runs digests only — pin it by digest: " in problems[0]


def test_api_keys_as_an_env_value_are_reported(k8s: Path) -> None:
    def keys_in_env(rollout: dict[str, Any]) -> None:
        server(rollout)["env"].append(
            {"name": "AISTUDIO_API_KEYS", "valueFrom": {"secretKeyRef": {"name": "k", "key": "keys"}}}
        )

    edit_yaml(k8s / "base" / "rollout.yaml", keys_in_env)
    assert validate_overlay(k8s / "overlays" / "dev") == [
        "dev: Rollout/model-server: container server gets API keys as the env value AISTUDIO_API_KEYS; "
        "mount the key file from the Secret and set AISTUDIO_API_KEY_FILE to its path"
    ]


def test_an_untagged_image_is_reported(k8s: Path) -> None:
    edit_yaml(
        k8s / "mlflow-deployment.yaml",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="ghcr.io/mlflow/mlflow"),
        kind="Deployment",
    )
    assert validate_overlay(k8s, name="platform") == [
        "platform: Deployment/mlflow: container mlflow image ghcr.io/mlflow/mlflow has no tag; pin a version"
    ]


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("registry:5000/team/server:1.2.3", None),
        ("registry:5000/team/server", "image registry:5000/team/server has no tag; pin a version"),
        ("server:latest@sha256:" + "a" * 64, None),
        ("server:latest", "image server:latest uses the mutable tag latest; pin a version"),
    ],
)
def test_image_pinning_reads_registry_ports_and_digests_correctly(image: str, problem: str | None) -> None:
    assert image_problem(image) == problem


# --- cross references ----------------------------------------------------------------------------


def test_a_service_whose_selector_matches_no_pods_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "services.yaml",
        "  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: model-server\n",
        "  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: model-servr\n",
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Service/model-server: selector app.kubernetes.io/name=model-servr matches no pod "
        "template in the render"
    ]


def test_a_rollout_naming_a_missing_analysis_template_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "production" / "kustomization.yaml",
        "templateName: model-server-latency-p95",
        "templateName: model-server-error-budget",
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: Rollout/model-server: strategy.canary.analysis references AnalysisTemplate "
            "model-server-error-budget, which is not in the render"
        )
    ]


def test_an_analysis_missing_a_required_arg_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "staging" / "kustomization.yaml",
        "                - name: canary-hash\n                  valueFrom:\n                    "
        "podTemplateHashValue: Latest\n",
        "",
    )
    assert validate_overlay(k8s / "overlays" / "staging") == [
        "staging: Rollout/model-server: strategy.blueGreen.prePromotionAnalysis does not pass arg "
        "canary-hash "
        f"that AnalysisTemplate/{template} requires"
        for template in ("model-server-success-rate", "model-server-latency-p95")
    ]


def test_a_strategy_service_missing_from_the_render_is_reported(k8s: Path) -> None:
    replace_text(k8s / "overlays" / "staging" / "kustomization.yaml", "  - preview-service.yaml\n", "")
    assert validate_overlay(k8s / "overlays" / "staging") == [
        (
            "staging: Rollout/model-server: strategy.blueGreen.previewService names Service "
            "model-server-preview, "
            "which is not in the render"
        )
    ]


def test_an_hpa_targeting_a_missing_workload_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "hpa.yaml",
        "    name: model-server\n  minReplicas",
        "    name: model-serving\n  minReplicas",
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: HorizontalPodAutoscaler/model-server: scaleTargetRef Rollout/model-serving is not in "
        "the render"
    ]


# --- metric contract -----------------------------------------------------------------------------


def test_an_analysis_query_naming_an_unknown_metric_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "analysis-templates.yaml",
        'sum(rate(aistudio_requests_total{namespace="{{args.namespace}}", '
        'rollouts_pod_template_hash="{{args.canary-hash}}", status=~"2xx|4xx"}',
        'sum(rate(aistudio_bogus_total{namespace="{{args.namespace}}", '
        'rollouts_pod_template_hash="{{args.canary-hash}}", status=~"2xx|4xx"}',
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: AnalysisTemplate/model-server-success-rate: metric success-rate queries "
            "aistudio_bogus_total, "
            "which the model server does not export (aistudio.deploy.contract.SERVER_METRICS)"
        )
    ]


def test_an_alert_rule_naming_an_unknown_metric_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "monitoring-stack.yaml", "expr: aistudio_queue_depth > 48", "expr: aistudio_bogus_total > 48"
    )
    assert validate_overlay(k8s, name="platform") == [
        (
            "platform: PrometheusRule/aistudio-model-server: rule QueueSaturation queries "
            "aistudio_bogus_total, "
            "which the model server does not export (aistudio.deploy.contract.SERVER_METRICS)"
        )
    ]


def test_a_histogram_suffix_on_a_gauge_is_an_unknown_metric(k8s: Path) -> None:
    replace_text(
        k8s / "monitoring-stack.yaml",
        "expr: aistudio_queue_depth > 48",
        "expr: aistudio_queue_depth_bucket > 48",
    )
    assert validate_overlay(k8s, name="platform") == [
        (
            "platform: PrometheusRule/aistudio-model-server: rule QueueSaturation queries "
            "aistudio_queue_depth_bucket, "
            "which the model server does not export (aistudio.deploy.contract.SERVER_METRICS)"
        )
    ]


def test_an_analysis_that_does_not_guard_an_empty_result_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "analysis-templates.yaml",
        "successCondition: len(result) > 0 && result[0] <= {{args.max-p95-seconds}}",
        "successCondition: result[0] <= {{args.max-p95-seconds}}",
    )
    assert validate_overlay(k8s / "overlays" / "staging") == [
        (
            "staging: AnalysisTemplate/model-server-latency-p95: metric latency-p95 must check len(result) "
            "in both "
            "successCondition and failureCondition, so an empty result (a quiet canary) is Inconclusive"
        )
    ]


# --- schemas -------------------------------------------------------------------------------------


def test_a_rollout_field_unknown_to_the_crd_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "staging" / "kustomization.yaml",
        "autoPromotionEnabled: false",
        "autoPromotion: false",
    )
    assert validate_overlay(k8s / "overlays" / "staging") == [
        (
            "staging: Rollout/model-server: spec.strategy.blueGreen: Additional properties are not allowed "
            "('autoPromotion' was unexpected)"
        )
    ]


def test_a_rollout_value_of_the_wrong_type_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "production" / "kustomization.yaml", "- setWeight: 50", "- setWeight: fifty"
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Rollout/model-server: spec.strategy.canary.steps[2].setWeight: 'fifty' is not of type "
        "'integer'"
    ]


def test_a_rollout_with_two_strategies_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "staging" / "kustomization.yaml",
        "        value:\n          blueGreen:",
        "        value:\n          canary:\n            steps:\n              - setWeight: 100\n          "
        "blueGreen:",
    )
    assert validate_overlay(k8s / "overlays" / "staging") == [
        "staging: Rollout/model-server: spec.strategy: must set exactly one of canary, blueGreen"
    ]


def test_an_unknown_field_in_a_rollout_pod_template_is_checked_against_the_core_schema(k8s: Path) -> None:
    edit_yaml(k8s / "base" / "rollout.yaml", lambda r: server(r).update(imagePolicy="Always"))
    assert validate_overlay(k8s / "overlays" / "dev") == [
        (
            "dev: Rollout/model-server: spec.template.spec.containers[0]: Additional properties are not "
            "allowed "
            "('imagePolicy' was unexpected)"
        )
    ]


def test_an_unknown_field_in_a_core_kind_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "services.yaml", "  type: ClusterIP\n", "  type: ClusterIP\n  sessionAfinity: None\n"
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        "production: Service/model-server: spec: Additional properties are not allowed ('sessionAfinity' "
        "was unexpected)"
    ]


def test_a_service_monitor_field_unknown_to_the_crd_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "monitoring-stack.yaml",
        "      scrapeTimeout: 10s\n",
        "      scrapeTimeout: 10s\n      timeout: 10s\n",
    )
    assert validate_overlay(k8s, name="platform") == [
        (
            "platform: ServiceMonitor/aistudio-model-server: spec.endpoints[0]: Additional properties are "
            "not allowed "
            "('timeout' was unexpected)"
        )
    ]


# --- secrets -------------------------------------------------------------------------------------


def test_an_inline_secret_in_env_is_reported(k8s: Path) -> None:
    edit_yaml(
        k8s / "base" / "rollout.yaml",
        lambda r: r["spec"]["template"]["spec"]["initContainers"][0]["env"].append(
            {"name": "MLFLOW_TRACKING_TOKEN", "value": "s3cr3t"}
        ),
    )
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: Rollout/model-server: init container fetch-bundle sets MLFLOW_TRACKING_TOKEN "
            "inline; "
            "use valueFrom.secretKeyRef"
        )
    ]


def test_credentials_inside_a_uri_are_reported(k8s: Path) -> None:
    def inline_database_uri(deployment: dict[str, Any]) -> None:
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        env[0] = {"name": "MLFLOW_BACKEND_STORE_URI", "value": "postgresql://mlflow:hunter2@db:5432/mlflow"}

    edit_yaml(k8s / "mlflow-deployment.yaml", inline_database_uri, kind="Deployment")
    assert validate_overlay(k8s, name="platform") == [
        (
            "platform: Deployment/mlflow: container mlflow embeds credentials in MLFLOW_BACKEND_STORE_URI; "
            "use valueFrom.secretKeyRef"
        )
    ]


def test_a_committed_secret_is_reported(k8s: Path) -> None:
    (k8s / "overlays" / "dev" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hf\nstringData:\n  token: hf_abc\n"
    )
    replace_text(
        k8s / "overlays" / "dev" / "kustomization.yaml",
        "  - ../../base\n",
        "  - ../../base\n  - secret.yaml\n",
    )
    assert validate_overlay(k8s / "overlays" / "dev") == [
        (
            "dev: Secret/hf: Secret values must not be committed; create the Secret out of band "
            "(secret manager, sealed-secrets) and reference it by name"
        )
    ]


# --- rendering -----------------------------------------------------------------------------------


def test_a_kustomization_that_does_not_build_is_one_problem(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "production" / "kustomization.yaml", "  - ../../base\n", "  - ../../bases\n"
    )
    problems = validate_overlay(k8s / "overlays" / "production")
    assert len(problems) == 1
    assert problems[0].startswith("production: kustomize build failed: ")
    assert "bases" in problems[0]


def test_an_hpa_scaling_on_an_unknown_server_metric_is_reported(k8s: Path) -> None:
    replace_text(k8s / "base" / "hpa.yaml", "name: aistudio_queue_depth", "name: aistudio_queue_length")
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: HorizontalPodAutoscaler/model-server: Pods metric queries aistudio_queue_length, "
            "which the model server does not export (aistudio.deploy.contract.SERVER_METRICS)"
        )
    ]


def test_a_network_policy_selecting_no_pods_is_reported(k8s: Path) -> None:
    replace_text(
        k8s / "base" / "networkpolicy.yaml",
        "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: model-server\n",
        "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: model-server-v2\n",
    )
    assert validate_overlay(k8s / "overlays" / "dev") == [
        "dev: NetworkPolicy/model-server: selector app.kubernetes.io/name=model-server-v2 matches no pod "
        "template in the render"
    ]


@pytest.mark.parametrize("schema", sorted(p.name for p in SCHEMA_DIR.glob("*.json")))
def test_every_bundled_crd_schema_is_a_valid_json_schema(schema: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMA_DIR / schema).read_text()))
