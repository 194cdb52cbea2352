"""Behavioural checks on deterministic generate functions defined here (inputs, not mocks)."""

from __future__ import annotations

import pytest

from aistudio.config import PII_TYPES
from aistudio.data.pii import PiiScrubber
from aistudio.evaluation.behavioural import (
    FUNCTIONALITY_CASES,
    INVARIANCE_TURNS,
    behaviour_checks,
    invariance_check,
    invariance_prompts,
    minimum_functionality,
)
from aistudio.modeling.prompts import RESPONSE_MARKER, InstructionFormat

PROMPTS = [
    "Write to jane.doe@example.com about the meeting.",
    "Call +44 20 7946 0958 and book a table.",
    "The server 192.168.10.24 is down; explain why.",
]


def echo_words(prompts: list[str]) -> list[str]:
    """Answers with the prompt's words: PII changes one word of many."""
    return [f"Reply: {p}" for p in prompts]


def flips_on_placeholders(prompts: list[str]) -> list[str]:
    """Behaves differently once a placeholder appears: the failure invariance should catch."""
    return ["I cannot help with that." if "[" in p else "def answer():\n    return 42" for p in prompts]


def test_a_model_that_ignores_pii_is_invariant() -> None:
    report = invariance_check(echo_words, PROMPTS, domain="creative")
    assert report["checked"] == 3
    assert report["invariant_share"] == 1.0
    assert report["rule"].startswith("token F1")


def test_a_model_that_changes_behaviour_on_scrubbed_prompts_is_caught() -> None:
    report = invariance_check(flips_on_placeholders, PROMPTS, domain="analysis")
    assert report["invariant_share"] == 0.0
    assert all(case["token_f1"] < 0.5 for case in report["cases"])


def test_code_invariance_compares_whether_both_completions_parse() -> None:
    report = invariance_check(flips_on_placeholders, PROMPTS, domain="code")
    assert report["invariant_share"] == 0.0
    assert report["cases"][0]["parses_original"] and not report["cases"][0]["parses_scrubbed"]
    assert invariance_check(echo_words, PROMPTS, domain="code")["invariant_share"] == 1.0  # neither parses


def test_invariance_report_never_carries_the_pii_itself() -> None:
    report = invariance_check(echo_words, PROMPTS, domain="creative")
    text = repr(report)
    assert "jane.doe@example.com" not in text and "7946" not in text and "192.168.10.24" not in text


def test_a_prompt_without_pii_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt 1 holds no PII"):
        invariance_check(echo_words, [PROMPTS[0], "no personal data here"], domain="creative")


@pytest.mark.parametrize("domain", sorted(INVARIANCE_TURNS))
def test_every_built_in_invariance_prompt_holds_pii(domain: str) -> None:
    scrubber = PiiScrubber(PII_TYPES)
    prompts = invariance_prompts(domain, InstructionFormat())
    assert len(prompts) == len(INVARIANCE_TURNS[domain])
    assert all(scrubber.find(p) and p.endswith(RESPONSE_MARKER) for p in prompts)


SOLUTIONS = {
    "add": "def add(a, b):\n    return a + b",
    "is_even": "def is_even(n):\n    return n % 2 == 0",
    "reverse_string": "def reverse_string(s):\n    return s[::-1]",
}


def test_minimum_functionality_runs_the_code_cases_against_their_tests() -> None:
    def coder(prompts: list[str]) -> list[str]:
        names = [next(name for name in SOLUTIONS if f"`{name}(" in p) for p in prompts]
        return [f"Here it is:\n```python\n{SOLUTIONS[n]}\n```" for n in names]

    report = minimum_functionality(coder, "code")
    assert report["pass_rate"] == 1.0 and report["error"] is None
    assert report["total"] == len(FUNCTIONALITY_CASES["code"])


def test_code_that_only_looks_right_fails_minimum_functionality() -> None:
    def plausible(prompts: list[str]) -> list[str]:
        return ["```python\ndef solve(x):\n    return x\n```"] * len(prompts)

    report = minimum_functionality(plausible, "code")
    assert report["pass_rate"] == 0.0
    assert all(case["checks"]["passes_its_tests"] is False for case in report["cases"])


def test_minimum_functionality_reports_empty_and_looping_output() -> None:
    report = minimum_functionality(
        lambda prompts: ["the sea the sea the sea the sea"] * len(prompts), "creative"
    )
    assert report["pass_rate"] == 0.0
    assert all(
        case["checks"] == {"no_crash": True, "non_empty": True, "not_degenerate": False}
        for case in report["cases"]
    )
    summaries = minimum_functionality(lambda prompts: [""] * len(prompts), "summarization")
    assert summaries["passed"] == 0


def test_a_crashing_generate_fn_is_reported_not_raised() -> None:
    def crashes(prompts: list[str]) -> list[str]:
        raise RuntimeError("CUDA out of memory")

    report = minimum_functionality(crashes, "analysis")
    assert report["error"] == "RuntimeError: CUDA out of memory"
    assert report["pass_rate"] == 0.0
    assert all(case["checks"]["no_crash"] is False for case in report["cases"])


def test_an_unknown_domain_gets_generic_cases() -> None:
    report = minimum_functionality(lambda prompts: ["Happy to help."] * len(prompts), "legal")
    assert report["total"] >= 1 and report["pass_rate"] == 1.0


@pytest.mark.parametrize("domain", ["code", "summarization", "legal"])
def test_both_behaviour_checks_are_answered_in_one_batch_with_the_reports_given_alone(domain: str) -> None:
    fmt = InstructionFormat()
    batches: list[list[str]] = []

    def answers(prompts: list[str]) -> list[str]:
        batches.append(list(prompts))
        return flips_on_placeholders(prompts)

    report = behaviour_checks(answers, domain, fmt)
    (batch,) = batches  # one call
    assert len(batch) == len(set(batch))  # each prompt asked once
    alone = invariance_check(flips_on_placeholders, invariance_prompts(domain, fmt), domain=domain)
    assert report == {
        "invariance": alone,
        "minimum_functionality": minimum_functionality(flips_on_placeholders, domain, fmt),
    }


def test_a_batch_too_large_to_answer_is_asked_again_check_by_check() -> None:
    fmt = InstructionFormat()

    def small_batches_only(prompts: list[str]) -> list[str]:
        if len(prompts) > 3:
            raise RuntimeError("out of memory")
        return echo_words(prompts)

    report = behaviour_checks(small_batches_only, "code", fmt)
    alone = invariance_check(echo_words, invariance_prompts("code", fmt), domain="code")
    assert report["invariance"] == alone
    assert report["minimum_functionality"]["error"] is None
