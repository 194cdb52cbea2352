"""LoRA runs checkpoint a named adapter in checkpoint-N/<name>/: restore and resume must find it there."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aistudio.config import LoraConfig, TinyArchitecture, TrainingConfig
from aistudio.modeling.family import family_for
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.adapters import attach_lora, save_adapter
from aistudio.training.trainer import TrainJob, run_training

pytestmark = pytest.mark.slow
ADAPTER = "code"  # a domain name, as the LoRA stage uses: PEFT saves it in a sub-folder


def _records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        rows.append(
            {
                "id": f"r{i}",
                "domain": "code",
                "instruction": f"Add {a} and {b}.",
                "input": "",
                "output": f"{a} plus {b} is {a + b}.",
                "text": "",
            }
        )
    return rows


def _contradicting(records: list[dict]) -> list[dict]:
    """The same prompts answered otherwise: the better a fit learns train answers, the worse these score."""
    return [{**r, "output": "Sorry, that sum is not mine to work out today."} for r in records]


def _job(checkpoints: Path, validation: list[dict] | None = None, **training) -> TrainJob:
    family = family_for("causal")
    train = _records(64, 0)
    validation = _records(16, 1) if validation is None else validation
    texts = [f"{r['instruction']} {r['output']}" for r in train]
    tokenizer = train_bpe_tokenizer(texts, 400, 1, family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0)
    model = attach_lora(base, family, LoraConfig(r=4, alpha=8, dropout=0.0), adapter_name=ADAPTER)
    settings = {
        "max_length": 64,
        "batch_size": 8,
        "warmup_steps": 0,
        "lr_scheduler": "constant",
        "eval_steps": 2,
        "save_steps": 2,
        "save_total_limit": 10,
        "packing": False,
        "max_eval_samples": 16,
        "report_to": [],
        **training,
    }
    cfg = TrainingConfig(**settings)
    return TrainJob(
        "tiny/lora-code",
        model,
        tokenizer,
        family,
        train,
        validation,
        cfg,
        checkpoints,
        "fp",
        0,
        "lora.training",
    )


def _adapter_weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "adapter_model.safetensors")


def test_early_stopping_saves_the_best_adapter_not_the_last(tmp_path: Path, single_torch_thread) -> None:
    # Validation answers contradict the train answers, so eval loss rises once the fit learns them
    # and best != last. (A learning rate far too high did this on one CPU and not on another.)
    validation = _contradicting(_records(16, 1))
    job = _job(
        tmp_path / "checkpoints", validation, max_steps=40, learning_rate=1.0, early_stopping_patience=2
    )
    result = run_training(job, log_to_mlflow=False)
    checkpoints = sorted(job.checkpoint_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    best, last = Path(state["best_model_checkpoint"]), checkpoints[-1]
    assert best != last, "the run must overfit for this test to mean anything"

    out = save_adapter(job.model, tmp_path / "adapter", ADAPTER, state_dict=result.state_dict)
    saved, at_best, at_last = (_adapter_weights(d) for d in (out, best / ADAPTER, last / ADAPTER))
    assert saved.keys() == at_best.keys()
    assert all(torch.equal(saved[k], at_best[k]) for k in saved)
    assert not all(torch.equal(saved[k], at_last[k]) for k in saved)
    evals = {r["step"]: r["eval_loss"] for r in state["log_history"] if "eval_loss" in r}
    assert result.eval_loss == pytest.approx(evals[int(best.name.split("-")[1])], rel=1e-4)


def test_a_longer_run_resumes_from_the_named_adapter_checkpoint(tmp_path: Path, single_torch_thread) -> None:
    first = run_training(_job(tmp_path / "checkpoints", max_steps=4), log_to_mlflow=False)
    assert (tmp_path / f"checkpoints/checkpoint-4/{ADAPTER}/adapter_model.safetensors").is_file()
    second = run_training(_job(tmp_path / "checkpoints", max_steps=6), log_to_mlflow=False)
    assert (first.resumed_from, second.resumed_from, second.global_step) == (None, "checkpoint-4", 6)
