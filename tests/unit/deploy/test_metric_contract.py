"""The metric contract: the names the server exports and how scraped series map onto them."""

from __future__ import annotations

import pytest

from aistudio.deploy.contract import METRIC_KINDS, SERVER_METRICS, metric_family


def test_the_contract_lists_exactly_the_agreed_metrics() -> None:
    assert SERVER_METRICS == {
        "aistudio_requests_total",
        "aistudio_request_duration_seconds",
        "aistudio_time_to_first_token_seconds",
        "aistudio_queue_duration_seconds",
        "aistudio_prompt_tokens_total",
        "aistudio_generation_tokens_total",
        "aistudio_queue_depth",
        "aistudio_scheduler_active_rows",
        "aistudio_scheduler_step_tokens",
        "aistudio_scheduler_step_duration_seconds",
        "aistudio_kv_cache_tokens",
        "aistudio_kv_cache_reserved_tokens",
        "aistudio_kv_cache_budget_tokens",
        "aistudio_adapter_events_total",
        "aistudio_adapters_resident",
        "aistudio_model_info",
        "aistudio_drift_score",
        "aistudio_drift_detected",
        "aistudio_ab_assignments_total",
        "aistudio_feedback_total",
    }


def test_counters_keep_their_total_suffix_and_histograms_have_none() -> None:
    for name, kind in METRIC_KINDS.items():
        assert name.endswith("_total") == (kind == "counter"), name
        assert not name.endswith(("_bucket", "_sum", "_count")), name


@pytest.mark.parametrize(
    ("series", "family"),
    [
        ("aistudio_requests_total", "aistudio_requests_total"),
        ("aistudio_request_duration_seconds_bucket", "aistudio_request_duration_seconds"),
        ("aistudio_scheduler_step_tokens_count", "aistudio_scheduler_step_tokens"),
        ("aistudio_queue_duration_seconds_sum", "aistudio_queue_duration_seconds"),
        ("aistudio_queue_depth_bucket", None),  # a gauge has no buckets
        ("aistudio_requests_total_count", None),
        ("aistudio_bogus_total", None),
    ],
)
def test_scraped_series_map_to_their_contract_metric(series: str, family: str | None) -> None:
    assert metric_family(series) == family
