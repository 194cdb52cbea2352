"""Quality gates: may this candidate be registered, and does it beat the champion?

A *summary* (of the candidate, or of the champion as the registry stored it) is

    {"domains":   {"<domain>": {"perplexity", "rougeL", "parse_rate", "pass_at_1", "p95_s", ...}},
     "base":      {"<domain>": {"perplexity", <the domain's primary metric>}},
     "behaviour": {"<domain>": {"invariance_share", "functionality_pass_rate"}},
     "samples":   {"<domain>": <test records the served form was measured on>},
     "paired":    {"<domain>": {"n", "gain_se"}},   # primary metric scored per sample (pass@1, ROUGE-L)
     "quantized_perplexity_increase": <served variant + LoRA vs fp32 + LoRA, worst domain>}

where "domains" holds the metrics of the *served* form and "base" those of the bare base model
(`gate_summary` builds one from FormResults). Gates are rows of a table, one per GatesConfig field:

| gate                              | rule                                                | applies to    |
|-----------------------------------|-----------------------------------------------------|---------------|
| min_primary_gain                  | primary metric gain over the base >= margin[domain] | every domain  |
| max_perplexity_vs_base            | perplexity / base perplexity - 1 <= x               | every domain  |
| max_quantized_perplexity_increase | quantized_perplexity_increase <= x                  | the candidate |
| min_invariance_share              | behaviour.invariance_share >= x                     | every domain  |
| min_functionality_pass_rate       | behaviour.functionality_pass_rate >= x              | every domain  |
| min_pass_at_1                     | pass_at_1 >= x                                      | code          |
| min_rouge_l                       | rougeL >= x                                         | summarization |
| min_parse_rate                    | parse_rate >= x                                     | code          |
| max_perplexity                    | perplexity <= x                                     | every domain  |
| max_p95_latency_s                 | p95_s (per batch) <= x                              | every domain  |
| max_regression_vs_champion        | see below                                           | champion's    |

The primary metric and what its gain means are metrics.PRIMARY_METRICS (pass@1 and ROUGE-L
gain in absolute points, perplexity as a relative reduction). Where the primary metric is scored
per sample and both forms ran on the same samples, "paired" holds the standard error of the
mean paired difference, and a gain below the margin fails only when its one-sided upper bound at
`primary_gain_confidence` is below the margin as well: 16 code tasks cannot tell 0/16 from 1/16.

`max_regression_vs_champion` (X) compares with the champion, and passes with reason "no champion"
when there is none:
  - perplexity: mean over the champion's domains may rise by at most X, relative
    (candidate_mean / champion_mean - 1 <= X);
  - rougeL (summarization), parse_rate and pass_at_1 (code) may drop by at most X, absolute.

A domain-specific gate whose domain was not evaluated at all is not applicable and passes (a
project may have no summarization data); a domain that was evaluated but lacks the metric fails
with "metric 'rougeL' missing for summarization". A NaN value fails.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aistudio.config import FP32, GatesConfig
from aistudio.evaluation.metrics import (
    P95_LATENCY,
    PARSE_RATE,
    PASS_AT_1,
    PERPLEXITY,
    ROUGE_L,
    primary_metric,
)
from aistudio.evaluation.results import FormResult, form_metrics, form_scores

QUANTIZED_PERPLEXITY_INCREASE = "quantized_perplexity_increase"
INVARIANCE_SHARE = "invariance_share"
FUNCTIONALITY_PASS_RATE = "functionality_pass_rate"
# What a summary keeps of each domain's served metrics.
SUMMARY_METRICS: tuple[str, ...] = (PERPLEXITY, ROUGE_L, PARSE_RATE, PASS_AT_1, P95_LATENCY)
EVERY_DOMAIN = "*"
NO_CHAMPION = "no champion"
# Differences of scores are not exact in binary (0.35 - 0.25 < 0.1): a gain this close to its margin meets it.
MARGIN_TOLERANCE = 1e-9
QUALITY, PLUMBING = "quality", "plumbing"
PLUMBING_NOTE = (
    "random-init plumbing model: its numbers show the pipeline is wired end to end, not model quality"
)

Summary = Mapping[str, Any]
Source = Literal["domains", "behaviour", "candidate"]


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    value: float | None
    threshold: float
    reason: str
    metric: str = ""
    domain: str | None = None


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...]
    candidate: Summary
    champion: Summary | None
    gate_set: str = QUALITY  # "plumbing" for a random-init model: its gates check wiring, not quality

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "passed": self.passed,
            "gate_set": self.gate_set,
            "failed": [r.name + (f"[{r.domain}]" if r.domain else "") for r in self.failures],
            "gates": [asdict(r) for r in self.results],
            "candidate": self.candidate,
            "champion": self.champion,
        }
        if self.gate_set == PLUMBING:
            data["note"] = PLUMBING_NOTE
        return data


# --- summaries ------------------------------------------------------------------------------------


def serving_form(variant: str) -> str:
    """The form production serves: the adapter on the quantized base, or on the fp32 base."""
    return "lora" if variant == FP32 else "quantized_lora"


def _floats(metrics: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    return {m: float(metrics[m]) for m in names if m in metrics}


def paired_gain_se(served: list[float], base: list[float]) -> float | None:
    """Standard error of the mean of served - base over paired samples; None when they do not pair."""
    if len(served) != len(base) or len(served) < 2:
        return None
    differences = [s - b for s, b in zip(served, base, strict=True)]
    return statistics.stdev(differences) / math.sqrt(len(differences))


def gate_summary(
    by_domain: Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]],
    serving: str,
    behaviour: Mapping[str, Mapping[str, Any]] | None = None,
    reference: str = "lora",
) -> dict[str, Any]:
    """The summary of one model from its domain → form → result table (and behavioural reports).

    quantized_perplexity_increase is the worst domain's serving/reference perplexity ratio - 1
    (0 when serving *is* the reference); it is left out when no domain has both forms.
    `behaviour` is domain → {'invariance': report, 'minimum_functionality': report}.
    """
    domains: dict[str, dict[str, float]] = {}
    base: dict[str, dict[str, float]] = {}
    samples: dict[str, int] = {}
    paired: dict[str, dict[str, float]] = {}
    increases: list[float] = []
    for domain, forms in by_domain.items():
        served = form_metrics(forms[serving]) if serving in forms else {}
        domains[domain] = _floats(served, SUMMARY_METRICS)
        if serving in forms:
            result = forms[serving]
            samples[domain] = result.n_samples if isinstance(result, FormResult) else result["n_samples"]
        if "base" in forms:
            primary = primary_metric(domain).name
            base[domain] = _floats(form_metrics(forms["base"]), (PERPLEXITY, primary))
            if serving in forms:
                served_scores = form_scores(forms[serving], primary)
                se = paired_gain_se(served_scores, form_scores(forms["base"], primary))
                if se is not None:
                    paired[domain] = {"n": len(served_scores), "gain_se": se}
        if serving == reference:
            increases.append(0.0)
        elif PERPLEXITY in served and reference in forms and PERPLEXITY in form_metrics(forms[reference]):
            increases.append(served[PERPLEXITY] / form_metrics(forms[reference])[PERPLEXITY] - 1.0)
    summary: dict[str, Any] = {"domains": domains, "base": base, "samples": samples}
    if paired:
        summary["paired"] = paired
    if behaviour is not None:
        summary["behaviour"] = {
            domain: {
                INVARIANCE_SHARE: float(checks["invariance"]["invariant_share"]),
                FUNCTIONALITY_PASS_RATE: float(checks["minimum_functionality"]["pass_rate"]),
            }
            for domain, checks in behaviour.items()
        }
    if increases:
        summary[QUANTIZED_PERPLEXITY_INCREASE] = max(increases)
    return summary


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdGate:
    name: str  # a GatesConfig field
    metric: str
    bound: Literal["max", "min"]
    scope: str | None  # EVERY_DOMAIN, one domain, or None for a candidate-wide value
    source: Source = "domains"  # the summary section the metric is read from


THRESHOLD_GATES: tuple[ThresholdGate, ...] = (
    ThresholdGate(
        "max_quantized_perplexity_increase", QUANTIZED_PERPLEXITY_INCREASE, "max", None, "candidate"
    ),
    ThresholdGate("min_invariance_share", INVARIANCE_SHARE, "min", EVERY_DOMAIN, "behaviour"),
    ThresholdGate("min_functionality_pass_rate", FUNCTIONALITY_PASS_RATE, "min", EVERY_DOMAIN, "behaviour"),
    ThresholdGate("min_pass_at_1", PASS_AT_1, "min", "code"),
    ThresholdGate("min_rouge_l", ROUGE_L, "min", "summarization"),
    ThresholdGate("min_parse_rate", PARSE_RATE, "min", "code"),
    ThresholdGate("max_perplexity", PERPLEXITY, "max", EVERY_DOMAIN),
    ThresholdGate("max_p95_latency_s", P95_LATENCY, "max", EVERY_DOMAIN),
)
# Gates comparing the served form with the base model, per domain.
BASE_GATES = ("min_primary_gain", "max_perplexity_vs_base")

REGRESSION_GATE = "max_regression_vs_champion"
# (metric, domain): None means the mean over the champion's domains, compared relatively;
# a domain means that domain's value, compared as an absolute drop.
REGRESSION_CHECKS: tuple[tuple[str, str | None], ...] = (
    (PERPLEXITY, None),
    (ROUGE_L, "summarization"),
    (PARSE_RATE, "code"),
    (PASS_AT_1, "code"),
)


def covered_gates() -> set[str]:
    """The GatesConfig fields this module has logic for (a test holds it equal to GATE_METRICS)."""
    return {g.name for g in THRESHOLD_GATES} | set(BASE_GATES) | {REGRESSION_GATE}


def _number(mapping: Mapping[str, Any] | None, key: str) -> float | None:
    value = (mapping or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _section(summary: Summary | None, name: str) -> Mapping[str, Mapping[str, Any]]:
    return (summary or {}).get(name) or {}


def _domains(summary: Summary | None) -> Mapping[str, Mapping[str, Any]]:
    return _section(summary, "domains")


def _missing(metric: str, domain: str | None) -> str:
    return f"metric '{metric}' missing" + (f" for {domain}" if domain else " from the candidate")


def _compare(gate: ThresholdGate, value: float | None, threshold: float, domain: str | None) -> GateResult:
    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(gate.name, passed, value, threshold, reason, gate.metric, domain)

    where = f" for {domain}" if domain else ""
    if value is None:
        return result(False, _missing(gate.metric, domain))
    if math.isnan(value):
        return result(False, f"{gate.metric} is NaN{where}")
    passed = value <= threshold if gate.bound == "max" else value >= threshold
    op = ("<=" if passed else ">") if gate.bound == "max" else (">=" if passed else "<")
    return result(passed, f"{gate.metric} {value:.4g} {op} {threshold:g}{where}")


def _threshold_results(gate: ThresholdGate, threshold: float, candidate: Summary) -> list[GateResult]:
    if gate.scope is None:
        return [_compare(gate, _number(candidate, gate.metric), threshold, None)]
    # Which domains a gate covers is decided by what was evaluated, whatever section it reads.
    evaluated = _domains(candidate)
    values = _section(candidate, gate.source)
    if gate.scope == EVERY_DOMAIN:
        if not evaluated:
            reason = "no per-domain metrics in the candidate"
            return [GateResult(gate.name, False, None, threshold, reason, gate.metric)]
        return [_compare(gate, _number(values.get(d), gate.metric), threshold, d) for d in evaluated]
    if gate.scope not in evaluated:
        reason = f"not applicable: no {gate.scope} results"
        return [GateResult(gate.name, True, None, threshold, reason, gate.metric, gate.scope)]
    return [_compare(gate, _number(values.get(gate.scope), gate.metric), threshold, gate.scope)]


def _versus_base(
    name: str, domain: str, metric: str, threshold: float, candidate: Summary, confidence: float = 0.5
) -> GateResult:
    """One domain's served metric against the base's: a gain (min_primary_gain) or a rise (perplexity)."""

    def result(passed: bool, value: float | None, reason: str) -> GateResult:
        return GateResult(name, passed, value, threshold, reason, metric, domain)

    ours = _number(_domains(candidate).get(domain), metric)
    base = _number(_section(candidate, "base").get(domain), metric)
    if ours is None or base is None:
        which = "served form" if ours is None else "base"
        return result(False, None, f"{_missing(metric, domain)} ({which})")
    if math.isnan(ours) or math.isnan(base):
        return result(False, None, f"{metric} is NaN for {domain}")
    compared = f"{metric} {ours:.4g} vs base {base:.4g} for {domain}"
    if name == "max_perplexity_vs_base":
        rise = ours / base - 1.0 if base else math.inf
        passed = rise <= threshold + MARGIN_TOLERANCE
        return result(passed, rise, f"{compared}: {rise:+.2%} {'<=' if passed else '>'} +{threshold:.2%}")
    primary = primary_metric(domain)
    gain = primary.gain(ours, base)
    met = gain >= threshold - MARGIN_TOLERANCE
    reason = f"{compared}: gain {gain:+.4g} {'>=' if met else '<'} {threshold:g} ({primary.unit})"
    paired = _section(candidate, "paired").get(domain)
    se = _number(paired, "gain_se")
    if met or not se:
        return result(met, gain, reason)
    upper = gain + statistics.NormalDist().inv_cdf(confidence) * se
    within = upper >= threshold - MARGIN_TOLERANCE
    bound = (
        f"its {confidence:.0%} upper bound {upper:+.4g} over {_number(paired, 'n') or 0:.0f} paired samples"
    )
    noise = "within sampling noise" if within else "beyond sampling noise"
    return result(within, gain, f"{reason}, {noise}: {bound} {'>=' if within else '<'} {threshold:g}")


def _base_results(gates: GatesConfig, candidate: Summary) -> list[GateResult]:
    domains = list(_domains(candidate))
    if not domains:
        reason = "no per-domain metrics in the candidate"
        return [GateResult(name, False, None, 0.0, reason) for name in BASE_GATES]
    results = [
        _versus_base(
            "min_primary_gain",
            d,
            primary_metric(d).name,
            gates.min_primary_gain.get(d, 0.0),
            candidate,
            gates.primary_gain_confidence,
        )
        for d in domains
    ]
    results += [
        _versus_base("max_perplexity_vs_base", d, PERPLEXITY, gates.max_perplexity_vs_base, candidate)
        for d in domains
    ]
    return results


def mean_perplexity(summary: Summary, domains: list[str]) -> float | None:
    """Arithmetic mean of the domains' perplexities; None when any of them is missing."""
    values = [_number(_domains(summary).get(d), PERPLEXITY) for d in domains]
    known = [v for v in values if v is not None]
    if not values or len(known) < len(values):
        return None
    return sum(known) / len(known)


