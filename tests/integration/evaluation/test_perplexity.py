"""Perplexity and the per-form closures on tiny random-init models of both families."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aistudio.config import EvaluationConfig, LoraConfig, TinyArchitecture
from aistudio.evaluation.behavioural import invariance_check, invariance_prompts, minimum_functionality
from aistudio.evaluation.evaluate import (
    Completions,
    evaluate_form,
    generate_completions,
    make_generate_fn,
    make_nll_fn,
)
from aistudio.evaluation.perplexity import encode_for_nll, mean_nll, perplexity
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.prompts import InstructionFormat
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.adapters import AdapterSet, attach_lora, save_adapter

pytestmark = pytest.mark.slow

WORDS = "the cat sat on a mat and sang to the moon while rain fell softly over old roofs".split()
TEXTS = [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 9)) + f" {i}" for i in range(200)]
# Mixed lengths (instruction records and plain texts), so batches carry real padding.
RECORDS = [
    {
        "domain": "creative",
        "instruction": f"Add {a} and {b}.",
        "output": f"{a} plus {b} is {a + b}.",
        "input": "",
        "text": "",
    }
    for a, b in ((1, 2), (13, 27), (8, 5), (30, 11), (2, 2))
] + [
    {"domain": "creative", "instruction": "", "output": "", "input": "", "text": TEXTS[i * 7]}
    for i in range(4)
]
MAX_LENGTH = 64


@dataclass
class Tiny:
    family: ModelFamily
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request: pytest.FixtureRequest) -> Tiny:
    family = family_for(request.param)
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=family.special_tokens)
    return Tiny(family, tokenizer, family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval())


@pytest.fixture(scope="module")
def adapters(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> AdapterSet:
    """One adapter with non-zero weights (a fresh LoRA is an exact no-op: lora_B starts at zero)."""
    peft_model = attach_lora(
        copy.deepcopy(tiny.model), tiny.family, LoraConfig(r=4, alpha=8, dropout=0.0), "shift"
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    directory = save_adapter(
        peft_model, tmp_path_factory.mktemp(f"adapter-{tiny.family.name}") / "shift", "shift"
    )
    return AdapterSet.load(copy.deepcopy(tiny.model), tiny.family, {"shift": Path(directory)})


def test_nll_of_one_batch_equals_the_models_own_mean_loss(tiny: Tiny) -> None:
    encoded = encode_for_nll(tiny.family, tiny.tokenizer, RECORDS, MAX_LENGTH)
    assert len(encoded) == len(RECORDS)
    with torch.no_grad():
        own_loss = tiny.model(**tiny.family.collate(encoded, tiny.tokenizer)).loss.item()
    nll, n_tokens = mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS, len(RECORDS), MAX_LENGTH)
    assert nll == pytest.approx(own_loss, abs=1e-5)
    assert perplexity(nll) == pytest.approx(math.exp(own_loss), rel=1e-5)
    assert n_tokens > len(RECORDS)


def test_nll_does_not_depend_on_batch_size(tiny: Tiny) -> None:
    one = mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS, 1, MAX_LENGTH)
    four = mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS, 4, MAX_LENGTH)
    assert one[1] == four[1]
    assert one[0] == pytest.approx(four[0], abs=1e-5)


def test_nll_restores_training_mode(tiny: Tiny) -> None:
    tiny.model.train()
    try:
        mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS[:2], 2, MAX_LENGTH)
        assert tiny.model.training
    finally:
        tiny.model.eval()


def test_a_tiny_window_truncates_the_prompt_instead_of_dropping_the_record(tiny: Tiny) -> None:
    # Both families keep the instruction head and the response marker and shorten the middle.
    nll, n_tokens = mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS[:1], 1, 4)
    assert math.isfinite(nll) and 1 <= n_tokens <= 4


def test_nll_closures_measure_the_adapter_they_name(tiny: Tiny, adapters: AdapterSet) -> None:
    with_adapter = make_nll_fn(adapters, tiny.tokenizer, tiny.family, "shift", 4, MAX_LENGTH)
    bare = make_nll_fn(adapters, tiny.tokenizer, tiny.family, None, 4, MAX_LENGTH)
    merged = mean_nll(adapters.merged("shift"), tiny.tokenizer, tiny.family, RECORDS, 4, MAX_LENGTH)
    base = mean_nll(tiny.model, tiny.tokenizer, tiny.family, RECORDS, 4, MAX_LENGTH)
    # Interleaved calls: each closure selects its own adapter.
    assert with_adapter(RECORDS)[0] == pytest.approx(merged[0], abs=1e-4)
    assert bare(RECORDS)[0] == pytest.approx(base[0], abs=1e-5)
    assert with_adapter(RECORDS)[0] == pytest.approx(merged[0], abs=1e-4)
    assert abs(merged[0] - base[0]) > 1e-3


def test_evaluate_form_runs_end_to_end_on_an_adapter(tiny: Tiny, adapters: AdapterSet) -> None:
    cfg = EvaluationConfig(max_samples_per_domain=6, batch_size=4, max_new_tokens=6)
    generate = make_generate_fn(adapters, tiny.tokenizer, tiny.family, "shift", cfg.max_new_tokens)
    nll = make_nll_fn(adapters, tiny.tokenizer, tiny.family, "shift", cfg.batch_size, MAX_LENGTH)
    result = evaluate_form(generate, nll, RECORDS, "creative", cfg, form="lora", fmt=InstructionFormat())
    assert result.n_samples == 6
    m = result.metrics
    assert m["perplexity"] == pytest.approx(math.exp(nll(RECORDS[:6])[0]), rel=1e-5)
    assert 0 < m["mean_new_tokens"] <= cfg.max_new_tokens
    assert {"token_f1", "repetition_rate", "mean_words", "p50_s", "p95_s", "tokens_per_second"} <= set(m)


def test_completions_are_what_the_family_generates_and_count_their_tokens(tiny: Tiny) -> None:
    prompts = ["the cat sat", "Add 13 and 27.", "rain fell softly over old roofs and the moon"]
    ours = generate_completions(tiny.model, tiny.tokenizer, tiny.family, prompts, max_new_tokens=8)
    assert isinstance(ours, Completions)
    assert list(ours) == tiny.family.generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=8)
    assert all(1 <= n <= 8 for n in ours.new_tokens)


def test_behavioural_checks_run_on_a_real_model_and_report(tiny: Tiny) -> None:
    generate = make_generate_fn(tiny.model, tiny.tokenizer, tiny.family, None, max_new_tokens=6)
    prompts = invariance_prompts("code", InstructionFormat())
    invariance = invariance_check(generate, prompts, domain="code")
    functionality = minimum_functionality(generate, "code", InstructionFormat())
    assert invariance["checked"] == len(prompts)
    assert 0.0 <= invariance["invariant_share"] <= 1.0
    assert functionality["error"] is None and functionality["total"] == 3


def test_a_plain_model_cannot_be_asked_for_an_adapter(tiny: Tiny) -> None:
    with pytest.raises(ValueError, match="needs an AdapterSet"):
        make_generate_fn(tiny.model, tiny.tokenizer, tiny.family, "shift", 4)


def test_perplexity_read_from_the_feature_store_equals_encoding_the_records(
    tiny: Tiny, adapters: AdapterSet, tmp_path: Path
) -> None:
    import json

    from aistudio.features.store import FeatureSpec, build_features, open_features
    from aistudio.modeling.loading import ModelCard

    model_dir = tmp_path / "base"
    tiny.tokenizer.save_pretrained(model_dir)
    ModelCard("tiny", tiny.family.name, "base").save(model_dir)
    processed = tmp_path / "processed"
    processed.mkdir()
    for split in ("train", "validation", "test"):
        (processed / f"{split}_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    spec = FeatureSpec("tiny", model_dir, MAX_LENGTH, loss_on_output_only=True)
    build_features(spec, processed, tmp_path / "features")
    store = open_features(spec, tiny.tokenizer, tiny.family.name, processed, tmp_path / "features")
    encoded = store.split("test", "creative")
    for target, adapter in ((tiny.model, None), (adapters, "shift")):
        from_records = make_nll_fn(target, tiny.tokenizer, tiny.family, adapter, 4, MAX_LENGTH)(RECORDS)
        from_store = make_nll_fn(target, tiny.tokenizer, tiny.family, adapter, 4, MAX_LENGTH, encoded)(
            RECORDS
        )
        assert from_store == from_records
    with pytest.raises(ValueError, match="3 record"):
        make_nll_fn(tiny.model, tiny.tokenizer, tiny.family, None, 4, MAX_LENGTH, encoded)(RECORDS[:3])
