"""Production against the retrain thresholds: read four signals, say which ones crossed.

The signals, and where they come from:

  drift_score             the largest per-feature PSI the server's drift detector reports
  error_rate              share of requests that failed on the server's side (not 2xx or 4xx,
                          the same definition as the HighErrorRate alert)
  p95_latency_s           95th percentile of end-to-end request latency
  positive_feedback_rate  share of positive ratings; judged only with at least
                          `retrain.min_feedback` ratings, as ModelAccuracyDrop does

Two sources. Prometheus (`read_prometheus`): PromQL over a window (`increase`/`rate`), across
every replica it scrapes, optionally one namespace. One server (`read_server`): its
GET /v1/monitoring/drift and its own /metrics, i.e. totals since that process started.

Thresholds are `retrain` in configs/monitoring_config.yaml (aistudio.monitoring_config).
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aistudio.errors import UserError
from aistudio.monitoring_config import RetrainConfig

SIGNALS: tuple[str, ...] = ("drift_score", "error_rate", "p95_latency_s", "positive_feedback_rate")
DEFAULT_WINDOW = "1h"
DEFAULT_TIMEOUT_S = 10.0
# The statuses the server is not to blame for (aistudio.serving.metrics.STATUS_CLASSES minus 5xx).
CLIENT_SIDE_STATUSES: tuple[str, ...] = ("2xx", "4xx")

_DURATION = re.compile(r"^([0-9]+(ms|[smhdwy]))+$")


# --- PromQL ------------------------------------------------------------------------------------------


def _selector(*matchers: str) -> str:
    present = [m for m in matchers if m]
    return "{" + ", ".join(present) + "}" if present else ""


def _label_matcher(label: str, value: str | None) -> str:
    if value is None:
        return ""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{label}="{escaped}"'


def promql_queries(window: str = DEFAULT_WINDOW, namespace: str | None = None) -> dict[str, str]:
    """One PromQL expression per value, each aggregated to a single series (or none: no data).

    `(... or vector(0)) / ...` makes "no failed request" a 0 rather than no data, while an
    empty denominator (no request at all) still yields nothing.
    """
    if not _DURATION.fullmatch(window):
        raise UserError(f"--window '{window}' is not a Prometheus duration (e.g. 30m, 1h, 1d)")
    ns = _label_matcher("namespace", namespace)
    everything = _selector(ns)
    failed = _selector(f'status!~"{"|".join(CLIENT_SIDE_STATUSES)}"', ns)
    positive = _selector('outcome="positive"', ns)
    w = f"[{window}]"
    return {
        "drift_score": f"max(aistudio_drift_score{everything})",
        "error_rate": (
            f"(sum(increase(aistudio_requests_total{failed}{w})) or vector(0))"
            f" / sum(increase(aistudio_requests_total{everything}{w}))"
        ),
        "p95_latency_s": (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(aistudio_request_duration_seconds_bucket{everything}{w})))"
        ),
        "positive_feedback_rate": (
            f"(sum(increase(aistudio_feedback_total{positive}{w})) or vector(0))"
            f" / sum(increase(aistudio_feedback_total{everything}{w}))"
        ),
        "feedback_count": f"sum(increase(aistudio_feedback_total{everything}{w}))",
        "request_count": f"sum(increase(aistudio_requests_total{everything}{w}))",
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _get(url: str, what: str, timeout_s: float, headers: Mapping[str, str] | None = None) -> bytes:
    """GET `url`; an unreachable or refusing endpoint is a one-line UserError naming `what`."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # http(s): _http_url checked it
            return response.read()
    except urllib.error.HTTPError as exc:
        detail: Any = exc.read().decode("utf-8", "replace")
        try:  # Prometheus says {"error": "..."}, our server {"error": {"message": "..."}}
            error = json.loads(detail).get("error")
            detail = (error.get("message") if isinstance(error, dict) else error) or detail
        except (json.JSONDecodeError, AttributeError):
            pass
        where = url.partition("?")[0]
        raise UserError(
            f"{what} answered HTTP {exc.code} for {where}: {' '.join(str(detail).split())[:300]}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{what} is unreachable: {reason}") from None


