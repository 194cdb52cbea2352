"""One training entry point for every stage: base models, domain fine-tunes and LoRA adapters.

HF `Trainer` does the loop (accelerate underneath, so the same code runs under
`accelerate launch` for DDP/FSDP/DeepSpeed); this module turns a TrainingConfig into
TrainingArguments, encodes records for the model's family, resumes from the last complete
checkpoint, reports per-step metrics to the active MLflow run and gathers the trained weights
into one full state dict (on rank 0), whatever the launch sharded them across.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from aistudio import tracking
from aistudio.config import TrainingConfig
from aistudio.errors import UserError
from aistudio.features import store as feature_store
from aistudio.modeling.family import Encoded, ModelFamily
from aistudio.modeling.prompts import prompt_format
from aistudio.training.checkpoints import (
    adapter_checkpoint_dir,
    last_complete_checkpoint,
    prepare_checkpoint_dir,
)
from aistudio.training.packing import PackedCollator, pack_examples
from aistudio.training.precision import resolve_precision
from aistudio.training.sharding import (
    ShardedLaunch,
    check_deepspeed_installed,
    check_no_meta_parameters,
    check_strategy_applied,
    check_wrap_classes,
    parameter_count,
    replicated_training,
    sharded_launch,
    share_tied_embedding_modules,
    worth_sharding,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedSplits:
    """A fit's examples read from the feature store, in split order (None: did not fit max_length)."""

    train: Sequence[Encoded | None]
    evaluation: Sequence[Encoded | None]


@dataclass
class TrainJob:
    """Everything one fit needs; `name` identifies it in logs, checkpoints and MLflow.

    With `features`, the fit trains on those token ids and `train_records`/`eval_records` are unused;
    without, it encodes the records itself (a tiny base model, whose tokenizer is born in its stage).
    """

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
    features: EncodedSplits | None = None


@dataclass
class TrainResult:
    global_step: int
    train_loss: float
    eval_loss: float
    eval_perplexity: float
    # The same held-out loss before the first step: what this fit gained is eval_loss - eval_loss_before.
    # None for a sharded fit (see _fit).
    eval_loss_before: float | None
    tokens_per_second: float
    train_examples: int
    skipped_examples: int
    resumed_from: str | None
    history: list[dict[str, float]]
    world_size: int = 1
    sharded: bool = False
    # A sharded run's weights gathered from every rank, on rank 0 (None elsewhere, and when unsharded).
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float | int]:
        return {
            "global_step": self.global_step,
            "train_loss": self.train_loss,
            "eval_loss": self.eval_loss,
            "eval_perplexity": self.eval_perplexity,
            "eval_loss_before": self.eval_loss_before,
            "eval_loss_delta": None
            if self.eval_loss_before is None
            else self.eval_loss - self.eval_loss_before,
            "tokens_per_second": self.tokens_per_second,
            "train_examples": self.train_examples,
            "skipped_examples": self.skipped_examples,
            "world_size": self.world_size,
            "sharded": int(self.sharded),
        }


def check_prompt_fits(
    family: ModelFamily, tokenizer: PreTrainedTokenizerBase, cfg: TrainingConfig, key: str
) -> None:
    """The template alone must leave room for a target; otherwise no example can be trained on."""
    overhead = family.prompt_overhead(tokenizer, prompt_format(tokenizer).instruction("x", "x"))
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
    """The records that fit, encoded as the feature store encodes them, and how many did not."""
    return feature_store.fitting(
        feature_store.encode_records(family, tokenizer, records, cfg.max_length, cfg.loss_on_output_only)
    )


def _examples(job: TrainJob) -> tuple[list[Encoded], int, list[Encoded]]:
    cfg = job.cfg
    if job.features is not None:
        train, skipped = feature_store.fitting(list(job.features.train)[: cfg.max_train_samples])
        evaluation, _ = feature_store.fitting(list(job.features.evaluation)[: cfg.max_eval_samples])
        return train, skipped, evaluation
    train, skipped = encode_records(
        job.family, job.tokenizer, list(job.train_records)[: cfg.max_train_samples], cfg
    )
    evaluation, _ = encode_records(
        job.family, job.tokenizer, list(job.eval_records)[: cfg.max_eval_samples], cfg
    )
    return train, skipped, evaluation


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

            if mlflow.active_run() is not None:  # and the stage's W&B run, when report_to names it
                tracking.log_metrics({k: v for k, v in row.items() if k != "step"}, step=state.global_step)


# A loss curve gets about this many points (every step on short runs), and a long run still logs
# at least every LOGGING_STEPS_CAP steps: the curve shows the trend, MLflow is not flooded.
LOSS_CURVE_POINTS = 20
LOGGING_STEPS_CAP = 50


