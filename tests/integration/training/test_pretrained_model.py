"""The real SmolLM2-135M-Instruct through the training library: measured as a base, adapted by LoRA."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from aistudio import layout
from aistudio.config import LoraConfig, Params, TrainingConfig, load_params
from aistudio.modeling.loading import ModelCard, load_model_dir
from aistudio.modeling.sources import sha256_of
from aistudio.training.adapters import AdapterSet, attach_lora, save_adapter, trainable_parameter_share
from aistudio.training.stages import for_domain, load_split, train_base_model
from aistudio.training.trainer import TrainJob, run_training

pytestmark = pytest.mark.slow
PROCESSED = Path("data/processed")
# r=8 on q,k,v,o (576x576, 576x192 twice, 576x576) and gate,up,down (576x1536 three times), 30 layers.
LORA_R8_TRAINABLE = 30 * 8 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3)


def _small(params: Params, **training: object) -> Params:
    data = params.model_dump()
    data["training"].update({"max_length": 64, "max_eval_samples": 2, "eval_batch_size": 2, **training})
    return Params.model_validate(data)


def test_a_pretrained_base_is_measured_per_domain_and_passed_on_byte_identical(
    workspace: Path, smollm2_dir: Path
) -> None:
    shutil.copytree(smollm2_dir, layout.pretrained_dir("smollm2"))
    params = _small(load_params("params.yaml"))
    metrics = train_base_model(params, "smollm2", PROCESSED, None)
    assert metrics["global_step"] == 0 and metrics["parameters"] == 134_515_008
    assert set(metrics["domains"]) == set(params.data.domains)
    assert all(0 < d["eval_loss"] < 20 and d["eval_examples"] == 2 for d in metrics["domains"].values())
    out = layout.base_dir("smollm2")
    weights = "model.safetensors"
    assert sha256_of(out / weights) == sha256_of(layout.pretrained_dir("smollm2") / weights)
    card = ModelCard.load(out)
    assert (card.stage, card.purpose, card.metrics["domains"]) == ("base", "quality", metrics["domains"])


def test_lora_on_smollm2_adapts_all_seven_projections_and_its_saved_adapter_reloads_identically(
    workspace: Path, smollm2_dir: Path, tmp_path: Path, single_torch_thread: None
) -> None:
    model, tokenizer, _, family = load_model_dir(smollm2_dir, expect_model="smollm2")
    peft_model = attach_lora(model, family, LoraConfig(r=8, alpha=16, dropout=0.0), adapter_name="code")
    projections = {n.rsplit(".", 1)[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert projections == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    share = trainable_parameter_share(peft_model)
    assert share["trainable"] == LORA_R8_TRAINABLE and share["total"] == 134_515_008 + LORA_R8_TRAINABLE
    assert share["share"] == pytest.approx(0.0178, abs=0.0005)  # "99% fewer trainable parameters": 98.2%

    code = [r for r in load_split(PROCESSED, "train") if r["domain"] == "code"]  # the workspace's toy records
    validation = for_domain(load_split(PROCESSED, "validation"), "code")
    cfg = TrainingConfig(
        max_length=64,
        max_steps=2,
        batch_size=2,
        eval_batch_size=2,
        learning_rate=1e-3,
        warmup_steps=0,
        eval_steps=2,
        save_steps=2,
        packing=True,
        max_eval_samples=2,
        report_to=[],
    )
    job = TrainJob(
        "smollm2/lora-code", peft_model, tokenizer, family, code, validation, cfg, tmp_path / "ck", "f", 0
    )
    result = run_training(job, log_to_mlflow=False)
    assert result.global_step == 2 and result.eval_loss_before > 0
    adapter_dir = save_adapter(peft_model, tmp_path / "adapter", "code")

    batch = family.collate(
        [family.encode(example, tokenizer, 64, True) for example in _examples(tokenizer)],
        tokenizer,
    )
    batch.pop("labels")
    peft_model.eval()
    with torch.no_grad():
        trained = peft_model(**batch).logits
    fresh, _, _, _ = load_model_dir(smollm2_dir)
    reloaded = AdapterSet.load(fresh, family, {"code": adapter_dir})
    reloaded.use("code")
    assert torch.allclose(reloaded.forward(batch).logits, trained, atol=1e-4)
    reloaded.use(None)
    assert not torch.allclose(reloaded.forward(batch).logits, trained, atol=1e-4)  # the adapter did learn


def _examples(tokenizer):
    from aistudio.modeling.prompts import prompt_format

    fmt = prompt_format(tokenizer)
    return [fmt.example({"instruction": "Add 2 and 3.", "output": "5"}), fmt.example({"text": "a b c d e f"})]
