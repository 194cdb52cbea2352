"""Per-row sampling: greedy rows take the argmax, seeded rows draw the same tokens whatever shares
their step, top_p keeps the nucleus, logprobs are those of the raw distribution."""

from __future__ import annotations

import math

import pytest
import torch

from aistudio.serving.sampling import (
    RowSampler,
    SamplingParams,
    choose_tokens,
    nucleus,
    prompt_logprobs,
    row_seed,
    token_logprobs,
)


def test_greedy_rows_take_the_argmax_and_sampled_rows_their_own_draw() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [2.0, 0.0, 1.0]])
    samplers = [RowSampler(SamplingParams(0.0), 1), RowSampler(SamplingParams(0.0), 2)]
    assert choose_tokens(logits, samplers) == [1, 0]


def test_a_seeded_row_draws_the_same_tokens_alone_or_in_company() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    params = SamplingParams(1.0, 0.95, seed=5)

    def draws(rows: list[int]) -> list[int]:
        seeded = RowSampler(params, row_seed(5, 0))
        others = [RowSampler(SamplingParams(1.0), row_seed(None, 0)) for _ in rows]
        out = []
        for _ in range(5):
            tokens = choose_tokens(logits[[0, *rows]], [seeded, *others])
            out.append(tokens[0])
        return out

    assert draws([]) == draws([1, 2, 3])
    assert row_seed(5, 1) != row_seed(5, 0)


def test_nucleus_keeps_the_smallest_set_reaching_top_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    kept = nucleus(probs, 0.7)
    assert kept.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0])
    assert nucleus(probs, 1.0) is probs
    assert nucleus(probs, 0.1).tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_token_logprobs_are_log_softmax_with_the_most_likely_first() -> None:
    logits = torch.tensor([1.0, 3.0, 2.0])
    scored = token_logprobs(logits, token=2, top=2)
    expected = torch.log_softmax(logits, dim=-1)
    assert scored.logprob == pytest.approx(float(expected[2]))
    assert [i for i, _ in scored.top] == [1, 2]
    assert sum(math.exp(lp) for lp in expected.tolist()) == pytest.approx(1.0)


def test_prompt_logprobs_score_each_token_from_the_position_before_it() -> None:
    logits = torch.tensor([[0.0, 9.0, 0.0], [0.0, 0.0, 9.0], [9.0, 0.0, 0.0]])
    scored = prompt_logprobs(logits, [0, 1, 2], top=0)
    assert scored[0].token_id == 0 and scored[0].logprob is None
    assert scored[1].logprob == pytest.approx(float(torch.log_softmax(logits[0], -1)[1]))
    assert scored[2].logprob > -0.01  # position 1 predicted token 2 with near certainty
