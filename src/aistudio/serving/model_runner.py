"""One forward pass per call, over rows the scheduler chose: prefill chunks or one decode step.

The runner owns the KV cache and knows how each family feeds a transformers model; it knows
nothing of requests, sampling or stopping (the scheduler's job). Every call returns the logits of
the last position of each row it was given (float32), or None where a family has none to give
(a seq2seq prefill only runs the encoder).

- `CausalRunner`: prompts are prefilled into their row's slot of a `SlotKVCache`; several fresh
  prompts share one left-padded forward, the rest of a long prompt comes in chunks. A decode step
  feeds each row's newest token at its own position.
- `Seq2SeqRunner`: the encoder runs once per prompt at prefill and its states are kept per row;
  every decode step feeds each row's newest decoder token, all rows in one aligned column. Cross
  attention recomputes K/V from the kept encoder states each step: the seq2seq family here is the
  small plumbing model, for which a second cache would cost more code than it saves time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import EncoderDecoderCache

from aistudio.serving.kv_cache import AlignedKVCache, SlotKVCache

# Adapter names per row → a context yielding the model to call (the base, or the PeftModel set up
# for these rows) and the extra forward kwargs it needs (PEFT's adapter_names for a mixed step).
AdapterRouting = Callable[[Sequence[str | None]], AbstractContextManager[tuple[Any, dict[str, Any]]]]


@dataclass(frozen=True)
class PrefillChunk:
    """Tokens `ids` of one row's prompt, to be cached from column `start` on."""

    slot: int
    ids: Sequence[int]
    start: int
    adapter: str | None


def _last_logits(output: Any) -> torch.Tensor:
    return output.logits[:, -1, :].float()


class CausalRunner:
    def __init__(self, routing: AdapterRouting, rows: int, max_columns: int, pad_id: int) -> None:
        self.routing = routing
        self.cache = SlotKVCache(rows, max_columns)
        self.pad_id = pad_id
        # Rows are swapped through the trash slot (only a prefill forward writes there).
        self.spare_slot = self.cache.trash_slot

    @torch.inference_mode()
    def prefill(self, chunks: Sequence[PrefillChunk]) -> torch.Tensor:
        """Logits after each chunk's last token, in the order given."""
        fresh = [i for i, c in enumerate(chunks) if c.start == 0]
        logits: list[torch.Tensor | None] = [None] * len(chunks)
        if fresh:
            for i, row in zip(fresh, self._prefill_fresh([chunks[i] for i in fresh]), strict=True):
                logits[i] = row
        for i, chunk in enumerate(chunks):
            if chunk.start > 0:
                logits[i] = self._extend(chunk)
        return torch.stack([row for row in logits if row is not None])

    def _prefill_fresh(self, chunks: Sequence[PrefillChunk]) -> torch.Tensor:
        """Prompts that start at column 0 in one left-padded batch: each sees only itself."""
        width = max(len(c.ids) for c in chunks)
        rows = len(chunks)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        pad = torch.tensor([width - len(c.ids) for c in chunks]).view(-1, 1)
        column = torch.arange(width).view(1, -1)
        real = column >= pad  # [B, T]
        for b, chunk in enumerate(chunks):
            ids[b, width - len(chunk.ids) :] = torch.tensor(list(chunk.ids))
        positions = torch.where(real, column - pad, 0)
        # Query t sees key s when both are real and s <= t. A padding query sees only itself:
        # a query that sees nothing gets NaN from softmax, and that NaN would reach the real
        # rows through the padding's KV in the next layer.
        causal = column.view(1, 1, -1) <= column.view(1, -1, 1)  # [1, T(q), T(k)]
        mask = causal & real.view(rows, 1, width) & real.view(rows, width, 1)
        mask |= torch.eye(width, dtype=torch.bool).view(1, width, width) & ~real.view(rows, width, 1)
        slots = torch.where(real, torch.tensor([c.slot for c in chunks]).view(-1, 1), self.cache.trash_slot)
        self.cache.plan_prefill(slots, torch.where(real, positions, column))
        return self._forward(ids, positions, mask.unsqueeze(1), [c.adapter for c in chunks])

    def _extend(self, chunk: PrefillChunk) -> torch.Tensor:
        """The next chunk of a prompt whose start is already cached."""
        length = len(chunk.ids)
        end = chunk.start + length
        positions = torch.arange(chunk.start, end).view(1, -1)
        mask = torch.arange(end).view(1, -1) <= positions.view(-1, 1)  # [T(q), end]
        self.cache.plan_extend(chunk.slot, chunk.start, length)
        ids = torch.tensor([list(chunk.ids)])
        return self._forward(ids, positions, mask.view(1, 1, length, end), [chunk.adapter])[0]

    @torch.inference_mode()
    def decode(
        self, tokens: Sequence[int], lengths: Sequence[int], adapters: Sequence[str | None]
    ) -> torch.Tensor:
        """One step for the rows in slots 0..R-1: row r feeds tokens[r] at column lengths[r]."""
        length = torch.tensor(list(lengths))
        width = int(length.max()) + 1
        mask = torch.arange(width).view(1, -1) <= length.view(-1, 1)  # [R, width]
        self.cache.plan_decode(length)
        ids = torch.tensor(list(tokens)).view(-1, 1)
        return self._forward(ids, length.view(-1, 1), mask.view(-1, 1, 1, width), adapters)

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, adapters: Sequence[str | None]
    ) -> torch.Tensor:
        with self.routing(adapters) as (model, extra):
            output = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
        return _last_logits(output)

    def move(self, source: int, target: int, length: int) -> None:
        self.cache.move(source, target, length)

    @property
    def cache_bytes(self) -> int:
        return self.cache.bytes


