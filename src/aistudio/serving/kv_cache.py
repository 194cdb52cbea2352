"""KV caches that let rows of different lengths, admitted at different steps, share one forward pass.

Both caches keep one preallocated tensor per layer, `[slots, kv_heads, capacity, head_dim]`, and
the scheduler keeps the decoding rows in slots 0..R-1, so a decode step reads the cache as a view
(`keys[:R, :, :L]`) and never gathers or concatenates KV. When a row leaves, the last row moves
into its slot (one row's KV, copied once); capacity grows by doubling with the longest row.

- `SlotKVCache` (decoder-only models): every row keeps its own length; token i of a row is written
  at column i of its slot, and the model gets per-row `position_ids` and a 4-D mask. A row's
  prefill writes its prompt straight into its slot, left-padded rows of one prefill batch send
  their padding to a spare trash slot.
- `AlignedKVCache` (encoder-decoder models): T5's relative position bias is computed for the whole
  batch from one query offset, so all rows share the column of their newest token (a row that
  joins later starts further right; the columns before its start are masked). When the columns
  run out, the columns no active row uses any more are dropped from the left.

Why not transformers' own continuous-batching cache (PagedAttentionCache): it packs every request
into one row of one flattened sequence, and PEFT routes adapters per batch row (`adapter_names`),
so a mixed-adapter step cannot run on it. Both classes implement the part of transformers' Cache
interface the llama/phi/t5 attention modules call (`update`, `get_seq_length`); the caller sets
what a forward reads and writes with `plan_*` before each forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_INITIAL_CAPACITY = 64


def _grown(current: int, needed: int, limit: int) -> int:
    capacity = max(current, _INITIAL_CAPACITY)
    while capacity < needed:
        capacity *= 2
    return min(capacity, max(limit, needed))


@dataclass(frozen=True)
class _Plan:
    slots: torch.Tensor  # [B, 1] or [B, T]: the slot each new token writes to
    columns: torch.Tensor  # [B, T] column each new token writes to
    read: tuple[int, int, int] | None  # (first slot, end slot, columns) to attend to; None: the new KV only


class _SlotTensors:
    """The per-layer tensors, allocated on first use with the model's own KV shape and dtype."""

    def __init__(self, slots: int, max_columns: int) -> None:
        self.slots = slots
        self.max_columns = max_columns
        self.capacity = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def ensure(self, columns: int) -> None:
        """Room for `columns` columns in every allocated layer (existing KV is kept)."""
        if columns <= self.capacity:
            return
        capacity = _grown(self.capacity, columns, self.max_columns)
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                new = old.new_zeros(old.shape[0], old.shape[1], capacity, old.shape[3])
                new[:, :, : old.shape[2]] = old
                store[i] = new
        self.capacity = capacity

    def layer(self, index: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        while len(self.keys) <= index:
            # Zeros, not empty: masked columns are multiplied by 0 in attention, and 0 * NaN is NaN.
            shape = (self.slots, like.shape[1], max(self.capacity, _INITIAL_CAPACITY), like.shape[3])
            self.capacity = shape[2]
            self.keys.append(like.new_zeros(shape))
            self.values.append(like.new_zeros(shape))
        return self.keys[index], self.values[index]

    def move(self, source: int, target: int, columns: slice) -> None:
        for store in (self.keys, self.values):
            for tensor in store:
                tensor[target, :, columns] = tensor[source, :, columns]

    def shift_left(self, columns: int, used: int) -> None:
        for store in (self.keys, self.values):
            for tensor in store:
                tensor[:, :, : used - columns] = tensor[:, :, columns:used].clone()

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for store in (self.keys, self.values) for t in store)


