"""A/B results: per-variant counts and positive-feedback rates, and whether the variants differ.

The input is always the shape of `FeedbackStore.summary()` (GET /v1/ab/summary; see
aistudio.serving.ab), read from a running server, from a saved file, or rebuilt from Prometheus
counters, which survive restarts and add up every replica.

The test is Pearson's chi-square test of independence on the variants × (positive, negative)
table, without continuity correction; for two variants that is the two-proportion z-test
(chi2 = z²). Where a 2×2 table has an expected count below 5 the chi-square approximation is
poor and Fisher's exact test is used instead. Variants without any feedback are left out.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2_contingency, fisher_exact

from aistudio.config import validate
from aistudio.errors import UserError

SUMMARY_PATH = "/v1/ab/summary"
ASSIGNMENTS_METRIC = "aistudio_ab_assignments_total"
FEEDBACK_METRIC = "aistudio_feedback_total"
DEFAULT_ALPHA = 0.05
_MIN_EXPECTED = 5.0
_PROMQL_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


# --- the summary shape --------------------------------------------------------------------------


class _VariantSummary(BaseModel):
    # Derived fields (feedback, positive_rate) are recomputed, and newer servers may add more.
    model_config = ConfigDict(extra="ignore")

    model: str = ""
    assignments: int = Field(0, ge=0)
    positive: int = Field(ge=0)
    negative: int = Field(ge=0)


class _Summary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    experiments: dict[str, dict[str, _VariantSummary]]


@dataclass(frozen=True)
class VariantResult:
    variant: str
    model: str
    assignments: int
    positive: int
    negative: int

    @property
    def feedback(self) -> int:
        return self.positive + self.negative

    @property
    def positive_rate(self) -> float | None:
        return self.positive / self.feedback if self.feedback else None


@dataclass(frozen=True)
class ExperimentResult:
    experiment: str
    variants: list[VariantResult]
    alpha: float
    test: str | None = None  # "chi-square" | "fisher-exact" | None when no test could run
    statistic: float | None = None
    p_value: float | None = None
    significant: bool = False
    note: str = ""
    best: str | None = None  # the variant with the highest positive rate

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["variants"] = [
            {**asdict(v), "feedback": v.feedback, "positive_rate": v.positive_rate} for v in self.variants
        ]
        return out


def parse_summary(data: Any, source: str) -> dict[str, list[VariantResult]]:
    """The variants of every experiment in a summary; a malformed one is a UserError naming `source`."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object with 'experiments' (got {type(data).__name__})")
    summary = validate(_Summary, data, source)
    return {
        name: [VariantResult(v, s.model, s.assignments, s.positive, s.negative) for v, s in variants.items()]
        for name, variants in summary.experiments.items()
    }


# --- the test -------------------------------------------------------------------------------------


def compare_variants(
    experiment: str, variants: list[VariantResult], alpha: float = DEFAULT_ALPHA
) -> ExperimentResult:
    """Do the variants' positive-feedback rates differ more than chance allows at `alpha`?"""
    rated = [v for v in variants if v.feedback]
    base = {"experiment": experiment, "variants": variants, "alpha": alpha}
    if len(rated) < 2:
        return ExperimentResult(**base, note="needs feedback on at least two variants")
    best = max(rated, key=lambda v: (v.positive_rate, v.feedback)).variant
    positives = sum(v.positive for v in rated)
    negatives = sum(v.negative for v in rated)
    if positives == 0 or negatives == 0:
        # A column of zeros: every variant has the same rate (0 or 1), no evidence of a difference.
        return ExperimentResult(
            **base, test=None, p_value=1.0, best=best, note="every rating has the same outcome; no difference"
        )
    table = [[v.positive, v.negative] for v in rated]
    chi2, p_value, _, expected = chi2_contingency(table, correction=False)
    test, statistic = "chi-square", float(chi2)
    note = ""
    if expected.min() < _MIN_EXPECTED:
        if len(rated) == 2:
            odds_ratio, p_value = fisher_exact(table)
            # A zero cell makes the odds ratio infinite, which JSON cannot carry.
            test, statistic = "fisher-exact", float(odds_ratio) if math.isfinite(odds_ratio) else None
        else:
            note = f"some expected counts are below {_MIN_EXPECTED:g}; the chi-square p-value is approximate"
    p_value = float(p_value)
    return ExperimentResult(
        **base,
        test=test,
        statistic=statistic,
        p_value=p_value,
        significant=p_value < alpha,
        note=note,
        best=best,
    )


