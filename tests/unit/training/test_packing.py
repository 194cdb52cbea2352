"""Sequence packing: whole examples bin-packed into rows, and a packed sample's loss identical to its
unpacked loss because attention never crosses a sample boundary (sdpa and eager)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

from aistudio.config import TinyArchitecture
from aistudio.modeling.family import IGNORE_INDEX, CausalFamily, Encoded
from aistudio.modeling.prompts import Example
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.packing import PackedCollator, PackedRow, collate_packed, pack_examples, useful_tokens

WORDS = "the river rose slowly through night fields water farmers moved cattle ridge bridge closed".split()


def _encoded(length: int, start: int = 0) -> Encoded:
    ids = list(range(start, start + length))
    return Encoded(ids, [IGNORE_INDEX] * (length // 2) + ids[length // 2 :])


def _samples(row: PackedRow) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of each sample in a row, split where position_ids restart at 0."""
    starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [len(row.input_ids)]
    return [(row.input_ids[a:b], row.labels[a:b]) for a, b in zip(starts, starts[1:], strict=False)]


# --- bin packing ----------------------------------------------------------------------------------


def test_every_token_lands_in_exactly_one_row_and_rows_respect_max_length() -> None:
    rng = random.Random(0)
    examples = [_encoded(rng.randint(1, 60), start=1000 * i) for i in range(200)]
    rows = pack_examples(examples, max_length=64)
    assert all(len(r.input_ids) == len(r.labels) == len(r.position_ids) <= 64 for r in rows)
    packed = Counter(tuple(ids) for r in rows for ids, _ in _samples(r))
    assert packed == Counter(tuple(e.input_ids) for e in examples)
    # Labels survive untouched except the first of each sample, which is never its own target.
    by_ids = {tuple(e.input_ids): e.labels for e in examples}
    for row in rows:
        for ids, labels in _samples(row):
            assert labels == [IGNORE_INDEX, *by_ids[tuple(ids)][1:]]


def test_first_fit_decreasing_fills_rows_when_lengths_fit_exactly() -> None:
    # 4 rows' worth: (7+3), (6+4), (5+5), (8+2); any looser packing would need a fifth row.
    lengths = [3, 7, 5, 4, 6, 2, 8, 5]
    rows = pack_examples([_encoded(n, 100 * i) for i, n in enumerate(lengths)], max_length=10)
    assert [len(r.input_ids) for r in rows] == [10, 10, 10, 10]


def test_packing_is_deterministic_and_breaks_ties_by_original_order() -> None:
    examples = [_encoded(4, start=10 * i) for i in range(6)]
    first = pack_examples(examples, max_length=8)
    assert first == pack_examples(list(examples), max_length=8)
    assert [ids[0] for r in first for ids, _ in _samples(r)] == [0, 10, 20, 30, 40, 50]


def test_an_example_longer_than_max_length_is_truncated_not_split() -> None:
    rows = pack_examples([_encoded(25), _encoded(3, start=500)], max_length=10)
    assert [len(r.input_ids) for r in rows] == [10, 3]
    assert rows[0].input_ids == list(range(10)) and rows[0].position_ids == list(range(10))


def test_mismatched_ids_and_labels_are_rejected_with_the_example_index() -> None:
    with pytest.raises(ValueError, match="example 1"):
        pack_examples([_encoded(3), Encoded([1, 2, 3], [1, 2])], max_length=8)


# --- collation ------------------------------------------------------------------------------------


def test_padding_is_its_own_segment_and_the_batch_has_no_attention_mask() -> None:
    rows = pack_examples([_encoded(6), _encoded(2, 100), _encoded(3, 200)], max_length=8)
    batch = collate_packed(rows, pad_token_id=999)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].shape == (2, 8)
    # Row 1 holds the 3-token sample then 5 pads, whose positions restart at 0.
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 0, 1, 2, 3, 4]
    assert batch["labels"][1, 3:].tolist() == [IGNORE_INDEX] * 5
    assert useful_tokens(batch, pad_token_id=999) == 11
    assert PackedCollator(pad_token_id=999)(rows)["input_ids"].equal(batch["input_ids"])


def test_useful_tokens_reads_a_padded_batch_from_its_attention_mask() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": mask}
    assert useful_tokens(batch) == 7
    with pytest.raises(ValueError, match="pad_token_id"):
        useful_tokens({"input_ids": batch["input_ids"]})


# --- the point of it all: packed loss == unpacked loss --------------------------------------------

Losses = dict[tuple[int, ...], float]  # summed loss per sample, keyed by the sample's input_ids


@dataclass(frozen=True)
class TinySetup:
    tokenizer: PreTrainedTokenizerBase
    examples: list[Encoded]

    def model(self, attn_implementation: str) -> PreTrainedModel:
        # A fresh model per test: tests change its config (attention kernel, use_cache).
        model = CausalFamily().build_tiny(TinyArchitecture(), self.tokenizer, seed=0).eval()
        model.config._attn_implementation = attn_implementation
        return model