def _compared_domains(champion: Summary) -> list[str]:
    return sorted(d for d, m in _domains(champion).items() if _number(m, PERPLEXITY) is not None)


def _regression(
    metric: str, domain: str | None, limit: float, candidate: Summary, champion: Summary
) -> GateResult:
    def result(passed: bool, value: float | None, reason: str) -> GateResult:
        return GateResult(REGRESSION_GATE, passed, value, limit, reason, metric, domain)

    if domain is None:
        shared = _compared_domains(champion)
        if not shared:
            return result(True, None, f"not applicable: the champion has no {metric}")
        lacking = [d for d in shared if _number(_domains(candidate).get(d), metric) is None]
        if lacking:
            return result(False, None, _missing(metric, ", ".join(lacking)))
        ours, theirs = mean_perplexity(candidate, shared), mean_perplexity(champion, shared)
        assert ours is not None and theirs is not None
        rise = ours / theirs - 1.0
        passed = rise <= limit
        op = "<=" if passed else ">"
        return result(
            passed,
            rise,
            f"mean {metric} {ours:.4g} vs champion {theirs:.4g}: rise {rise:+.2%} {op} {limit:.2%}",
        )
    theirs_value = _number(_domains(champion).get(domain), metric)
    if theirs_value is None:
        return result(True, None, f"not applicable: the champion has no {metric} for {domain}")
    ours_value = _number(_domains(candidate).get(domain), metric)
    if ours_value is None:
        return result(False, None, _missing(metric, domain))
    drop = theirs_value - ours_value
    passed = drop <= limit  # NaN compares False: fails
    op = "<=" if passed else ">"
    compared = f"{metric} {ours_value:.4g} vs champion {theirs_value:.4g} for {domain}"
    return result(passed, drop, f"{compared}: drop {drop:.4g} {op} {limit:g}")


