"""Metric-contract checks: only series the server exports are queried; analyses guard an empty result.

Each rule test copies k8s/ to a temporary directory (the `k8s` fixture), breaks one thing in the
sources, renders the overlay with the real `kubectl kustomize`, and asserts the exact problem line.
"""

from __future__ import annotations

from pathlib import Path

from k8s_sources import replace_text

from aistudio.deploy.validate import validate_overlay


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


def test_an_hpa_scaling_on_an_unknown_server_metric_is_reported(k8s: Path) -> None:
    replace_text(k8s / "base" / "hpa.yaml", "name: aistudio_queue_depth", "name: aistudio_queue_length")
    assert validate_overlay(k8s / "overlays" / "production") == [
        (
            "production: HorizontalPodAutoscaler/model-server: Pods metric queries aistudio_queue_length, "
            "which the model server does not export (aistudio.deploy.contract.SERVER_METRICS)"
        )
    ]