@pytest.fixture(scope="module")
def tiny() -> TinySetup:
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(300)]
    family = CausalFamily()
    tokenizer = train_bpe_tokenizer(texts, vocab_size=400, min_frequency=2, special=family.special_tokens)
    examples = []
    for i in range(12):
        example = Example(texts[i], texts[100 + i])
        encoded = family.encode(example, tokenizer, max_length=48, loss_on_output_only=i % 2 == 0)
        assert encoded is not None
        examples.append(encoded)
    assert len({tuple(e.input_ids) for e in examples}) == len(examples), "samples are matched back by content"
    return TinySetup(tokenizer, examples)


def _logits(model: PreTrainedModel, batch: dict[str, torch.Tensor], use_cache: bool = False) -> torch.Tensor:
    # use_cache=False is what the HF Trainer runs with; a KV cache disables packed-sequence detection.
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=use_cache).logits


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss at each *label* position t (scored by logit t-1), 0 where ignored: our own shift."""
    shifted = logits[:, :-1].transpose(1, 2).float()
    losses = F.cross_entropy(shifted, labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none")
    return F.pad(losses, (1, 0))


def _unpacked_losses(model: PreTrainedModel, setup: TinySetup) -> Losses:
    batch = CausalFamily().collate(setup.examples, setup.tokenizer)
    per_row = _token_losses(_logits(model, batch), batch["labels"]).sum(dim=1)
    return {tuple(e.input_ids): float(loss) for e, loss in zip(setup.examples, per_row, strict=False)}


def _unpacked_mean_loss(model: PreTrainedModel, setup: TinySetup) -> float:
    labels = CausalFamily().collate(setup.examples, setup.tokenizer)["labels"]
    targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
    return sum(_unpacked_losses(model, setup).values()) / targets


def _segment_losses(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> Losses:
    """Summed loss of each packed sample, its segments read from the batch's position resets."""
    losses = _token_losses(logits, batch["labels"])
    found: Losses = {}
    for r, positions in enumerate(batch["position_ids"].tolist()):
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for a, b in zip(starts, starts[1:], strict=False):
            found[tuple(batch["input_ids"][r, a:b].tolist())] = float(losses[r, a:b].sum())
    return found


def _largest_gap(got: Losses, expected: Losses) -> float:
    return max(abs(got[ids] - loss) for ids, loss in expected.items())


def _packed_batch(setup: TinySetup) -> dict[str, torch.Tensor]:
    rows = pack_examples(setup.examples, max_length=100)
    # Several samples per row, and padding in some row: both boundaries are exercised.
    assert any(len(_samples(r)) > 1 for r in rows) and any(len(r.input_ids) < 100 for r in rows)
    return collate_packed(rows, setup.tokenizer.pad_token_id)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_a_packed_sample_has_the_same_loss_as_when_trained_alone(
    tiny: TinySetup, attn_implementation: str
) -> None:
    model = tiny.model(attn_implementation)
    batch = _packed_batch(tiny)
    assert _largest_gap(_segment_losses(_logits(model, batch), batch), _unpacked_losses(model, tiny)) < 1e-4


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_the_models_own_shifted_loss_on_packed_rows_is_the_unpacked_mean(
    tiny: TinySetup, attn_implementation: str
) -> None:
    # Guards the boundary label: were a sample's first label kept, the model's internal shift would train
    # the previous sample's last token to predict it, and the mean would change.
    model = tiny.model(attn_implementation)
    with torch.no_grad():
        loss = model(**_packed_batch(tiny), use_cache=False).loss
    assert float(loss) == pytest.approx(_unpacked_mean_loss(model, tiny), abs=1e-5)


def test_the_hf_trainer_computes_the_unpacked_loss_from_packed_rows(tiny: TinySetup, tmp_path: Path) -> None:
    # The Trainer is what makes packing safe in training: it sets model.config.use_cache from its args
    # (False), so the model builds no KV cache and transformers' packed-sequence mask applies.
    model = tiny.model("sdpa")
    rows = pack_examples(tiny.examples, max_length=100)
    collator = PackedCollator(tiny.tokenizer.pad_token_id)
    args = TrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    with torch.no_grad():
        loss = trainer.compute_loss(model, collator(rows))
    assert float(loss) == pytest.approx(_unpacked_mean_loss(model, tiny), abs=1e-5)


def test_naive_concatenation_without_position_resets_leaks_across_samples(tiny: TinySetup) -> None:
    # The same rows with one running position run get a plain causal mask: later samples see earlier
    # ones. Were the losses equal anyway, the equality tests above would prove nothing.
    model = tiny.model("sdpa")
    batch = _packed_batch(tiny)
    naive = dict(batch, position_ids=torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"]))
    assert _largest_gap(_segment_losses(_logits(model, naive), batch), _unpacked_losses(model, tiny)) > 1e-2


def test_a_model_with_a_kv_cache_ignores_the_sample_boundaries(tiny: TinySetup) -> None:
    # Pins the trap the packing module warns about: PhiConfig defaults to use_cache=True, the model then
    # builds a cache even in a training forward, and transformers skips packed-sequence detection.
    model = tiny.model("sdpa")
    assert model.config.use_cache
    batch = _packed_batch(tiny)
    leaked = _segment_losses(_logits(model, batch, use_cache=True), batch)
    assert _largest_gap(leaked, _unpacked_losses(model, tiny)) > 1e-2