def _http_url(url: str, flag: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise UserError(f"{flag} '{url}' must be an http:// or https:// URL")
    return url.rstrip("/")


def query_prometheus(url: str, expr: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> float | None:
    """The value of an instant query that yields at most one series; None when it yields none."""
    url = _http_url(url, "--prometheus")
    body = _get(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}",
        f"Prometheus at {url}",
        timeout_s,
    )
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise UserError(f"Prometheus at {url} rejected a query: {answer.get('error', answer)}")
    result = answer["data"]["result"]
    if answer["data"]["resultType"] == "scalar":
        return _finite(float(result[1]))
    if not result:
        return None
    if len(result) > 1:
        raise ValueError(f"query returned {len(result)} series, expected one: {expr}")
    return _finite(float(result[0]["value"][1]))


def read_prometheus(
    url: str, window: str = DEFAULT_WINDOW, namespace: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, float | None]:
    return {
        name: query_prometheus(url, expr, timeout_s)
        for name, expr in promql_queries(window, namespace).items()
    }


# --- one server ------------------------------------------------------------------------------------------


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """PromQL's histogram_quantile over cumulative (upper bound, count) buckets: linear inside
    the bucket holding the rank; a rank in the +Inf bucket gives the highest finite bound."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for i, (upper, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(upper):
                return ordered[i - 1][0] if i > 0 else None
            if i == 0 and upper <= 0:
                return upper
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper, count
    return None


def values_from_exposition(text: str) -> dict[str, float | None]:
    """error_rate, p95, feedback rate and counts from a server's /metrics text (totals since start)."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = failed = feedback = positive = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "aistudio_requests_total":
                requests += sample.value
                failed += sample.value if labels.get("status") not in CLIENT_SIDE_STATUSES else 0.0
            elif sample.name == "aistudio_request_duration_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == "aistudio_feedback_total":
                feedback += sample.value
                positive += sample.value if labels.get("outcome") == "positive" else 0.0
    return {
        "error_rate": failed / requests if requests else None,
        "p95_latency_s": histogram_quantile(0.95, buckets.items()),
        "positive_feedback_rate": positive / feedback if feedback else None,
        "feedback_count": feedback,
        "request_count": requests,
    }


def drift_score_from_report(report: Mapping[str, Any]) -> float | None:
    """The largest per-feature PSI of a GET /v1/monitoring/drift answer; None before any evaluation."""
    scores = [
        float(result["psi"])
        for result in (report.get("features") or {}).values()
        if isinstance(result, Mapping) and result.get("psi") is not None
    ]
    return max(scores) if report.get("enabled", True) and scores else None


def read_server(
    url: str, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, float | None]:
    url = _http_url(url, "--server")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    what = f"model server at {url}"
    drift = json.loads(_get(f"{url}/v1/monitoring/drift", what, timeout_s, headers))
    exposition = _get(f"{url}/metrics", what, timeout_s, headers).decode("utf-8")
    return {"drift_score": drift_score_from_report(drift), **values_from_exposition(exposition)}


# --- thresholds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    signal: str
    value: float
    threshold: float
    message: str


def find_breaches(
    values: Mapping[str, float | None], thresholds: RetrainConfig
) -> tuple[list[Breach], dict[str, str]]:
    """(signals past their threshold, {signal: why it was not judged}) for `values`."""
    breaches: list[Breach] = []
    skipped: dict[str, str] = {}
    upper = {
        "drift_score": ("max_drift_score", thresholds.max_drift_score, "{:.3f}"),
        "error_rate": ("max_error_rate", thresholds.max_error_rate, "{:.1%}"),
        "p95_latency_s": ("max_p95_latency_s", thresholds.max_p95_latency_s, "{:.2f} s"),
    }
    for signal, (key, limit, fmt) in upper.items():
        value = values.get(signal)
        if value is None:
            skipped[signal] = "no data"
        elif value > limit:
            breaches.append(
                Breach(signal, value, limit, f"{signal} {fmt.format(value)} > {key} {fmt.format(limit)}")
            )
    rate, ratings = values.get("positive_feedback_rate"), values.get("feedback_count") or 0.0
    if rate is None:
        skipped["positive_feedback_rate"] = "no data"
    elif ratings < thresholds.min_feedback:
        skipped["positive_feedback_rate"] = f"{ratings:.0f} ratings < min_feedback {thresholds.min_feedback}"
    elif rate < thresholds.min_positive_feedback_rate:
        limit = thresholds.min_positive_feedback_rate
        breaches.append(
            Breach(
                "positive_feedback_rate",
                rate,
                limit,
                f"positive_feedback_rate {rate:.1%} < min_positive_feedback_rate {limit:.1%} "
                f"({ratings:.0f} ratings)",
            )
        )
    return breaches, skipped


def retrain_command(experiment: bool = False) -> list[str]:
    """What a breach runs: the whole DAG again, or the same as a DVC experiment to review first."""
    return ["dvc", "exp", "run"] if experiment else ["dvc", "repro"]


def monitoring_report(
    source: Mapping[str, Any],
    values: Mapping[str, float | None],
    thresholds: RetrainConfig,
    evaluated_at: str,
) -> dict[str, Any]:
    """metrics/monitoring.json, before any retrain runs (`retrain` is filled in by the caller)."""
    breaches, skipped = find_breaches(values, thresholds)
    return {
        "source": dict(source),
        "evaluated_at": evaluated_at,
        "values": dict(values),
        "thresholds": thresholds.model_dump(),
        "breaches": [asdict(b) for b in breaches],
        "not_evaluated": skipped,
        "retrain_recommended": bool(breaches),
        "retrain": None,
    }
