"""Gate logic, table-driven: each gate passes and fails on its own metric; champion none/worse/better."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from aistudio.config import GATE_METRICS, GatesConfig
from aistudio.evaluation.gates import (
    NO_CHAMPION,
    PLUMBING,
    beats_champion,
    check_gates,
    covered_gates,
    gate_summary,
    serving_form,
)
from aistudio.evaluation.results import FormResult

GATES = GatesConfig(
    min_primary_gain={"code": 0.1, "summarization": 0.05, "creative": 0.05},
    max_perplexity_vs_base=0.0,
    max_quantized_perplexity_increase=0.05,
    min_invariance_share=0.5,
    min_functionality_pass_rate=0.5,
    min_pass_at_1=0.3,
    max_perplexity=100.0,
    min_rouge_l=0.2,
    min_parse_rate=0.5,
    max_p95_latency_s=2.0,
    max_regression_vs_champion=0.05,
)


def summary(**changes: Any) -> dict[str, Any]:
    """A candidate that passes every gate; `changes` maps 'section.domain.metric', 'domain.metric'
    (the served form) or a top key to a new value (None removes it)."""
    base: dict[str, Any] = {
        "domains": {
            "code": {"perplexity": 20.0, "parse_rate": 0.8, "pass_at_1": 0.5, "p95_s": 0.5},
            "creative": {"perplexity": 30.0, "p95_s": 0.5},
            "summarization": {"perplexity": 25.0, "rougeL": 0.4, "p95_s": 0.5},
        },
        "base": {
            "code": {"perplexity": 24.0, "pass_at_1": 0.25},
            "creative": {"perplexity": 36.0},  # LoRA reduces it by 1/6
            "summarization": {"perplexity": 30.0, "rougeL": 0.3},
        },
        "behaviour": {
            d: {"invariance_share": 1.0, "functionality_pass_rate": 1.0}
            for d in ("code", "creative", "summarization")
        },
        "quantized_perplexity_increase": 0.02,
    }
    for key, value in changes.items():
        parts = key.split(".")
        if len(parts) == 2:
            parts = ["domains", *parts]
        node = base
        for part in parts[:-1]:
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return base


def failed(report: Any) -> list[tuple[str, str | None]]:
    return [(r.name, r.domain) for r in report.failures]


def test_every_configured_gate_has_logic() -> None:
    assert covered_gates() == set(GATE_METRICS)


def test_a_good_candidate_without_champion_passes_every_gate() -> None:
    report = check_gates(summary(), GATES, None)
    assert report.passed, [r.reason for r in report.failures]
    assert {r.name for r in report.results} == set(GATE_METRICS)
    regression = [r for r in report.results if r.name == "max_regression_vs_champion"]
    assert [r.reason for r in regression] == [NO_CHAMPION]


@pytest.mark.parametrize(
    ("change", "gate", "domain"),
    [
        ({"creative.perplexity": 150.0, "base.creative.perplexity": 200.0}, "max_perplexity", "creative"),
        ({"summarization.rougeL": 0.19, "base.summarization.rougeL": 0.1}, "min_rouge_l", "summarization"),
        ({"code.parse_rate": 0.25}, "min_parse_rate", "code"),
        ({"code.pass_at_1": 0.29, "base.code.pass_at_1": 0.1}, "min_pass_at_1", "code"),
        ({"code.p95_s": 3.5}, "max_p95_latency_s", "code"),
        ({"quantized_perplexity_increase": 0.2}, "max_quantized_perplexity_increase", None),
        ({"behaviour.creative.invariance_share": 0.4}, "min_invariance_share", "creative"),
        ({"behaviour.code.functionality_pass_rate": 0.0}, "min_functionality_pass_rate", "code"),
        # pass@1 0.30 vs base 0.25: +0.05 < the 0.1 margin
        ({"code.pass_at_1": 0.3}, "min_primary_gain", "code"),
        # perplexity 30 → 29: a 2.8% reduction < the 5% margin, and still below the base
        ({"base.creative.perplexity": 30.9}, "min_primary_gain", "creative"),
        # summarization: ROUGE-L is primary, so a perplexity above the base fails only its own gate
        ({"base.summarization.perplexity": 24.0}, "max_perplexity_vs_base", "summarization"),
    ],
)
def test_each_gate_fails_alone_on_its_own_metric(
    change: dict[str, float], gate: str, domain: str | None
) -> None:
    report = check_gates(summary(**change), GATES, None)
    assert not report.passed
    assert failed(report) == [(gate, domain)]


def test_a_domain_without_a_margin_must_at_least_match_the_base() -> None:
    # analysis is not in GATES.min_primary_gain: margin 0 on its primary metric (perplexity).
    worse = summary()
    worse["domains"]["analysis"] = {"perplexity": 40.0, "p95_s": 0.5}
    worse["base"]["analysis"] = {"perplexity": 39.0}
    worse["behaviour"]["analysis"] = {"invariance_share": 1.0, "functionality_pass_rate": 1.0}
    assert set(failed(check_gates(worse, GATES, None))) == {
        ("min_primary_gain", "analysis"),
        ("max_perplexity_vs_base", "analysis"),
    }
    worse["base"]["analysis"]["perplexity"] = 40.0
    assert check_gates(worse, GATES, None).passed


def test_the_primary_gain_reason_names_both_values_and_the_unit() -> None:
    report = check_gates(summary(**{"code.pass_at_1": 0.3}), GATES, None)
    (failure,) = report.failures
    assert failure.reason == "pass_at_1 0.3 vs base 0.25 for code: gain +0.05 < 0.1 (absolute points)"
    assert failure.value == pytest.approx(0.05)


def test_a_threshold_every_candidate_misses_is_reported_gate_by_gate_not_raised() -> None:
    impossible = GATES.model_copy(
        update={"min_primary_gain": {"code": 1.0, "creative": 1.0}, "min_rouge_l": 1.0}
    )
    report = check_gates(summary(), impossible, None)
    assert not report.passed
    assert set(failed(report)) == {
        ("min_primary_gain", "code"),
        ("min_primary_gain", "creative"),
        ("min_rouge_l", "summarization"),
    }
    assert set(report.to_json()["failed"]) == {
        "min_primary_gain[code]",
        "min_primary_gain[creative]",
        "min_rouge_l[summarization]",
    }


@pytest.mark.parametrize(
    ("change", "gate", "reason"),
    [
        ({"code.parse_rate": None}, "min_parse_rate", "metric 'parse_rate' missing for code"),
        ({"code.p95_s": None}, "max_p95_latency_s", "metric 'p95_s' missing for code"),
        (
            {"quantized_perplexity_increase": None},
            "max_quantized_perplexity_increase",
            "metric 'quantized_perplexity_increase' missing from the candidate",
        ),
        (
            {"behaviour.code.invariance_share": None},
            "min_invariance_share",
            "metric 'invariance_share' missing for code",
        ),
    ],
)
def test_a_missing_or_nan_metric_fails_its_gate_with_a_clear_reason(
    change: dict[str, Any], gate: str, reason: str
) -> None:
    report = check_gates(summary(**change), GATES, None)
    assert [(r.name, r.reason) for r in report.failures] == [(gate, reason)]


def test_a_missing_primary_metric_fails_both_the_gain_and_its_floor() -> None:
    report = check_gates(summary(**{"summarization.rougeL": None}), GATES, None)
    assert [(r.name, r.reason) for r in report.failures] == [
        ("min_primary_gain", "metric 'rougeL' missing for summarization (served form)"),
        ("min_rouge_l", "metric 'rougeL' missing for summarization"),
    ]


def test_a_nan_or_missing_perplexity_fails_every_gate_that_reads_it() -> None:
    report = check_gates(summary(**{"code.perplexity": math.nan}), GATES, None)
    assert {(r.name, r.reason) for r in report.failures} == {
        ("max_perplexity_vs_base", "perplexity is NaN for code"),
        ("max_perplexity", "perplexity is NaN for code"),
    }
    report = check_gates(summary(**{"creative.perplexity": None}), GATES, None)
    assert {r.name for r in report.failures} == {
        "min_primary_gain",
        "max_perplexity_vs_base",
        "max_perplexity",
    }


def test_a_domain_that_was_not_evaluated_makes_its_gate_not_applicable() -> None:
    candidate = summary()
    for section in ("domains", "base", "behaviour"):
        del candidate[section]["summarization"]
    report = check_gates(candidate, GATES, None)
    assert report.passed
    rouge = next(r for r in report.results if r.name == "min_rouge_l")
    assert rouge.reason == "not applicable: no summarization results"


def test_a_candidate_without_domains_fails_the_per_domain_gates() -> None:
    report = check_gates({"quantized_perplexity_increase": 0.0}, GATES, None)
    assert {r.name for r in report.failures} == {
        "min_primary_gain",
        "max_perplexity_vs_base",
        "min_invariance_share",
        "min_functionality_pass_rate",
        "max_perplexity",
        "max_p95_latency_s",
    }


def test_boundary_values_pass() -> None:
    boundary = {
        "code.perplexity": 24.0,  # = base: no rise
        "code.parse_rate": 0.5,
        "code.pass_at_1": 0.35,  # base 0.25 + margin 0.1
        "behaviour.code.invariance_share": 0.5,
        "quantized_perplexity_increase": 0.05,
    }
    report = check_gates(summary(**boundary), GATES, None)
    assert report.passed, [r.reason for r in report.failures]


# Champion cases: mean perplexity of the candidate is 25.0 over its three domains.
@pytest.mark.parametrize(
    ("champion_changes", "passes", "beats"),
    [
        ({}, True, False),  # identical: no regression, but not better either
        (
            {"code.perplexity": 26.0, "creative.perplexity": 36.0, "summarization.perplexity": 31.0},
            True,
            True,
        ),
        # champion mean 23.5: candidate 25 is 6.4% worse (> 5%)
        (
            {"code.perplexity": 18.5, "creative.perplexity": 28.5, "summarization.perplexity": 23.5},
            False,
            False,
        ),
        # champion mean 24.0: candidate is 4.2% worse (<= 5%): passes the gate, does not beat
        (
            {"code.perplexity": 19.0, "creative.perplexity": 29.0, "summarization.perplexity": 24.0},
            True,
            False,
        ),
        ({"summarization.rougeL": 0.5}, False, False),  # rougeL drops 0.1 > 0.05
        ({"code.parse_rate": 0.84}, True, False),  # parse rate drops 0.04 <= 0.05
        ({"code.parse_rate": 0.9}, False, False),  # parse rate drops 0.1
        ({"code.pass_at_1": 0.625}, False, False),  # pass@1 drops 0.125 (two of sixteen tasks)
    ],
)
def test_regression_vs_champion(champion_changes: dict[str, float], passes: bool, beats: bool) -> None:
    champion = summary(**champion_changes)
    report = check_gates(summary(), GATES, champion)
    assert report.passed is passes
    assert beats_champion(summary(), champion) is beats
    assert {r.name for r in report.failures} <= {"max_regression_vs_champion"}


def test_no_champion_is_beaten_by_any_candidate() -> None:
    assert beats_champion(summary(), None)


def test_a_champion_domain_missing_from_the_candidate_fails_and_does_not_beat() -> None:
    champion = summary(**{"code.perplexity": 90.0})
    champion["domains"]["analysis"] = {"perplexity": 90.0}
    report = check_gates(summary(), GATES, champion)
    assert [r.reason for r in report.failures] == ["metric 'perplexity' missing for analysis"]
    assert not beats_champion(summary(), champion)


def test_a_metric_the_champion_never_had_is_not_compared() -> None:
    champion = summary(**{"summarization.rougeL": None})
    report = check_gates(summary(**{"summarization.rougeL": 0.3}), GATES, champion)
    rouge = next(r for r in report.results if r.name == "max_regression_vs_champion" and r.metric == "rougeL")
    assert rouge.passed and rouge.reason.startswith("not applicable")


def test_report_json_lists_every_gate_with_value_threshold_and_reason() -> None:
    report = check_gates(summary(**{"code.parse_rate": 0.1}), GATES, summary())
    data = report.to_json()
    assert data["passed"] is False
    assert all({"name", "passed", "value", "threshold", "reason"} <= set(g) for g in data["gates"])
    assert data["champion"] == summary()


def _result(form: str, domain: str, **metrics: float) -> FormResult:
    return FormResult(form, domain, 4, dict(metrics))


def test_summary_takes_the_serving_form_the_base_and_the_worst_quantization_increase() -> None:
    by_domain = {
        "code": {
            "base": _result("base", "code", perplexity=12.0, pass_at_1=0.25, parse_rate=0.5),
            "lora": _result("lora", "code", perplexity=10.0, parse_rate=0.5, p95_s=0.1),
            "quantized_lora": _result(
                "quantized_lora", "code", perplexity=10.5, parse_rate=0.4, p95_s=0.2, token_f1=0.3
            ),
        },
        "creative": {
            "lora": _result("lora", "creative", perplexity=20.0, p95_s=0.1).to_json(),
            "quantized_lora": _result("quantized_lora", "creative", perplexity=21.0, p95_s=0.2).to_json(),
        },
    }
    behaviour = {
        "code": {"invariance": {"invariant_share": 2 / 3}, "minimum_functionality": {"pass_rate": 1.0}}
    }
    built = gate_summary(by_domain, serving="quantized_lora", behaviour=behaviour)
    assert built["domains"]["code"] == {"perplexity": 10.5, "parse_rate": 0.4, "p95_s": 0.2}
    assert built["base"] == {"code": {"perplexity": 12.0, "pass_at_1": 0.25}}
    assert built["samples"] == {"code": 4, "creative": 4}
    assert built["behaviour"]["code"] == {"invariance_share": 2 / 3, "functionality_pass_rate": 1.0}
    assert built["quantized_perplexity_increase"] == pytest.approx(0.05)
    assert gate_summary(by_domain, serving="lora")["quantized_perplexity_increase"] == 0.0


def test_serving_form_follows_the_chosen_variant() -> None:
    assert serving_form("fp32") == "lora"
    assert serving_form("int8_weight_only") == "quantized_lora"


def test_a_plumbing_report_says_its_numbers_measure_wiring() -> None:
    data = check_gates(summary(), GATES, None, gate_set=PLUMBING).to_json()
    assert data["gate_set"] == "plumbing"
    assert "not model quality" in data["note"]
    assert "note" not in check_gates(summary(), GATES, None).to_json()


def test_gate_checks_do_not_modify_their_inputs() -> None:
    candidate, champion = summary(), summary(**{"code.perplexity": 10.0})
    before = copy.deepcopy((candidate, champion))
    check_gates(candidate, GATES, champion)
    assert (candidate, champion) == before


def _code_forms(base_passes: int, served_passes: int, n: int = 16) -> dict[str, dict[str, FormResult]]:
    """Code results of the base and the served form on the same n tasks, each passing its first k."""

    def form(name: str, passes: int) -> FormResult:
        scores = [1.0] * passes + [0.0] * (n - passes)
        metrics = {"perplexity": 10.0, "pass_at_1": passes / n, "parse_rate": 1.0, "p95_s": 0.1}
        return FormResult(name, "code", n, metrics, scores={"pass_at_1": scores})

    return {"code": {"base": form("base", base_passes), "lora": form("lora", served_passes)}}


def _code_gate(forms: dict[str, dict[str, FormResult]], **gates: Any) -> Any:
    config = GatesConfig(**{"min_primary_gain": {"code": 0.0}, **gates})
    report = check_gates(gate_summary(forms, serving="lora"), config, None)
    return next(r for r in report.results if r.name == "min_primary_gain")


def test_summary_pairs_per_sample_scores_of_the_served_form_and_the_base() -> None:
    built = gate_summary(_code_forms(base_passes=1, served_passes=0), serving="lora")
    # differences: one -1 and fifteen 0 → sample sd 0.25, standard error 0.25 / 4
    assert built["paired"] == {"code": {"n": 16, "gain_se": pytest.approx(0.0625)}}


def test_a_pass_at_1_shortfall_of_one_task_in_16_is_within_sampling_noise_and_passes() -> None:
    gate = _code_gate(_code_forms(base_passes=1, served_passes=0))
    assert gate.passed and gate.value == pytest.approx(-0.0625)
    assert (
        "gain -0.0625 < 0 (absolute points), within sampling noise: its 95% upper bound +0.04" in gate.reason
    )
    assert gate.reason.endswith("over 16 paired samples >= 0")


def test_a_pass_at_1_shortfall_beyond_sampling_noise_holds_the_candidate() -> None:
    gate = _code_gate(_code_forms(base_passes=3, served_passes=0))
    assert not gate.passed
    assert "beyond sampling noise: its 95% upper bound -0.02" in gate.reason


def test_confidence_one_half_judges_the_point_estimate_alone() -> None:
    gate = _code_gate(_code_forms(base_passes=1, served_passes=0), primary_gain_confidence=0.5)
    assert not gate.passed


def test_a_metric_that_never_moved_cannot_meet_a_positive_margin_by_noise() -> None:
    gate = _code_gate(_code_forms(base_passes=0, served_passes=0), min_primary_gain={"code": 0.1})
    assert not gate.passed
    assert gate.reason == "pass_at_1 0 vs base 0 for code: gain +0 < 0.1 (absolute points)"


def test_forms_measured_on_different_samples_are_not_paired() -> None:
    forms = _code_forms(base_passes=1, served_passes=0)
    forms["code"]["base"] = FormResult(
        "base", "code", 8, dict(forms["code"]["base"].metrics), scores={"pass_at_1": [1.0] + [0.0] * 7}
    )
    assert "paired" not in gate_summary(forms, serving="lora")
    assert not _code_gate(forms).passed
