"""Schema checks: core kinds strictly against the Kubernetes schema, CRDs against the bundled ones.

Each rule test copies k8s/ to a temporary directory (the `k8s` fixture), breaks one thing in the
sources, renders the overlay with the real `kubectl kustomize`, and asserts the exact problem line.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from k8s_sources import edit_yaml, replace_text, server

from aistudio.deploy.validate import validate_overlay
from aistudio.deploy.validation.schema import SCHEMA_DIR


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
    # The base's step: the overlays' steps come from configs/deployment_config.yaml at render time.
    replace_text(k8s / "base" / "rollout.yaml", "- setWeight: 100", "- setWeight: fifty")
    assert validate_overlay(k8s / "overlays" / "dev") == [
        "dev: Rollout/model-server: spec.strategy.canary.steps[0].setWeight: 'fifty' is not of type 'integer'"
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


@pytest.mark.parametrize("schema", sorted(p.name for p in SCHEMA_DIR.glob("*.json")))
def test_every_bundled_crd_schema_is_a_valid_json_schema(schema: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMA_DIR / schema).read_text()))
