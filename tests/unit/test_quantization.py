"""The parts of quantization that need no quantization backend: layout, ratios, perplexity, timing."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from aistudio import layout
from aistudio.config import QuantizationConfig, TinyArchitecture
from aistudio.errors import UserError
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.prompts import example_from_record
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.quantization import (
    REFERENCE,
    VARIANT_NAMES,
    VARIANTS,
    generation_latency,
    merged_dir,
    perplexity,
    plot_rows,
    quantize_variant,
    relative_to,
    variant_dir,
    weight_bytes,
    write_plot,
)

WORDS = "the cat sat on a mat and sang to the moon while rain fell softly".split()


# Tiny models gain nothing from a second thread (see single_torch_thread in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_variants_live_under_models_quantized_and_fp32_is_the_source_model() -> None:
    assert VARIANT_NAMES == ("4bit", "8bit", "dynamic", "int8_weight_only")
    assert variant_dir("phi2", "4bit") == Path("models/quantized/phi2/4bit")
    assert variant_dir("phi2", "dynamic", "code") == Path("models/quantized/phi2/domains/code/dynamic")
    assert variant_dir("phi2", REFERENCE) == layout.base_dir("phi2")
    assert (
        variant_dir("phi2", REFERENCE, "code")
        == merged_dir("phi2", "code")
        == Path("models/quantized/phi2/domains/code/merged")
    )


def test_every_variant_named_in_the_config_has_its_recipe() -> None:
    assert set(VARIANTS) == set(VARIANT_NAMES)
    assert all(VARIANTS[name].name == name and VARIANTS[name].recipes for name in VARIANT_NAMES)


def test_unknown_variant_is_a_user_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"unknown quantized variant '2bit'.*'dynamic', 'int8_weight_only', 'fp32'"
    ):
        variant_dir("phi2", "2bit")
    with pytest.raises(UserError, match="quantization.variants: unknown variant '2bit'"):
        quantize_variant(tmp_path, "2bit", QuantizationConfig(), tmp_path / "out")


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


def test_the_size_vs_perplexity_chart_has_a_point_per_measured_variant_and_fp32_first(tmp_path: Path) -> None:
    results = {
        "phi2": {
            "4bit": {"status": "ok", "size_bytes": 2_000_000, "perplexity_change": 0.031},
            REFERENCE: {"status": "ok", "size_bytes": 8_000_000, "perplexity_change": 0.0},
            "8bit": {"status": "unavailable", "reason": "no kernel"},
            "merged_domains": {"code": {REFERENCE: {"status": "ok"}}},
        }
    }
    assert plot_rows(results) == [
        {"model": "phi2", "variant": REFERENCE, "size_mb": 8.0, "perplexity_change_pct": 0.0},
        {"model": "phi2", "variant": "4bit", "size_mb": 2.0, "perplexity_change_pct": 3.1},
    ]
    unavailable = {"phi2": {"8bit": {"status": "unavailable", "reason": "no kernel"}}}
    (row,) = json.loads(write_plot(unavailable, tmp_path / "q.json").read_text())
    assert row["size_mb"] == "" and "unavailable" in row["note"]
