"""Measuring a variant without a quantization backend: ratios, weight bytes, perplexity, latency."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from aistudio.config import TinyArchitecture
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.prompts import example_from_record
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.quantization.measurement import generation_latency, perplexity, relative_to, weight_bytes

WORDS = "the cat sat on a mat and sang to the moon while rain fell softly".split()


# Tiny models gain nothing from a second thread (see single_torch_thread in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_ratios_are_variant_over_fp32_and_perplexity_change_is_relative() -> None:
    reference = {"size_bytes": 1000, "latency_p50_s": 0.2, "perplexity": 10.0}
    variant = {"size_bytes": 300, "latency_p50_s": 0.1, "perplexity": 10.4}
    assert relative_to(variant, reference) == {
        "size_ratio": 0.3,
        "latency_ratio": 0.5,
        "perplexity_change": 0.04,
    }
    assert relative_to(reference, reference) == {
        "size_ratio": 1.0,
        "latency_ratio": 1.0,
        "perplexity_change": 0.0,
    }
    assert relative_to({"size_bytes": 1}, {"size_bytes": 0})["size_ratio"] is None


def test_size_counts_weight_files_only(tmp_path: Path) -> None:
    (tmp_path / "model-00001.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "model-00002.safetensors").write_bytes(b"x" * 50)
    (tmp_path / "tokenizer.json").write_bytes(b"x" * 1000)
    assert weight_bytes(tmp_path) == 150


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request: pytest.FixtureRequest) -> tuple[ModelFamily, object, object]:
    family = family_for(request.param)
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(5, 20))) + f" {i}" for i in range(200)]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512, min_frequency=1, special=family.special_tokens)
    model = family.build_tiny(
        TinyArchitecture(hidden_size=128, intermediate_size=512), tokenizer, seed=0
    ).eval()
    return family, model, tokenizer


def _records(count: int) -> list[dict]:
    rng = random.Random(3)
    # Different lengths, so a per-batch mean would weigh tokens unequally.
    return [
        {"instruction": "Continue.", "output": " ".join(rng.choices(WORDS, k=rng.randint(2, 30)))}
        for _ in range(count)
    ]


def test_perplexity_is_token_weighted_so_batch_size_does_not_change_it(tiny) -> None:
    family, model, tokenizer = tiny
    records = _records(11)
    one_by_one, tokens = perplexity(model, tokenizer, family, records, batch_size=1)
    batched, same_tokens = perplexity(model, tokenizer, family, records, batch_size=4)
    assert tokens == same_tokens > 0
    assert batched == pytest.approx(one_by_one, rel=1e-5)
    # Over one batch it is exp of the model's own mean token loss.
    encoded = [
        family.encode(example_from_record(r), tokenizer, 256, loss_on_output_only=True) for r in records
    ]
    with torch.no_grad():
        loss = model(**family.collate(encoded, tokenizer)).loss
    assert batched == pytest.approx(math.exp(loss.item()), rel=1e-5)


def test_no_scorable_records_gives_no_perplexity_rather_than_a_crash(tiny) -> None:
    family, model, tokenizer = tiny
    assert perplexity(model, tokenizer, family, []) == (None, 0)


def test_latency_generates_exactly_max_new_tokens_per_prompt(tiny) -> None:
    family, model, tokenizer = tiny
    timing = generation_latency(model, tokenizer, family, ["the cat", "rain fell softly"], max_new_tokens=3)
    assert timing["latency_p50_s"] > 0
    # With two prompts the median is their mean, so tokens/s x p50 is the tokens each prompt generated.
    assert timing["tokens_per_second"] * timing["latency_p50_s"] == pytest.approx(3, rel=1e-3)
    assert generation_latency(model, tokenizer, family, [], 3) == {
        "latency_p50_s": None,
        "tokens_per_second": None,
    }
