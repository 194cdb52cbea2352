"""The model server's Prometheus metrics: the one list that serving, alerts, dashboards and
canary analysis all name.

Renaming a metric here is a breaking change for every alert, dashboard and AnalysisTemplate;
`aistudio.deploy.validate` fails any manifest or rule that queries a name not listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram", "info"]

# Base names as Prometheus stores them: counters keep their `_total`, histograms are listed
# without the `_bucket` / `_sum` / `_count` series that the client library derives from them.
METRIC_KINDS: Mapping[str, MetricKind] = MappingProxyType(
    {
        "aistudio_requests_total": "counter",  # labels: model, adapter, status (2xx|4xx|5xx|<reason>)
        "aistudio_request_duration_seconds": "histogram",
        "aistudio_time_to_first_token_seconds": "histogram",
        "aistudio_queue_duration_seconds": "histogram",
        "aistudio_prompt_tokens_total": "counter",  # labels: model, adapter
        "aistudio_generation_tokens_total": "counter",  # labels: model, adapter
        "aistudio_queue_depth": "gauge",
        "aistudio_scheduler_active_rows": "gauge",  # rows prefilling or decoding now
        "aistudio_scheduler_step_tokens": "histogram",  # labels: phase (prefill|decode)
        "aistudio_scheduler_step_duration_seconds": "histogram",  # labels: phase (prefill|decode)
        "aistudio_kv_cache_tokens": "gauge",  # KV tokens held by active rows
        "aistudio_kv_cache_reserved_tokens": "gauge",  # prompt + max_tokens of every admitted row
        "aistudio_kv_cache_budget_tokens": "gauge",  # scheduler.max_kv_tokens
        "aistudio_adapter_events_total": "counter",  # labels: action (load|unload|evict)
        "aistudio_adapters_resident": "gauge",
        "aistudio_model_info": "info",  # labels: model, version, variant; value 1
        "aistudio_drift_score": "gauge",  # labels: feature
        "aistudio_drift_detected": "gauge",  # 0 or 1
        "aistudio_ab_assignments_total": "counter",  # labels: experiment, variant
        "aistudio_feedback_total": "counter",  # labels: experiment, variant, outcome (positive|negative)
    }
)

SERVER_METRICS: frozenset[str] = frozenset(METRIC_KINDS)

HISTOGRAM_SERIES_SUFFIXES: tuple[str, ...] = ("_bucket", "_sum", "_count")


def metric_family(series: str) -> str | None:
    """The contract metric a scraped series belongs to, or None when the server exports no such series.

    `aistudio_request_duration_seconds_bucket` belongs to `aistudio_request_duration_seconds`;
    a suffix only counts on a histogram, so `aistudio_queue_depth_count` belongs to nothing.
    """
    if series in SERVER_METRICS:
        return series
    for suffix in HISTOGRAM_SERIES_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and METRIC_KINDS.get(base) == "histogram":
            return base
    return None
