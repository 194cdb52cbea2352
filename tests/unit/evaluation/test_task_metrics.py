"""Task metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from aistudio.evaluation.metrics import (
    code_parse_rate,
    domain_metrics,
    exact_match,
    extract_code,
    latency_summary,
    length_ratio,
    length_stats,
    parses_as_python,
    primary_metric,
    repetition_rate,
    rouge_scores,
    sample_scores,
    token_f1,
    token_overlap_f1,
)


def test_rouge_of_identical_strings_is_one() -> None:
    text = "The council agreed to add two night bus lines."
    assert rouge_scores([text], [text]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_stems_words_and_averages_pairs() -> None:
    # "cats" stems to "cat": a full match; the second pair shares nothing.
    scores = rouge_scores(["the cats", "alpha beta"], ["the cat", "gamma delta"])
    assert scores["rouge1"] == pytest.approx(0.5)
    assert scores["rougeL"] == pytest.approx(0.5)


def test_parse_rate_of_a_mix_counts_fenced_code_and_not_blank_output() -> None:
    generations = [
        "def add(a, b):\n    return a + b\n",
        "```python\nx = [i * i for i in range(3)]\n```",
        "def broken(:\n    pass",
        "   ",
    ]
    assert code_parse_rate(generations) == 0.5


def test_fence_is_stripped_even_when_generation_stopped_before_closing_it() -> None:
    assert extract_code("```py\nx = 1\n```") == "x = 1"
    assert extract_code("```\nx = 1") == "x = 1"
    assert extract_code("x = 1") == "x = 1"
    assert parses_as_python("```python\nreturn_value = 2\n")


def test_code_is_found_in_the_block_that_defines_the_entry_point_amid_prose() -> None:
    text = (
        "Sure! First a helper:\n```python\ndef helper():\n    return 1\n```\n"
        "And the function:\n```python\ndef total(xs):\n    return sum(xs)\n```\nHope it helps."
    )
    assert extract_code(text, "total") == "def total(xs):\n    return sum(xs)"
    assert extract_code(text) == "def helper():\n    return 1"


def test_an_unfenced_prose_preamble_is_dropped_before_the_first_code_line() -> None:
    text = "Here is the function you asked for:\ndef total(xs):\n    return sum(xs)\n"
    assert extract_code(text, "total") == "def total(xs):\n    return sum(xs)\n"
    assert parses_as_python(text)


def test_exact_match_ignores_whitespace_runs_only() -> None:
    assert exact_match(["a  b\n", "c", "Case"], ["a b", "d", "case"]) == pytest.approx(1 / 3)


def test_token_f1_on_a_known_pair() -> None:
    # Articles and punctuation drop out: {cat, sat, on, mat} vs {cat, sat, on, hat}: P = R = 3/4.
    assert token_f1("The cat sat on the mat.", "a cat sat on a hat") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0
    assert token_f1("words", "") == 0.0
    assert token_overlap_f1(["The cat sat on the mat.", "x"], ["a cat sat on a hat", "y"]) == pytest.approx(
        0.375
    )


def test_repetition_of_a_a_a_a_is_one_half_for_trigrams() -> None:
    assert repetition_rate(["a a a a"], n=3) == 0.5
    assert repetition_rate(["a a a a"], n=2) == pytest.approx(2 / 3)
    # Texts too short for one n-gram say nothing and are left out of the mean.
    assert repetition_rate(["a a a a", "hi"], n=3) == 0.5
    assert repetition_rate(["one two three four"]) == 0.0
    assert repetition_rate([]) == 0.0


def test_length_stats_count_words_and_blank_texts() -> None:
    stats = length_stats(["one two", "", "a b c d"])
    assert stats == {
        "mean_words": 2.0,
        "p50_words": 2.0,
        "max_words": 4.0,
        "empty_share": pytest.approx(1 / 3),
    }


def test_latency_summary_percentiles_are_over_calls_and_throughput_over_all_time() -> None:
    summary = latency_summary([1.0, 2.0, 3.0, 4.0], [5, 5, 5, 5, 5, 5, 5, 5])
    assert summary["p50_s"] == pytest.approx(2.5)
    assert summary["p95_s"] == pytest.approx(3.85)
    assert summary["tokens_per_second"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least one timed call"):
        latency_summary([], [])


@pytest.mark.parametrize(
    ("domain", "keys"),
    [
        ("summarization", {"rouge1", "rouge2", "rougeL", "length_ratio"}),
        ("code", {"parse_rate", "exact_match"}),
        ("creative", {"token_f1", "repetition_rate", "mean_words", "length_ratio"}),
        ("analysis", {"token_f1", "repetition_rate", "mean_words", "length_ratio"}),
        # unknown domains: open-ended text
        ("legal", {"token_f1", "repetition_rate", "mean_words", "length_ratio"}),
    ],
)
def test_each_domain_gets_its_task_metrics(domain: str, keys: set[str]) -> None:
    assert set(domain_metrics(domain, ["x = 1"], ["x = 1"])) == keys


def test_predictions_and_references_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        domain_metrics("code", ["a", "b"], ["a"])


def test_length_ratio_is_prediction_words_over_reference_words() -> None:
    assert length_ratio(["one two", "one two three four"], ["a b c", "a b c"]) == pytest.approx(1.0)
    assert length_ratio(["one"], ["a b c d"]) == pytest.approx(0.25)
    assert length_ratio(["one"], [""]) == 0.0


@pytest.mark.parametrize(
    ("domain", "value", "base", "gain"),
    [
        ("code", 0.3125, 0.25, 0.0625),  # pass@1: absolute points
        ("summarization", 0.30, 0.20, 0.10),  # ROUGE-L: absolute points
        ("creative", 18.0, 20.0, 0.10),  # perplexity: relative reduction
        ("analysis", 22.0, 20.0, -0.10),
        ("legal", 9.0, 10.0, 0.10),  # unknown domains are judged on perplexity
    ],
)
def test_primary_metric_gain_per_domain(domain: str, value: float, base: float, gain: float) -> None:
    assert primary_metric(domain).gain(value, base) == pytest.approx(gain)


def test_summaries_are_scored_per_sample_and_their_mean_is_the_rouge_l() -> None:
    predictions, references = ["the cats", "alpha beta"], ["the cat", "gamma delta"]
    per_sample = sample_scores("summarization", predictions, references)
    assert per_sample == {"rougeL": [pytest.approx(1.0), 0.0]}
    assert sum(per_sample["rougeL"]) / 2 == pytest.approx(rouge_scores(predictions, references)["rougeL"])


def test_perplexity_domains_have_no_per_sample_primary_scores() -> None:
    assert sample_scores("creative", ["a b"], ["a c"]) == {}