class _CrossAttentionPassThrough:
    """Cross-attention K/V are recomputed from the encoder states every step; nothing is kept."""

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *args: object,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class _DecoderCache(EncoderDecoderCache):
    """What T5 expects to receive (it routes self vs cross attention by this type), over our caches."""

    def __init__(self, self_attention: AlignedKVCache) -> None:  # no super(): it insists on DynamicCaches
        self.self_attention_cache = self_attention
        self.cross_attention_cache = _CrossAttentionPassThrough()
        self.is_updated: dict[int, bool] = {}

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.self_attention_cache.get_seq_length(layer_idx)


class _EncoderStates:
    """Encoder output and mask per slot, `[slots, length, d_model]`, growing with the longest prompt."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.states: torch.Tensor | None = None
        self.mask = torch.zeros(slots, 0, dtype=torch.bool)

    def store(self, slot: int, states: torch.Tensor, length: int) -> None:
        if self.states is None or self.states.shape[1] < length:
            grown = states.new_zeros(self.slots, length, states.shape[-1])
            mask = torch.zeros(self.slots, length, dtype=torch.bool)
            if self.states is not None:
                grown[:, : self.states.shape[1]] = self.states
                mask[:, : self.mask.shape[1]] = self.mask
            self.states, self.mask = grown, mask
        self.states[slot].zero_()
        self.states[slot, :length] = states[:length]
        self.mask[slot] = False
        self.mask[slot, :length] = True

    def move(self, source: int, target: int) -> None:
        assert self.states is not None
        self.states[target] = self.states[source]
        self.mask[target] = self.mask[source]

    def rows(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.states is not None
        width = int(self.mask[:count].sum(dim=1).max())
        return self.states[:count, :width], self.mask[:count, :width]


class Seq2SeqRunner:
    def __init__(
        self, routing: AdapterRouting, rows: int, max_columns: int, pad_id: int, start_token: int
    ) -> None:
        self.routing = routing
        # One slot more than rows: the spare through which two rows swap slots.
        self.cache = AlignedKVCache(rows + 1, max_columns)
        self.encoder_states = _EncoderStates(rows + 1)
        self.spare_slot = rows
        self.pad_id = pad_id
        self.start_token = start_token

    @torch.inference_mode()
    def prefill(self, chunks: Sequence[PrefillChunk]) -> None:
        """Run the encoder over whole prompts (seq2seq prompts are never chunked) and keep its states."""
        width = max(len(c.ids) for c in chunks)
        ids = torch.full((len(chunks), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(chunks), width, dtype=torch.long)
        for b, chunk in enumerate(chunks):
            ids[b, : len(chunk.ids)] = torch.tensor(list(chunk.ids))
            mask[b, : len(chunk.ids)] = 1
        start = torch.full((len(chunks), 1), self.start_token, dtype=torch.long)
        # Through the whole model (one decoder token more), not get_encoder(): PEFT routes
        # per-row adapters only inside the PeftModel's own forward.
        with self.routing([c.adapter for c in chunks]) as (model, extra):
            output = model(input_ids=ids, attention_mask=mask, decoder_input_ids=start, **extra)
        states = output.encoder_last_hidden_state
        for b, chunk in enumerate(chunks):
            self.encoder_states.store(chunk.slot, states[b], len(chunk.ids))
        return None

    @torch.inference_mode()
    def decode(
        self, tokens: Sequence[int], starts: Sequence[int], adapters: Sequence[str | None]
    ) -> torch.Tensor:
        """One step for the rows in slots 0..R-1; row r's decoder tokens start at column starts[r]."""
        rows = len(tokens)
        self.cache.plan_decode(rows)
        column = self.cache.columns
        start = torch.tensor(list(starts)).view(-1, 1)
        keys = torch.arange(column + 1).view(1, -1)
        self_mask = (keys >= start).view(rows, 1, 1, column + 1)
        encoder_states, encoder_mask = self.encoder_states.rows(rows)
        ids = torch.tensor(list(tokens)).view(-1, 1)
        with self.routing(adapters) as (model, extra):
            output = model(
                encoder_outputs=(encoder_states,),
                attention_mask=encoder_mask.long(),
                decoder_input_ids=ids,
                decoder_attention_mask=self_mask,
                cache=_DecoderCache(self.cache),
                use_cache=True,
                **extra,
            )
        self.cache.advance()
        return _last_logits(output)

    def release_columns(self, starts: Sequence[int]) -> int:
        """Drop the columns before the oldest active row's start; returns how many went."""
        return self.cache.free_columns(min(starts, default=self.cache.columns))

    def move(self, source: int, target: int, start: int | None) -> None:
        """Row `source` into slot `target`: its decoder columns from `start` (None: none yet)."""
        if start is not None:
            self.cache.move(source, target, start)
        self.encoder_states.move(source, target)

    @property
    def cache_bytes(self) -> int:
        states = self.encoder_states.states
        return self.cache.bytes + (0 if states is None else states.numel() * states.element_size())
