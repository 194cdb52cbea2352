"""Security checks: Pod Security "restricted", our container rules, pinned images, no secret values.

Each rule test copies k8s/ to a temporary directory (the `k8s` fixture), breaks one thing in the
sources, renders the overlay with the real `kubectl kustomize`, and asserts the exact problem line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_sources import edit_yaml, replace_text, server

from aistudio.deploy.validate import validate_overlay
from aistudio.deploy.validation.security import image_problem


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