def _regression_results(limit: float, candidate: Summary, champion: Summary | None) -> list[GateResult]:
    if champion is None:
        return [GateResult(REGRESSION_GATE, True, None, limit, NO_CHAMPION)]
    return [_regression(metric, domain, limit, candidate, champion) for metric, domain in REGRESSION_CHECKS]


def check_gates(
    candidate: Summary, gates: GatesConfig, champion: Summary | None, gate_set: str = QUALITY
) -> GateReport:
    """Every gate of the table against the candidate summary (and the champion's, when there is one).

    Never raises on a bad candidate: every gate that fails is in the report with its reason.
    """
    results = _base_results(gates, candidate)
    for gate in THRESHOLD_GATES:
        results += _threshold_results(gate, getattr(gates, gate.name), candidate)
    results += _regression_results(gates.max_regression_vs_champion, candidate, champion)
    return GateReport(tuple(results), candidate, champion, gate_set)


def beats_champion(candidate: Summary, champion: Summary | None) -> bool:
    """Lower mean perplexity over the champion's domains, or no champion at all.

    A candidate missing any of those domains' perplexity does not beat it: no evidence, no promotion.
    """
    if champion is None:
        return True
    shared = _compared_domains(champion)
    ours, theirs = mean_perplexity(candidate, shared), mean_perplexity(champion, shared)
    if ours is None or theirs is None:
        return False
    return ours < theirs