class SlotKVCache:
    """Per-row KV for decoder-only models: slot s holds row s's tokens at columns 0..len-1."""

    is_compileable = False  # read by transformers' mask code

    def __init__(self, rows: int, max_columns: int) -> None:
        # One slot more than rows: the trash slot where left padding of a prefill batch is written.
        self.rows = rows
        self.trash_slot = rows
        self._tensors = _SlotTensors(rows + 1, max_columns)
        self._plan: _Plan | None = None

    # --- what the next forward does --------------------------------------------------------------

    def plan_prefill(self, slots: torch.Tensor, columns: torch.Tensor) -> None:
        """A batch of fresh prompts: token t of row b goes to (slots[b, t], columns[b, t]) (padding
        to the trash slot); attention sees the prompts themselves, nothing was cached for them yet."""
        self._tensors.ensure(int(columns.max()) + 1)
        self._plan = _Plan(slots, columns, None)

    def plan_extend(self, slot: int, start: int, length: int) -> None:
        """The next chunk of one row's prompt, columns start..start+length-1, attending to its cache."""
        end = start + length
        self._tensors.ensure(end)
        columns = torch.arange(start, end).view(1, -1)
        self._plan = _Plan(torch.tensor([[slot]]), columns, (slot, slot + 1, end))

    def plan_decode(self, lengths: torch.Tensor) -> None:
        """One new token per row of slots 0..R-1, row r's at column lengths[r]."""
        columns = lengths.view(-1, 1)
        width = int(lengths.max()) + 1
        self._tensors.ensure(width)
        rows = lengths.shape[0]
        self._plan = _Plan(torch.arange(rows).view(-1, 1), columns, (0, rows, width))

    # --- called by the attention modules -----------------------------------------------------------

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *args: object,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self._plan
        assert plan is not None, "plan_* must be called before each forward"
        keys, values = self._tensors.layer(layer_idx, key_states)
        # [B, H, T, D] → [B, T, H, D]: advanced indices (slot, column) around a slice come first.
        keys[plan.slots, :, plan.columns] = key_states.transpose(1, 2).to(keys.dtype)
        values[plan.slots, :, plan.columns] = value_states.transpose(1, 2).to(values.dtype)
        if plan.read is None:
            return key_states, value_states
        first, end, width = plan.read
        return keys[first:end, :, :width], values[first:end, :, :width]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always given explicitly

    # --- bookkeeping ---------------------------------------------------------------------------------

    def move(self, source: int, target: int, length: int) -> None:
        """Row `source`'s first `length` columns into slot `target` (compacting rows to 0..R-1)."""
        if source != target and length > 0:
            self._tensors.move(source, target, slice(0, length))

    @property
    def capacity(self) -> int:
        return self._tensors.capacity

    @property
    def bytes(self) -> int:
        return self._tensors.bytes


class AlignedKVCache:
    """Decoder self-attention KV for encoder-decoder models: every row's newest token in one column."""

    is_compileable = False

    def __init__(self, rows: int, max_columns: int) -> None:
        self.rows = rows
        self._tensors = _SlotTensors(rows, max_columns)
        self.columns = 0  # columns written so far; the next token goes to column `columns`
        self._active = 0

    def plan_decode(self, rows: int) -> None:
        self._tensors.ensure(self.columns + 1)
        self._active = rows

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *args: object,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._tensors.layer(layer_idx, key_states)
        rows, column = self._active, self.columns
        keys[:rows, :, column] = key_states[:, :, 0].to(keys.dtype)
        values[:rows, :, column] = value_states[:, :, 0].to(values.dtype)
        return keys[:rows, :, : column + 1], values[:rows, :, : column + 1]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        # T5 computes its relative position bias from this offset: the same for every row.
        return self.columns

    def advance(self) -> None:
        self.columns += 1

    def free_columns(self, first_used: int) -> int:
        """Drop columns 0..first_used-1 that no row uses any more; returns how many were dropped."""
        if first_used <= 0:
            return 0
        if first_used >= self.columns:
            dropped, self.columns = self.columns, 0
            return dropped
        self._tensors.shift_left(first_used, self.columns)
        self.columns -= first_used
        return first_used

    def move(self, source: int, target: int, first: int) -> None:
        if source != target:
            self._tensors.move(source, target, slice(first, self.columns))

    @property
    def capacity(self) -> int:
        return self._tensors.capacity

    @property
    def bytes(self) -> int:
        return self._tensors.bytes
