"""One training entry point for every stage: base models, domain fine-tunes and LoRA adapters.

HF `Trainer` does the loop (accelerate underneath, so the same code runs under
`accelerate launch` for DDP/FSDP/DeepSpeed); this module turns a TrainingConfig into
TrainingArguments, encodes records for the model's family, resumes from the last complete
checkpoint and reports per-step metrics to the active MLflow run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from aistudio.config import TrainingConfig
from aistudio.errors import UserError
from aistudio.modeling.family import Encoded, ModelFamily
from aistudio.modeling.prompts import example_from_record, render_prompt
from aistudio.training.checkpoints import last_complete_checkpoint, prepare_checkpoint_dir
from aistudio.training.packing import PackedCollator, pack_examples
from aistudio.training.precision import resolve_precision

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    """Everything one fit needs; `name` identifies it in logs, checkpoints and MLflow."""

    name: str
    model: Any
    tokenizer: PreTrainedTokenizerBase
    family: ModelFamily
    train_records: Sequence[Mapping[str, Any]]
    eval_records: Sequence[Mapping[str, Any]]
    cfg: TrainingConfig
    checkpoint_dir: Path
    fingerprint: str
    seed: int
    config_key: str = "training"
    extra_callbacks: list[TrainerCallback] = field(default_factory=list)


@dataclass
class TrainResult:
    global_step: int
    train_loss: float
    eval_loss: float
    eval_perplexity: float
    tokens_per_second: float
    train_examples: int
    skipped_examples: int
    resumed_from: str | None
    history: list[dict[str, float]]
    world_size: int = 1

    def metrics(self) -> dict[str, float | int]:
        return {
            "global_step": self.global_step,
            "train_loss": self.train_loss,
            "eval_loss": self.eval_loss,
            "eval_perplexity": self.eval_perplexity,
            "tokens_per_second": self.tokens_per_second,
            "train_examples": self.train_examples,
            "skipped_examples": self.skipped_examples,
            "world_size": self.world_size,
        }


def check_prompt_fits(
    family: ModelFamily, tokenizer: PreTrainedTokenizerBase, cfg: TrainingConfig, key: str
) -> None:
    """The template alone must leave room for a target; otherwise no example can be trained on."""
    overhead = family.prompt_overhead(tokenizer, render_prompt("x", "x"))
    if cfg.max_length <= overhead:
        raise UserError(
            f"params.yaml: {key}.max_length ({cfg.max_length}) is smaller than the prompt template "
            f"({overhead} tokens); raise it"
        )


def encode_records(
    family: ModelFamily,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping[str, Any]],
    cfg: TrainingConfig,
) -> tuple[list[Encoded], int]:
    encoded, skipped = [], 0
    for record in records:
        item = family.encode(example_from_record(record), tokenizer, cfg.max_length, cfg.loss_on_output_only)
        if item is None:
            skipped += 1
        else:
            encoded.append(item)
    return encoded, skipped


class _CountingCollator:
    """Wraps a collator and counts useful (non-pad) input tokens for tokens/s."""

    def __init__(self, collate: Callable[[list[Any]], dict[str, torch.Tensor]], pad_token_id: int) -> None:
        self.collate = collate
        self.pad_token_id = pad_token_id
        self.tokens = 0

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        if "attention_mask" in batch:
            self.tokens += int(batch["attention_mask"].sum())
        else:  # packed rows carry no padding until collated, so every row token is useful
            self.tokens += sum(len(f.input_ids) for f in features)
        return batch


class _MetricsCallback(TrainerCallback):
    """Per-step loss, eval loss, learning rate and tokens/s into MLflow and the loss history."""

    def __init__(self, counter: _CountingCollator, log_to_mlflow: bool) -> None:
        self.counter = counter
        self.log_to_mlflow = log_to_mlflow
        self.history: list[dict[str, float]] = []
        self._last = (time.perf_counter(), 0)
        self.train_seconds = 0.0

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        row = {k: float(v) for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        now, tokens = time.perf_counter(), self.counter.tokens
        if "loss" in row:
            elapsed = now - self._last[0]
            row["tokens_per_second"] = (tokens - self._last[1]) / elapsed if elapsed > 0 else 0.0
            self.train_seconds += elapsed
            self._last = (now, tokens)
        row["step"] = float(state.global_step)
        self.history.append(row)
        if self.log_to_mlflow:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "step"}, step=state.global_step)


def training_arguments(cfg: TrainingConfig, output_dir: Path, seed: int, key: str) -> TrainingArguments:
    precision = resolve_precision(cfg.precision, f"{key}.precision")
    best = cfg.early_stopping_patience > 0
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=best,
        metric_for_best_model="eval_loss" if best else None,
        greater_is_better=False if best else None,
        logging_steps=max(1, min(cfg.eval_steps, 10)),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        report_to=[r for r in cfg.report_to if r != "mlflow"],
        disable_tqdm=False,
        save_only_model=False,
    )


def run_training(job: TrainJob, log_to_mlflow: bool = True) -> TrainResult:
    """Fit `job.model` in place, resuming from the last complete checkpoint of an identical job."""
    cfg = job.cfg
    if cfg.packing and job.family.name != "causal":
        raise UserError(f"params.yaml: {job.config_key}.packing is for the causal family only")
    check_prompt_fits(job.family, job.tokenizer, cfg, job.config_key)
    train_records = list(job.train_records)[: cfg.max_train_samples]
    train, skipped = encode_records(job.family, job.tokenizer, train_records, cfg)
    evaluation, _ = encode_records(
        job.family, job.tokenizer, list(job.eval_records)[: cfg.max_eval_samples], cfg
    )
    if not train:
        raise UserError(
            f"{job.name}: no training example fits {job.config_key}.max_length ({cfg.max_length})"
        )
    if not evaluation:
        raise UserError(f"{job.name}: the validation split has no usable example")

    pad = job.tokenizer.pad_token_id
    if cfg.packing:
        train_dataset: list[Any] = pack_examples(train, cfg.max_length)
        train_collator = _CountingCollator(PackedCollator(pad), pad)
    else:
        train_dataset = train
        train_collator = _CountingCollator(lambda feats: job.family.collate(feats, job.tokenizer), pad)

    args = training_arguments(cfg, job.checkpoint_dir, job.seed, job.config_key)
    if args.process_index == 0:
        prepare_checkpoint_dir(job.checkpoint_dir, job.name, job.fingerprint)
    metrics_cb = _MetricsCallback(train_collator, log_to_mlflow)
    callbacks: list[TrainerCallback] = [metrics_cb, *job.extra_callbacks]
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = _FamilyTrainer(
        model=job.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=evaluation,
        data_collator=train_collator,
        processing_class=job.tokenizer,
        callbacks=callbacks,
    )
    trainer.eval_collator = lambda feats: job.family.collate(feats, job.tokenizer)
    resume = last_complete_checkpoint(job.checkpoint_dir)
    if resume is not None:
        log.info("%s: resuming from %s", job.name, resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    eval_loss = float(trainer.evaluate()["eval_loss"])
    seconds = metrics_cb.train_seconds or float(output.metrics.get("train_runtime", 0.0))
    return TrainResult(
        global_step=int(trainer.state.global_step),
        train_loss=float(output.training_loss),
        eval_loss=eval_loss,
        eval_perplexity=math.exp(min(eval_loss, 50.0)),
        tokens_per_second=train_collator.tokens / seconds if seconds else 0.0,
        train_examples=len(train),
        skipped_examples=skipped,
        resumed_from=resume.name if resume else None,
        history=metrics_cb.history,
        world_size=int(args.world_size),
    )


class _FamilyTrainer(Trainer):
    """Evaluation always uses the family's unpacked collator, so eval loss is comparable across runs."""

    eval_collator: Callable[[list[Any]], dict[str, torch.Tensor]]

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        train_collator = self.data_collator
        self.data_collator = self.eval_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator
