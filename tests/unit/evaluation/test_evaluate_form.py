"""evaluate_form with plain generate/nll functions: bounding, batching, latency and metrics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from aistudio.config import EvaluationConfig
from aistudio.errors import UserError
from aistudio.evaluation.evaluate import Completions, evaluate_form
from aistudio.evaluation.results import FormResult
from aistudio.modeling.prompts import InstructionFormat

FMT = InstructionFormat()
CFG = EvaluationConfig(max_samples_per_domain=5, batch_size=2, max_new_tokens=8)


def records(n: int, domain: str = "code") -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "domain": domain,
            "instruction": f"Return {i}.",
            "input": "",
            "output": f"x = {i}",
            "text": "",
        }
        for i in range(n)
    ]


class Recorder:
    """A deterministic generate function that remembers the batches it was called with."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.calls.append(list(prompts))
        return [f"x = {p.split('Return ')[1].split('.')[0]}" for p in prompts]


def nll_of(seen: list[int]):
    def nll(recs: Any) -> tuple[float, int]:
        seen.append(len(recs))
        return math.log(4.0), 10 * len(recs)

    return nll


def test_evaluation_is_bounded_batched_and_timed_per_batch() -> None:
    generate, seen = Recorder(), []
    result = evaluate_form(
        generate,
        nll_of(seen),
        records(12),
        "code",
        CFG,
        form="lora",
        fmt=FMT,
        count_tokens=lambda text: len(text.split()),
    )
    # One untimed warm-up call, then 5 samples in batches of 2.
    assert [len(c) for c in generate.calls] == [1, 2, 2, 1]
    assert seen == [5]
    assert result.n_samples == 5
    m = result.metrics
    assert m["perplexity"] == pytest.approx(4.0)
    assert m["nll_tokens"] == 50
    assert m["parse_rate"] == 1.0 and m["exact_match"] == 1.0
    assert m["mean_new_tokens"] == 3.0
    assert 0 <= m["p50_s"] <= m["p95_s"]
    assert m["tokens_per_second"] > 0


def test_a_model_already_warmed_up_is_not_warmed_up_again() -> None:
    generate = Recorder()
    evaluate_form(
        generate, nll_of([]), records(5), "code", CFG, form="lora", fmt=FMT, count_tokens=len, warm_up=False
    )
    assert [len(c) for c in generate.calls] == [2, 2, 1]


def test_result_round_trips_through_json() -> None:
    result = evaluate_form(
        Recorder(), nll_of([]), records(3), "code", CFG, form="base", fmt=FMT, count_tokens=len
    )
    assert FormResult.from_json(result.to_json()) == result
    assert len(result.examples) == 3 and set(result.examples[0]) == {"prompt", "reference", "prediction"}


def test_unknown_forms_other_domains_and_empty_domains_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown form 'fp16'"):
        evaluate_form(Recorder(), nll_of([]), records(2), "code", CFG, form="fp16", fmt=FMT, count_tokens=len)
    with pytest.raises(ValueError, match=r"other domain\(s\) \['creative'\]"):
        evaluate_form(
            Recorder(),
            nll_of([]),
            records(2, "creative"),
            "code",
            CFG,
            form="base",
            fmt=FMT,
            count_tokens=len,
        )
    with pytest.raises(UserError, match="no test records for domain 'code'"):
        evaluate_form(Recorder(), nll_of([]), [], "code", CFG, form="base", fmt=FMT, count_tokens=len)


def test_token_counts_come_from_completions_when_the_generate_fn_returns_them() -> None:
    def counted(prompts: list[str]) -> Completions:
        return Completions(Recorder()(prompts), [7] * len(prompts))

    result = evaluate_form(counted, nll_of([]), records(3), "code", CFG, form="lora", fmt=FMT)
    assert result.metrics["mean_new_tokens"] == 7.0
    with pytest.raises(ValueError, match="pass count_tokens"):
        evaluate_form(Recorder(), nll_of([]), records(3), "code", CFG, form="lora", fmt=FMT)


def test_a_generate_fn_that_drops_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="returned 1 completion"):
        evaluate_form(
            lambda p: ["x"], nll_of([]), records(4), "code", CFG, form="base", fmt=FMT, count_tokens=len
        )


def test_code_records_with_unit_tests_get_pass_at_1_from_the_sandbox() -> None:
    tested = records(4)
    for i, record in enumerate(tested):
        record.update({"entry_point": "value", "tests": f"assert value() == {i}\n"})

    def answers(prompts: list[str]) -> list[str]:
        # Right for records 0 and 1, wrong for 2, a prose-wrapped fence for 3 (right).
        numbers = [int(p.split("Return ")[1].split(".")[0]) for p in prompts]
        return [
            f"Sure:\n```python\ndef value():\n    return {n}\n```"
            if n == 3
            else f"def value():\n    return {n % 2}"
            for n in numbers
        ]

    result = evaluate_form(answers, nll_of([]), tested, "code", CFG, form="lora", fmt=FMT, count_tokens=len)
    assert result.metrics["pass_at_1"] == pytest.approx(3 / 4)
    assert result.metrics["pass_at_1_samples"] == 4
    assert result.metrics["sandbox_failed"] == 1
    assert [e["tests"] for e in result.examples] == ["passed", "passed", "failed"]
