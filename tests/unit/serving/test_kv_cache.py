"""The KV caches: rows write at their own columns, reads are views, moves copy one row, capacity grows."""

from __future__ import annotations

import torch

from aistudio.serving.kv_cache import AlignedKVCache, SlotKVCache


def _kv(rows: int, tokens: int, value: float) -> torch.Tensor:
    """[rows, heads=2, tokens, dim=3], row r filled with value + r."""
    return (torch.arange(rows).view(-1, 1, 1, 1) + value).expand(rows, 2, tokens, 3).clone()


def test_a_prefill_writes_each_row_into_its_slot_and_padding_into_the_trash_slot() -> None:
    cache = SlotKVCache(rows=3, max_columns=64)
    slots = torch.tensor([[2, 2, 2], [cache.trash_slot, 0, 0]])  # row 1 is left-padded by one
    columns = torch.tensor([[0, 1, 2], [0, 0, 1]])
    cache.plan_prefill(slots, columns)
    keys, values = cache.update(_kv(2, 3, 10.0), _kv(2, 3, 20.0), layer_idx=0)
    assert keys.shape == (2, 2, 3, 3)  # a fresh prefill attends to its own tokens only
    stored = cache._tensors.keys[0]
    assert torch.all(stored[2, :, :3] == 10.0) and torch.all(stored[0, :, :2] == 11.0)
    assert torch.all(stored[1] == 0)  # untouched slot


def test_a_decode_step_appends_at_each_rows_own_length_and_reads_a_view() -> None:
    cache = SlotKVCache(rows=2, max_columns=64)
    cache.plan_prefill(torch.tensor([[0, 0, 0], [1, 1, 1]]), torch.tensor([[0, 1, 2], [0, 1, 2]]))
    cache.update(_kv(2, 3, 1.0), _kv(2, 3, 1.0), 0)
    cache.plan_decode(torch.tensor([3, 1]))  # row 1 is shorter: its token goes to column 1
    keys, _ = cache.update(_kv(2, 1, 5.0), _kv(2, 1, 5.0), 0)
    assert keys.shape == (2, 2, 4, 3)
    assert keys.untyped_storage().data_ptr() == cache._tensors.keys[0].untyped_storage().data_ptr()  # a view
    assert torch.all(keys[0, :, 3] == 5.0) and torch.all(keys[1, :, 1] == 6.0)
    assert torch.all(keys[0, :, :3] == 1.0)


def test_extending_a_prompt_attends_to_what_is_cached_and_moving_copies_one_row() -> None:
    cache = SlotKVCache(rows=3, max_columns=64)
    cache.plan_extend(slot=2, start=0, length=2)
    cache.update(_kv(1, 2, 7.0), _kv(1, 2, 7.0), 0)
    cache.plan_extend(slot=2, start=2, length=2)
    keys, _ = cache.update(_kv(1, 2, 8.0), _kv(1, 2, 8.0), 0)
    assert keys.shape == (1, 2, 4, 3)
    assert torch.all(keys[0, :, :2] == 7.0) and torch.all(keys[0, :, 2:] == 8.0)
    cache.move(2, 0, length=4)
    assert torch.equal(cache._tensors.keys[0][0, :, :4], cache._tensors.keys[0][2, :, :4])


def test_capacity_doubles_with_the_longest_row_and_keeps_what_was_cached() -> None:
    cache = SlotKVCache(rows=1, max_columns=1024)
    cache.plan_extend(0, 0, 10)
    cache.update(_kv(1, 10, 3.0), _kv(1, 10, 3.0), 0)
    first = cache.capacity
    cache.plan_decode(torch.tensor([first + 5]))
    cache.update(_kv(1, 1, 4.0), _kv(1, 1, 4.0), 0)
    assert cache.capacity >= first + 6 and cache.capacity == 2 * first
    assert torch.all(cache._tensors.keys[0][0, :, :10] == 3.0)
    assert (
        cache.bytes == 2 * 2 * cache.capacity * 2 * 3 * 4
    )  # (rows + trash) x K,V x columns x heads x dim x fp32


def test_the_aligned_cache_shares_one_column_and_drops_columns_no_row_uses() -> None:
    cache = AlignedKVCache(rows=3, max_columns=64)
    for step in range(3):
        cache.plan_decode(rows=2)
        keys, _ = cache.update(_kv(2, 1, float(step)), _kv(2, 1, float(step)), 0)
        assert cache.get_seq_length() == step  # T5's position offset, the same for every row
        cache.advance()
    assert keys.shape == (2, 2, 3, 3)
    assert cache.free_columns(first_used=2) == 2
    assert cache.columns == 1
    assert torch.all(cache._tensors.keys[0][0, :, 0] == 2.0)
    assert cache.free_columns(first_used=cache.columns) == 1 and cache.columns == 0
