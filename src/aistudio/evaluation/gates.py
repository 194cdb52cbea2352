"""Quality gates: may this candidate be registered, and does it beat the champion?

A *summary* (of the candidate, or of the champion as the registry stored it) is

    {"domains": {"<domain>": {"perplexity": ..., "rougeL": ..., "parse_rate": ..., "p95_s": ...}},
     "quantized_perplexity_increase": <relative, serving form vs the fp32 lora form; worst domain>}

holding the metrics of the *serving* form (`gate_summary` builds one from FormResults).

Gates are rows of a table, one per GatesConfig field:

| gate                              | metric                        | rule     | applies to                  |
|-----------------------------------|-------------------------------|----------|-----------------------------|
| max_perplexity                    | perplexity                    | <=       | every domain                |
| min_rouge_l                       | rougeL                        | >=       | summarization               |
| min_parse_rate                    | parse_rate                    | >=       | code                        |
| max_p95_latency_s                 | p95_s (per batch)             | <=       | every domain                |
| max_quantized_perplexity_increase | quantized_perplexity_increase | <=       | the candidate as a whole    |
| max_regression_vs_champion        | see below                     | <=       | domains the champion has    |

`max_regression_vs_champion` (X) compares with the champion, and passes with reason "no champion"
when there is none:
  - perplexity: mean over the champion's domains may rise by at most X, relative
    (candidate_mean / champion_mean - 1 <= X);
  - rougeL (summarization) and parse_rate (code) may drop by at most X, absolute
    (champion - candidate <= X).

A domain-specific gate whose domain was not evaluated at all is not applicable and passes (a
project may have no summarization data); a domain that was evaluated but lacks the metric fails
with "metric 'rougeL' missing for summarization". A NaN value fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aistudio.config import GATE_METRICS, EvaluationConfig, GatesConfig
from aistudio.evaluation.metrics import P95_LATENCY, PARSE_RATE, PERPLEXITY, ROUGE_L
from aistudio.evaluation.results import FormResult, form_metrics

QUANTIZED_PERPLEXITY_INCREASE = "quantized_perplexity_increase"
# What a summary keeps of each domain's metrics.
SUMMARY_METRICS: tuple[str, ...] = (PERPLEXITY, ROUGE_L, PARSE_RATE, P95_LATENCY)
EVERY_DOMAIN = "*"
NO_CHAMPION = "no champion"

Summary = Mapping[str, Any]


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

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "gates": [asdict(r) for r in self.results],
            "candidate": self.candidate,
            "champion": self.champion,
        }


# --- summaries ------------------------------------------------------------------------------------


def serving_form(cfg: EvaluationConfig) -> str:
    """The form production serves: the adapter on the quantized base, unless serving fp32."""
    return "lora" if cfg.serving_variant == "fp32" else "quantized_lora"


def gate_summary(
    by_domain: Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]],
    serving: str,
    reference: str = "lora",
) -> dict[str, Any]:
    """The summary of one model from its domain → form → result table.

    quantized_perplexity_increase is the worst domain's serving/reference perplexity ratio - 1
    (0 when serving *is* the reference); it is left out when no domain has both forms.
    """
    domains: dict[str, dict[str, float]] = {}
    increases: list[float] = []
    for domain, forms in by_domain.items():
        served = form_metrics(forms[serving]) if serving in forms else {}
        domains[domain] = {m: float(served[m]) for m in SUMMARY_METRICS if m in served}
        if serving == reference:
            increases.append(0.0)
        elif PERPLEXITY in served and reference in forms and PERPLEXITY in form_metrics(forms[reference]):
            increases.append(served[PERPLEXITY] / form_metrics(forms[reference])[PERPLEXITY] - 1.0)
    summary: dict[str, Any] = {"domains": domains}
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


THRESHOLD_GATES: tuple[ThresholdGate, ...] = (
    ThresholdGate("max_perplexity", PERPLEXITY, "max", EVERY_DOMAIN),
    ThresholdGate("min_rouge_l", ROUGE_L, "min", "summarization"),
    ThresholdGate("min_parse_rate", PARSE_RATE, "min", "code"),
    ThresholdGate("max_p95_latency_s", P95_LATENCY, "max", EVERY_DOMAIN),
    ThresholdGate("max_quantized_perplexity_increase", QUANTIZED_PERPLEXITY_INCREASE, "max", None),
)

REGRESSION_GATE = "max_regression_vs_champion"
# (metric, domain): None means the mean over the champion's domains, compared relatively;
# a domain means that domain's value, compared as an absolute drop.
REGRESSION_CHECKS: tuple[tuple[str, str | None], ...] = (
    (PERPLEXITY, None),
    (ROUGE_L, "summarization"),
    (PARSE_RATE, "code"),
)

_COVERED = {g.name for g in THRESHOLD_GATES} | {REGRESSION_GATE}
if _COVERED != set(GATE_METRICS):  # a gate added to the config must get its logic here
    raise RuntimeError(
        f"gates.py covers {sorted(_COVERED)} but config.GATE_METRICS is {sorted(GATE_METRICS)}"
    )


def _number(mapping: Mapping[str, Any] | None, key: str) -> float | None:
    value = (mapping or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _domains(summary: Summary | None) -> Mapping[str, Mapping[str, Any]]:
    return (summary or {}).get("domains") or {}


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
    domains = _domains(candidate)
    if gate.scope == EVERY_DOMAIN:
        if not domains:
            return [
                GateResult(
                    gate.name, False, None, threshold, "no per-domain metrics in the candidate", gate.metric
                )
            ]
        return [_compare(gate, _number(m, gate.metric), threshold, d) for d, m in domains.items()]
    if gate.scope not in domains:
        reason = f"not applicable: no {gate.scope} results"
        return [GateResult(gate.name, True, None, threshold, reason, gate.metric, gate.scope)]
    return [_compare(gate, _number(domains[gate.scope], gate.metric), threshold, gate.scope)]


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


def check_gates(candidate: Summary, gates: GatesConfig, champion: Summary | None) -> GateReport:
    """Every gate of the table against the candidate summary (and the champion's, when there is one)."""
    results: list[GateResult] = []
    for gate in THRESHOLD_GATES:
        results += _threshold_results(gate, getattr(gates, gate.name), candidate)
    results += _regression_results(gates.max_regression_vs_champion, candidate, champion)
    return GateReport(tuple(results), candidate, champion)


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
