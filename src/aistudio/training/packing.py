"""Sequence packing for the causal family: several whole examples per row, no attention across them.

No custom mask is built. With `attention_mask=None` and `position_ids` that restart at 0 for every
sample, transformers derives a block-diagonal causal mask itself (`find_packed_sequence_indices` in
`transformers.masking_utils`), for sdpa and eager alike, and the rotary positions of each sample are
the ones it would get alone — so a packed sample's loss equals its unpacked loss.

The trap: that detection runs only without a KV cache. A model whose config says `use_cache=True`
(PhiConfig's default) builds a cache in every forward, even in training, and then silently applies a
plain causal mask across the whole row. The HF Trainer sets `model.config.use_cache = args.use_cache`
(False by default), so Trainer runs are safe; any other forward over packed rows must pass
`use_cache=False`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from aistudio.modeling.family import IGNORE_INDEX, Encoded


@dataclass(frozen=True)
class PackedRow:
    """One training row: whole samples back to back, `position_ids` restarting at 0 at each sample."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]


def _clipped(example: Encoded, max_length: int, index: int) -> Encoded:
    if len(example.input_ids) != len(example.labels):
        raise ValueError(
            f"example {index}: input_ids and labels must have the same length "
            f"(got {len(example.input_ids)} and {len(example.labels)})"
        )
    if len(example.input_ids) <= max_length:
        return example
    return Encoded(example.input_ids[:max_length], example.labels[:max_length])


def _first_fit_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit of `lengths` (in the given order) into bins of `capacity`; bins hold indices.

    A max-tree over every bin's free room finds the leftmost bin that fits in O(log n), so packing
    a large corpus stays O(n log n) instead of scanning every open bin per example. Bins not yet
    opened start with full room, so "leftmost that fits" opens a new bin exactly when first-fit would.
    """
    leaves = 1
    while leaves < max(len(lengths), 1):
        leaves *= 2
    room = [capacity] * (2 * leaves)
    bins: list[list[int]] = []
    for index, length in enumerate(lengths):
        node = 1
        while node < leaves:
            node = 2 * node if room[2 * node] >= length else 2 * node + 1
        slot = node - leaves
        if slot == len(bins):
            bins.append([])
        bins[slot].append(index)
        room[node] -= length
        node //= 2
        while node:
            room[node] = max(room[2 * node], room[2 * node + 1])
            node //= 2
    return bins


def _packed_row(samples: Sequence[Encoded]) -> PackedRow:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for sample in samples:
        input_ids += sample.input_ids
        # The model shifts labels left (logit t scores label t+1), so a sample's first label is what the
        # previous sample's last token would be trained to predict. It is never a target of its own sample.
        labels += [IGNORE_INDEX, *sample.labels[1:]]
        position_ids += range(len(sample.input_ids))
    return PackedRow(input_ids, labels, position_ids)


def pack_examples(examples: Sequence[Encoded], max_length: int) -> list[PackedRow]:
    """Whole examples packed into rows of at most `max_length` tokens, first-fit-decreasing.

    Longer examples are truncated to `max_length` first; empty ones carry no tokens and are dropped.
    The order is deterministic: longest first, ties in their original order.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1 (got {max_length})")
    clipped = [_clipped(e, max_length, i) for i, e in enumerate(examples)]
    # sorted() is stable, so equal lengths keep their original order.
    kept = [i for i, e in enumerate(clipped) if e.input_ids]
    order = sorted(kept, key=lambda i: -len(clipped[i].input_ids))
    bins = _first_fit_bins([len(clipped[i].input_ids) for i in order], max_length)
    return [_packed_row([clipped[order[k]] for k in members]) for members in bins]


def collate_packed(rows: Sequence[PackedRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A batch of packed rows, right-padded to the longest; deliberately without `attention_mask`.

    An attention mask would switch off transformers' packed-sequence detection. Padding instead gets its
    own position run (0, 1, 2, …), so it is a segment of its own that no sample attends to. Run the model
    with `use_cache=False` (see the module docstring).
    """
    if not rows:
        raise ValueError("collate_packed needs at least one row")
    width = max(len(r.input_ids) for r in rows)
    input_ids, labels, position_ids = [], [], []
    for row in rows:
        pad = width - len(row.input_ids)
        input_ids.append(row.input_ids + [pad_token_id] * pad)
        labels.append(row.labels + [IGNORE_INDEX] * pad)
        position_ids.append(row.position_ids + list(range(pad)))
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(position_ids, dtype=torch.long),
    }


def useful_tokens(batch: Mapping[str, torch.Tensor], pad_token_id: int | None = None) -> int:
    """Non-pad tokens in a batch: what tokens/s should count.

    A padded batch says so in its `attention_mask`. A packed batch has none, so `pad_token_id` is needed;
    the causal family never encodes the pad token inside a sample, so every pad id there is padding.
    """
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    if pad_token_id is None:
        raise ValueError("a batch without attention_mask (packed) needs pad_token_id to count its padding")
    return int((batch["input_ids"] != pad_token_id).sum())


@dataclass(frozen=True)
class PackedCollator:
    """`data_collator` for a HF Trainer whose dataset is a list of PackedRow.

    Pair it with `remove_unused_columns=False`: the rows are dataclasses, not column dicts.
    """

    pad_token_id: int

    def __call__(self, rows: Sequence[PackedRow]) -> dict[str, torch.Tensor]:
        return collate_packed(rows, self.pad_token_id)
