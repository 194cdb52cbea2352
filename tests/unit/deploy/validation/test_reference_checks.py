"""Reference checks: selectors, strategy Services, analysis templates and their args, HPA targets.

Each rule test copies k8s/ to a temporary directory (the `k8s` fixture), breaks one thing in the
sources, renders the overlay with the real `kubectl kustomize`, and asserts the exact problem line.
"""

from __future__ import annotations

from pathlib import Path

from k8s_sources import replace_text

from aistudio.deploy.validate import validate_overlay


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