def analyse(summary: dict[str, list[VariantResult]], alpha: float = DEFAULT_ALPHA) -> list[ExperimentResult]:
    return [compare_variants(name, variants, alpha) for name, variants in sorted(summary.items())]


def format_report(results: list[ExperimentResult]) -> str:
    """A plain-text table per experiment, then the test's verdict."""
    if not results:
        return "no A/B experiments in the summary"
    lines: list[str] = []
    for result in results:
        lines.append(f"experiment {result.experiment}")
        width = max(len("variant"), *(len(v.variant) for v in result.variants))
        model_width = max(len("model"), *(len(v.model) for v in result.variants))
        lines.append(
            f"  {'variant':<{width}}  {'model':<{model_width}}  {'assigned':>8}  {'feedback':>8}  "
            f"{'positive':>8}  {'rate':>6}"
        )
        for v in result.variants:
            rate = "-" if v.positive_rate is None else f"{v.positive_rate:.1%}"
            lines.append(
                f"  {v.variant:<{width}}  {v.model:<{model_width}}  {v.assignments:>8}  {v.feedback:>8}  "
                f"{v.positive:>8}  {rate:>6}"
            )
        if result.p_value is None:
            lines.append(f"  no test: {result.note}")
        else:
            verdict = "significant" if result.significant else "not significant"
            test = result.test or "no test needed"
            lines.append(
                f"  {test}: p = {result.p_value:.4g}, {verdict} at alpha = {result.alpha:g}"
                + (f"; highest positive rate: {result.best}" if result.significant else "")
            )
            if result.note:
                lines.append(f"  note: {result.note}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- sources ----------------------------------------------------------------------------------------


def _get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{url}: cannot connect ({reason})") from None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{url}: the answer is not JSON") from None


def summary_from_file(path: Path) -> dict[str, list[VariantResult]]:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    return parse_summary(data, path.name)


def summary_from_server(
    base_url: str, api_key: str | None = None, timeout_s: float = 10.0
) -> dict[str, list[VariantResult]]:
    """GET <server>/v1/ab/summary from a running model server (its totals since it started)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + SUMMARY_PATH
    return parse_summary(_get_json(url, headers, timeout_s), url)


def prometheus_queries(window: str) -> dict[str, str]:
    """PromQL for the counts over `window` (e.g. "7d"), summed over every replica and restart."""
    if not _PROMQL_DURATION.fullmatch(window):
        raise UserError(f"window must be a Prometheus duration such as 30m, 24h or 7d (got {window!r})")
    return {
        "assignments": f"sum by (experiment, variant) (increase({ASSIGNMENTS_METRIC}[{window}]))",
        "feedback": f"sum by (experiment, variant, outcome) (increase({FEEDBACK_METRIC}[{window}]))",
    }


def _vector(answer: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error", "no status") if isinstance(answer, dict) else "not an object"
        raise UserError(f"{source}: Prometheus query failed ({error})")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise UserError(f"{source}: expected an instant vector from Prometheus")
    return data["result"]


def summary_from_prometheus_results(
    assignments: list[dict[str, Any]], feedback: list[dict[str, Any]]
) -> dict[str, Any]:
    """Prometheus instant vectors → the FeedbackStore.summary() shape (increase() extrapolates,
    so counts are rounded)."""
    experiments: dict[str, dict[str, dict[str, Any]]] = {}

    def row(metric: dict[str, str]) -> dict[str, Any]:
        variants = experiments.setdefault(metric.get("experiment", ""), {})
        return variants.setdefault(
            metric.get("variant", ""), {"assignments": 0, "positive": 0, "negative": 0}
        )

    for sample in assignments:
        row(sample["metric"])["assignments"] += round(float(sample["value"][1]))
    for sample in feedback:
        outcome = sample["metric"].get("outcome")
        if outcome in ("positive", "negative"):
            row(sample["metric"])[outcome] += round(float(sample["value"][1]))
    return {"experiments": experiments}


def summary_from_prometheus(
    base_url: str, window: str = "7d", timeout_s: float = 30.0
) -> dict[str, list[VariantResult]]:
    """The counts of the last `window` from Prometheus' HTTP API (/api/v1/query)."""
    results = {}
    for name, query in prometheus_queries(window).items():
        url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        results[name] = _vector(_get_json(url, {}, timeout_s), base_url)
    try:
        summary = summary_from_prometheus_results(results["assignments"], results["feedback"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise UserError(f"{base_url}: unexpected sample in the Prometheus answer ({exc!r})") from None
    return parse_summary(summary, base_url)