def logging_interval(max_steps: int) -> int:
    return max(1, min(max_steps // LOSS_CURVE_POINTS, LOGGING_STEPS_CAP))


def training_arguments(
    cfg: TrainingConfig, output_dir: Path, seed: int, key: str, n_params: int = 0
) -> TrainingArguments:
    """`n_params`: the model's size, which `precision: auto` weighs on a CPU (resolve_precision)."""
    precision = resolve_precision(cfg.precision, f"{key}.precision", n_params)
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
        logging_steps=logging_interval(cfg.max_steps),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # MLflow and W&B get our metric rows from the stage's runs (aistudio.tracking), not from HF.
        report_to=[r for r in cfg.report_to if r not in ("mlflow", "wandb")],
        disable_tqdm=False,
        save_only_model=False,
    )


def _plan_sharding(job: TrainJob, launch: ShardedLaunch | None) -> bool:
    """Whether this job trains sharded; every check that can refuse the launch runs before any work."""
    if launch is None:
        return False
    check_deepspeed_installed(launch)
    check_wrap_classes(job.model, launch, job.name)
    if worth_sharding(job.model, launch, job.cfg.fsdp_min_params, job.name, job.config_key):
        if launch.strategy == "fsdp":
            share_tied_embedding_modules(job.model)
        return True
    check_no_meta_parameters(job.model, job.name)
    return False


def run_training(job: TrainJob, log_to_mlflow: bool = True) -> TrainResult:
    """Fit `job.model` in place, resuming from the last complete checkpoint of an identical job.

    Save with the returned `state_dict` when it is not None: under FSDP or ZeRO-3 the model holds
    only this rank's shard of each weight after training, and `state_dict` the gathered whole.
    """
    launch = sharded_launch()
    sharded = _plan_sharding(job, launch)
    with nullcontext() if sharded or launch is None else replicated_training():
        return _fit(job, log_to_mlflow, launch if sharded else None)


def _fit(job: TrainJob, log_to_mlflow: bool, launch: ShardedLaunch | None) -> TrainResult:
    cfg = job.cfg
    if cfg.packing and job.family.name != "causal":
        raise UserError(f"params.yaml: {job.config_key}.packing is for the causal family only")
    check_prompt_fits(job.family, job.tokenizer, cfg, job.config_key)
    train, skipped, evaluation = _examples(job)
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

    if not job.family.loss_uses_num_items:
        # The Trainer reads this flag off the bare model to decide how to scale the loss.
        base = job.model.get_base_model() if isinstance(job.model, PeftModel) else job.model
        base.accepts_loss_kwargs = False
    args = training_arguments(cfg, job.checkpoint_dir, job.seed, job.config_key, parameter_count(job.model))
    # Rank 0 may remove stale checkpoints; no rank looks for one to resume from before it has.
    with args.main_process_first(local=False, desc=f"{job.name}: checkpoint directory"):
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
    if launch is not None:
        check_strategy_applied(launch, trainer.is_fsdp_enabled, trainer.is_deepspeed_enabled)
    trainer.eval_collator = lambda feats: job.family.collate(feats, job.tokenizer)
    resume = last_complete_checkpoint(job.checkpoint_dir)
    if resume is not None:
        log.info("%s: resuming from %s", job.name, resume)
    # Before any step (a resumed fit loads its checkpoint inside train()): the starting point. Not for
    # a sharded fit: FSDP2 wraps model and optimizer together inside train(), and accelerate refuses
    # an evaluate() that would wrap the model alone first.
    eval_loss_before = (
        None if launch is not None else float(trainer.evaluate(metric_key_prefix="before")["before_loss"])
    )
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    eval_loss = float(trainer.evaluate()["eval_loss"])
    if launch is None:
        # Mixed precision wrapped the model's forward in autocast; the caller gets back the model it
        # gave, whose outputs match the saved weights reloaded in fp32.
        trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    # Collective under FSDP/ZeRO-3: every rank takes part, rank 0 receives the full weights.
    # Unsharded, the model itself holds them, and savers use it as before.
    state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped) if launch is not None else None
    seconds = metrics_cb.train_seconds or float(output.metrics.get("train_runtime", 0.0))
    return TrainResult(
        global_step=int(trainer.state.global_step),
        train_loss=float(output.training_loss),
        eval_loss=eval_loss,
        eval_perplexity=math.exp(min(eval_loss, 50.0)),
        eval_loss_before=eval_loss_before,
        tokens_per_second=train_collator.tokens / seconds if seconds else 0.0,
        train_examples=len(train),
        skipped_examples=skipped,
        resumed_from=resume.name if resume else None,
        history=metrics_cb.history,
        world_size=int(args.world_size),
        sharded=launch is not None,
        state_dict=state_dict if args.process_index == 0 else None,
    )


def evaluate_loss(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    records: Sequence[Mapping[str, Any]],
    cfg: TrainingConfig,
    output_dir: Path,
) -> dict[str, float | int]:
    """The held-out loss a fit reports (same encoding, collator and averaging), without training:
    how a pretrained base model is measured, so fine-tunes and adapters compare with it directly."""
    evaluation, _ = encode_records(family, tokenizer, list(records)[: cfg.max_eval_samples], cfg)
    if not evaluation:
        raise UserError(f"no validation example fits max_length ({cfg.max_length})")
    args = training_arguments(cfg, output_dir, seed=0, key="training", n_params=parameter_count(model))
    trainer = _FamilyTrainer(model=model, args=args, eval_dataset=evaluation, processing_class=tokenizer)
    trainer.eval_collator = lambda feats: family.collate(feats, tokenizer)
    loss = float(trainer.evaluate()["eval_loss"])
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0)), "eval_examples": len(evaluation)}


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

    def _load_best_model(self) -> None:
        # PEFT saves a named adapter's checkpoint under checkpoint-N/<adapter>/, where transformers'
        # restore does not look: it only warns "Could not locate the best model" and keeps the last
        # weights. FSDP and DeepSpeed restore through their own sharded checkpoints.
        model = self.model
        if not isinstance(model, PeftModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            super()._load_best_model()
            return
        best = Path(self.state.best_model_checkpoint)
        adapter = model.active_adapter
        folder = adapter_checkpoint_dir(best, adapter)
        if folder is None:
            raise RuntimeError(f"{best}: holds no weights of adapter '{adapter}' to restore as best model")
        log.info("restoring the best adapter '%s' from %s (%s)", adapter, best.name, self.state.best_metric)
        model.load_adapter(str(folder), adapter, is_trainable=True)
        model.set_adapter(adapter)
