"""Per-row sampling and logprobs for one decode step, whatever mix of settings the step holds.

Every row keeps its own temperature, top_p and seed: greedy rows take one batched argmax, sampled
rows draw from their own `torch.Generator` (temperature, then nucleus top_p, then a multinomial
draw), so a seeded request gets the same tokens whatever else shares its steps — the global RNG
would be shared by every row of every request. Logprobs are those of the model's own distribution
(log-softmax of the raw logits, before temperature, top_p or a grammar mask), as OpenAI and vLLM
report them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    logprob: float | None  # None only for a prompt's first token: nothing precedes it
    top: tuple[tuple[int, float], ...] = ()  # (token id, logprob), most likely first


def row_seed(seed: int | None, choice: int) -> int:
    """Choice i of a seeded request uses seed + i (so n > 1 gives different, reproducible answers)."""
    if seed is None:
        return secrets.randbits(63)
    return (seed + choice) % (1 << 63)


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the smallest set whose probability reaches top_p (renormalised)."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    # Keep a token while the mass before it is below top_p: the top token always stays.
    keep = (cumulative - sorted_probs) < top_p
    filtered = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return filtered / filtered.sum()


class RowSampler:
    """One row's sampling state: its parameters and, once it first samples, its own generator."""

    def __init__(self, params: SamplingParams, seed: int) -> None:
        self.params = params
        self.seed = seed
        self._generator: torch.Generator | None = None

    def draw(self, logits: torch.Tensor) -> int:
        if self._generator is None:
            self._generator = torch.Generator(device=logits.device).manual_seed(self.seed)
        probs = nucleus(torch.softmax(logits / self.params.temperature, dim=-1), self.params.top_p)
        return int(torch.multinomial(probs, 1, generator=self._generator))


def choose_tokens(logits: torch.Tensor, samplers: Sequence[RowSampler]) -> list[int]:
    """The next token of every row of `logits` [rows, vocab]."""
    tokens = logits.argmax(dim=-1).tolist()
    for row, sampler in enumerate(samplers):
        if not sampler.params.greedy:
            tokens[row] = sampler.draw(logits[row])
    return tokens


def token_logprobs(logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """The logprob of `token` under one row's `logits` [vocab], with the `top` most likely."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        values, ids = torch.topk(logprobs, top)
        best = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(logprobs[token]), best)


def prompt_logprobs(logits: torch.Tensor, ids: Sequence[int], top: int) -> list[TokenLogprob]:
    """Logprobs of a prompt's own tokens from a forward over it (`logits` [len, vocab]); the first
    token has none (nothing precedes it)."""
    scored = [TokenLogprob(ids[0], None)]
    for position in range(1, len(ids)):
        scored.append(token_logprobs(logits[position - 1], ids[position], top))
    return scored
