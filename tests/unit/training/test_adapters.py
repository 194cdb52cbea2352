"""LoRA adapters on tiny random-init models of both families: attach, save, switch, mix, merge, QLoRA."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aistudio.config import LoraConfig, TinyArchitecture
from aistudio.errors import UserError
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.prompts import Example
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.adapters import (
    ADAPTER_FILES,
    AdapterSet,
    attach_lora,
    load_4bit_base,
    lora_target_modules,
    qlora_available,
    save_adapter,
    trainable_parameter_share,
)

pytestmark = pytest.mark.slow

TEXTS = [
    f"{verb} the {noun} number {i} and return {i * 7 % 13}: {'YES' if i % 3 else 'no'}"
    for i, (verb, noun) in enumerate(
        (v, n)
        for v in ("sort", "count", "print", "parse", "merge")
        for n in ("list", "table", "file", "word")
    )
] * 10
TEXTS = [f"{text} after {k} steps" for k, text in enumerate(TEXTS)]  # 200 distinct strings
LORA = LoraConfig(r=4, alpha=8, dropout=0.0)
PROMPTS = ["sort the list number 3", "count the words", "merge the table number 12 and return"]
# Each adapter learns a different answer to the same prompts, so trained adapters must disagree.
TARGETS = {"shout": "YES YES YES YES", "whisper": "no no no no"}


@dataclass
class Trained:
    family: ModelFamily
    tokenizer: PreTrainedTokenizerBase
    base: PreTrainedModel
    adapter_dirs: dict[str, Path]
    share: dict[str, float]
    trained_logits: dict[str, torch.Tensor]
    batch: dict[str, torch.Tensor]


def _batch(family: ModelFamily, tokenizer: PreTrainedTokenizerBase, target: str) -> dict[str, torch.Tensor]:
    encoded = [family.encode(Example(p, target), tokenizer, 64, loss_on_output_only=True) for p in PROMPTS]
    return family.collate([e for e in encoded if e is not None], tokenizer)


def _train(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    device = next(model.parameters()).device  # a 4-bit base sits on the GPU when there is one
    batch = {k: v.to(device) for k, v in batch.items()}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).logits


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    family = family_for(request.param)
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval()
    root = tmp_path_factory.mktemp(f"adapters-{family.name}")
    dirs, logits, share = {}, {}, {}
    eval_batch = _batch(family, tokenizer, "YES no")
    for name, target in TARGETS.items():
        peft_model = attach_lora(copy.deepcopy(base), family, LORA, adapter_name=name)
        share = trainable_parameter_share(peft_model)
        _train(peft_model, _batch(family, tokenizer, target), steps=6)
        dirs[name] = save_adapter(peft_model, root / name, name)
        logits[name] = _logits(peft_model, eval_batch)
    return Trained(family, tokenizer, base, dirs, share, logits, eval_batch)


@pytest.fixture(scope="module")
def adapter_set(trained: Trained) -> AdapterSet:
    return AdapterSet.load(copy.deepcopy(trained.base), trained.family, trained.adapter_dirs)


def _as(adapters: AdapterSet, name: str | None, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    adapters.use(name)
    return adapters.forward(batch).logits


def test_lora_trains_under_a_tenth_of_the_weights_and_saves_exactly_two_files(trained: Trained) -> None:
    assert 0 < trained.share["share"] < 0.10
    assert trained.share["reduction"] == pytest.approx(1 - trained.share["share"])
    assert trained.share["trainable"] < trained.share["total"]
    for directory in trained.adapter_dirs.values():
        assert sorted(p.name for p in directory.iterdir()) == sorted(ADAPTER_FILES)


def test_target_setting_maps_family_by_architecture_and_passes_all_linear_and_lists() -> None:
    assert lora_target_modules("llama", "family") == [
        *("q_proj", "k_proj", "v_proj", "o_proj"),
        *("gate_proj", "up_proj", "down_proj"),
    ]
    assert lora_target_modules("phi", "family") == ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]
    assert {"q", "v", "wi", "wo"} <= set(lora_target_modules("t5", "family"))
    assert lora_target_modules("gpt_neox", "all-linear") == "all-linear"
    assert lora_target_modules("gpt_neox", ["query_key_value"]) == ["query_key_value"]


def test_family_targets_on_an_unknown_architecture_name_the_key_and_the_fix() -> None:
    with pytest.raises(
        UserError, match=r"lora.target_modules 'family' .* 'gpt_neox' \(known: .*llama.*\); list"
    ):
        lora_target_modules("gpt_neox", "family")


def test_family_targets_adapt_every_projection_of_the_tiny_models(trained: Trained) -> None:
    expected = set(lora_target_modules(trained.base.config.model_type, "family"))
    peft_model = attach_lora(copy.deepcopy(trained.base), trained.family, LORA)
    adapted = {name.rsplit(".", 1)[-1] for name, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    present = {name.rsplit(".", 1)[-1] for name, _ in trained.base.named_modules()}
    assert adapted == expected & present and adapted


def test_trained_adapters_differ_from_each_other_and_from_the_base(
    trained: Trained, adapter_set: AdapterSet
) -> None:
    shout, whisper, base = (_as(adapter_set, n, trained.batch) for n in ("shout", "whisper", None))
    assert (shout - whisper).abs().max() > 1e-3
    assert (shout - base).abs().max() > 1e-3
    assert (whisper - base).abs().max() > 1e-3
    assert torch.allclose(base, _logits(trained.base, trained.batch), atol=1e-6)


def test_mixed_adapter_batch_matches_each_adapter_run_alone(
    trained: Trained, adapter_set: AdapterSet
) -> None:
    rows = ["shout", "whisper", "base"]
    mixed = adapter_set.forward(trained.batch, adapter_names=rows).logits
    for i, name in enumerate(rows):
        alone = _as(adapter_set, name, trained.batch)
        assert torch.allclose(mixed[i], alone[i], atol=1e-5), name

    generated = adapter_set.generate(trained.tokenizer, PROMPTS, adapter_names=rows, max_new_tokens=6)
    for i, name in enumerate(rows):
        adapter_set.use(name)
        assert generated[i] == adapter_set.generate(trained.tokenizer, PROMPTS, max_new_tokens=6)[i], name


def test_mixed_batch_still_applies_adapters_after_switching_to_the_base(
    trained: Trained, adapter_set: AdapterSet
) -> None:
    adapter_set.use("base")
    mixed = adapter_set.forward(trained.batch, adapter_names=["shout"] * len(PROMPTS)).logits
    assert adapter_set.active is None
    assert torch.allclose(mixed, _as(adapter_set, "shout", trained.batch), atol=1e-5)


def test_unknown_adapter_names_are_refused(trained: Trained, adapter_set: AdapterSet) -> None:
    with pytest.raises(UserError, match="loaded adapters are shout, whisper"):
        adapter_set.generate(trained.tokenizer, PROMPTS, adapter_names=["shout", "shuot", "base"])
    with pytest.raises(UserError, match="unknown adapter"):
        adapter_set.use("shuot")


def test_merged_copy_matches_the_unmerged_adapter_and_leaves_the_set_intact(
    trained: Trained, adapter_set: AdapterSet
) -> None:
    before = _as(adapter_set, "whisper", trained.batch)
    merged = adapter_set.merged("whisper")
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(_logits(merged, trained.batch), before, atol=1e-4)
    assert adapter_set.names == ("shout", "whisper")
    assert torch.equal(_as(adapter_set, "whisper", trained.batch), before)


def test_saved_adapters_reload_to_the_logits_they_were_trained_to(
    trained: Trained, adapter_set: AdapterSet
) -> None:
    for name, logits in trained.trained_logits.items():
        assert torch.allclose(_as(adapter_set, name, trained.batch), logits, atol=1e-5), name


def test_adapter_from_the_other_family_is_refused(trained: Trained, tmp_path: Path) -> None:
    other = family_for("seq2seq" if trained.family.name == "causal" else "causal")
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=other.special_tokens)
    stranger = attach_lora(other.build_tiny(TinyArchitecture(), tokenizer, seed=0), other, LORA, "stranger")
    directory = save_adapter(stranger, tmp_path / "stranger", "stranger")
    with pytest.raises(UserError, match=f"pair it with a {trained.family.name} base"):
        AdapterSet.load(copy.deepcopy(trained.base), trained.family, {"stranger": directory})


def test_qlora_needs_a_4bit_base(trained: Trained) -> None:
    with pytest.raises(UserError, match="load_4bit_base"):
        attach_lora(copy.deepcopy(trained.base), trained.family, LoraConfig(qlora=True))


def test_qlora_trains_lora_on_a_4bit_base(trained: Trained, tmp_path: Path) -> None:
    available, reason = qlora_available()
    assert reason
    if not available:  # the reason is the finding; it says which part of bitsandbytes failed
        return
    trained.base.save_pretrained(tmp_path, safe_serialization=True)
    base = load_4bit_base(tmp_path, trained.family)
    peft_model = attach_lora(base, trained.family, LoraConfig(r=4, alpha=8, dropout=0.0, qlora=True))
    quantized = {
        n: p.detach().clone() for n, p in peft_model.named_parameters() if type(p).__name__ == "Params4bit"
    }
    assert quantized, "no layer was loaded in 4-bit"

    losses = _train(peft_model, _batch(trained.family, trained.tokenizer, TARGETS["shout"]), steps=3)

    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    after = dict(peft_model.named_parameters())
    assert all(torch.equal(after[n], w) for n, w in quantized.items())
    share = trainable_parameter_share(peft_model)
    assert 0 < share["share"] < 0.15
