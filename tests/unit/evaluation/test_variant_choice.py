"""The serving variant rule on measured numbers: smallest passing, near-equal sizes by cost, none passing."""

from __future__ import annotations

import pytest

from aistudio.evaluation.variant_choice import VariantCandidate, choose_variant

MB = 1_000_000


def smollm2_like(**costs: float | None) -> list[VariantCandidate]:
    """Sizes and perplexity costs as measured for SmolLM2-135M on CPU (see params.yaml)."""
    measured = {"4bit": 0.252, "8bit": 0.022, "dynamic": 0.031, "int8_weight_only": -0.001, "fp32": 0.0}
    measured.update(costs)
    sizes = {"4bit": 169, "8bit": 220.25, "dynamic": 220.54, "int8_weight_only": 220.49, "fp32": 538}
    return [VariantCandidate(v, int(sizes[v] * MB), measured[v]) for v in measured]


def test_nf4_fails_its_perplexity_cost_and_the_cheapest_int8_wins() -> None:
    choice = choose_variant(smollm2_like(), max_increase=0.05)
    assert choice.passed and choice.variant == "int8_weight_only"
    assert "4bit (169 MB): perplexity +25.20% > +5.00%" in choice.reason
    assert "as small within 5%, but costlier: 8bit, dynamic" in choice.reason


def test_the_smallest_wins_when_its_cost_passes() -> None:
    choice = choose_variant(smollm2_like(**{"4bit": 0.04}), max_increase=0.05)
    assert choice.variant == "4bit"
    assert choice.reason.startswith("smallest variant whose quality cost passes: 4bit (169 MB")


def test_variants_that_could_not_be_measured_are_rejected_with_their_reason() -> None:
    candidates = [
        VariantCandidate("4bit", None, None, "unavailable: bitsandbytes has no CPU kernel"),
        VariantCandidate("fp32", 538 * MB, 0.0),
    ]
    choice = choose_variant(candidates, max_increase=0.05)
    assert choice.variant == "fp32"
    assert "4bit (?): unavailable: bitsandbytes has no CPU kernel" in choice.reason
    listed = {c["variant"]: c for c in choice.to_json()["candidates"]}
    assert listed["4bit"]["passed"] is False and listed["fp32"]["passed"] is True


def test_when_no_variant_passes_the_cheapest_is_reported_and_the_choice_fails() -> None:
    candidates = [c for c in smollm2_like() if c.variant != "fp32"]
    choice = choose_variant(candidates, max_increase=-0.5)
    assert not choice.passed
    assert choice.variant == "int8_weight_only"
    assert choice.reason.startswith("no variant's quality cost passes; int8_weight_only costs least")
    assert choice.short() == {"variant": "int8_weight_only", "passed": False, "reason": choice.reason}


def test_equal_size_and_cost_go_by_the_configured_order() -> None:
    candidates = [VariantCandidate("dynamic", 220 * MB, 0.01), VariantCandidate("8bit", 220 * MB, 0.01)]
    assert choose_variant(candidates, 0.05).variant == "dynamic"
    assert choose_variant(candidates[::-1], 0.05).variant == "8bit"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="serving_variants is empty"):
        choose_variant([], 0.05)
