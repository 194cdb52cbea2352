"""Per-row sampling inside one batched `generate`: each row keeps its own temperature, top_p and seed.

`generate` runs greedy (argmax) for the whole batch; `RowSampler`, a logits processor, draws the
token of every sampled row itself — temperature, then nucleus (top_p), then a multinomial draw
from that row's own `torch.Generator` — and leaves a single finite logit, which argmax then
picks. Greedy rows pass through untouched. So requests with different sampling settings share
one forward pass, and a seeded request draws the same tokens whatever else is in its batch
(the global RNG, which `do_sample=True` would use, is shared by every row and every request).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


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


class RowSampler(LogitsProcessor):
    def __init__(self, params: Sequence[SamplingParams], seeds: Sequence[int]) -> None:
        self.params = list(params)
        self.seeds = list(seeds)
        self._generators: dict[int, torch.Generator] = {}

    def _generator(self, row: int, device: torch.device) -> torch.Generator:
        gen = self._generators.get(row)
        if gen is None:
            gen = torch.Generator(device=device).manual_seed(self.seeds[row])
            self._generators[row] = gen
        return gen

    @property
    def samples_any(self) -> bool:
        return any(not p.greedy for p in self.params)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, params in enumerate(self.params):
            if params.greedy:
                continue
            probs = torch.softmax(scores[row].float() / params.temperature, dim=-1)
            probs = nucleus(probs, params.top_p)
            token = torch.multinomial(probs, 1, generator=self._generator(row, scores.device))
            scores[row] = float("-inf")
            scores[row, token] = 0.0
        return scores
