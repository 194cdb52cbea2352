"""The three training stages as library functions: base models, domain fine-tunes, LoRA adapters.

Scripts call these; tests call them directly. Each returns the metrics it reports and writes
its model directory, loss curve and MLflow run — from rank 0 only under a distributed launch,
where every rank trains and only the first one writes.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from aistudio import layout, tracking
from aistudio.config import MlflowConfig, Params, TrainingConfig
from aistudio.errors import UserError
from aistudio.features.store import FeatureSpec, FeatureStore, feature_spec, open_features
from aistudio.io import read_jsonl, write_json
from aistudio.layout import split_path
from aistudio.modeling.family import family_for
from aistudio.modeling.loading import (
    MODEL_CARD,
    ModelCard,
    build_tiny_model,
    build_tokenizer,
    load_model_dir,
    save_model_dir,
)
from aistudio.modeling.prompts import example_from_record
from aistudio.plots import data as plot_data
from aistudio.training.adapters import (
    attach_lora,
    qlora_load_kwargs,
    save_adapter,
    trainable_parameter_share,
)
from aistudio.training.distributed import is_main_process, launched_world_size
from aistudio.training.hpo import tune_hyperparameters
from aistudio.training.sharding import sharded_launch
from aistudio.training.trainer import EncodedSplits, TrainJob, TrainResult, evaluate_loss, run_training

log = logging.getLogger(__name__)
SKIPPED_MARKER = "SKIPPED.json"


def load_split(processed_dir: Path, split: str) -> list[dict[str, Any]]:
    path = split_path(processed_dir, split)
    if not path.exists():
        raise UserError(f"{path}: missing; run `dvc repro prepare_data` first")
    return read_jsonl(path)


def for_domain(records: Sequence[Mapping[str, Any]], domain: str) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("domain") == domain]


def base_features(model_name: str, cfg: TrainingConfig, processed_dir: Path) -> FeatureStore:
    """The feature store of the base model's tokenizer at this stage's settings; refused (UserError
    naming both fingerprints) when it was built for another tokenizer, format, length or data."""
    from transformers import AutoTokenizer

    base = layout.base_dir(model_name)
    if not base.is_dir():
        raise UserError(f"{base}: model directory not found; run `dvc repro train_base_models`")
    family = ModelCard.load(base).family
    tokenizer = AutoTokenizer.from_pretrained(base)
    return open_features(feature_spec(model_name, cfg), tokenizer, family, processed_dir)


def tokenizer_corpus(records: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    for record in records:
        example = example_from_record(record)
        yield example.prompt
        yield example.target


# Trainer log key → loss-curve column.
_LOSS_CURVE_SOURCES = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate"}


def write_loss_curve(
    path: Path, history: Sequence[Mapping[str, float]], run: str, note: str | None = None
) -> None:
    """One row per logged step (train_loss, eval_loss, learning_rate) for `dvc plots show`.

    HF Trainer logs the step's loss as `loss`; its end-of-training summary (`train_loss`, the mean
    over the run) is not a step and is left out. A run that logged no step gets a note row instead.
    """
    by_step: dict[int, dict[str, float]] = {}
    for row in history:
        merged = by_step.setdefault(int(row["step"]), {})
        for source, column in _LOSS_CURVE_SOURCES.items():
            if source in row:
                merged[column] = row[source]
    rows = [{"step": step, **by_step[step]} for step in sorted(by_step) if by_step[step]]
    note = note or f"{run}: no training step was logged (nothing trained, or max_steps 0)"
    plot_data.write_csv(path, rows, plot_data.LOSS_CURVE_COLUMNS, note)


def _run(
    mlflow_cfg: MlflowConfig | None,
    stage: str,
    section: Mapping[str, Any],
    inputs: Sequence[Path],
    name: str,
    cfg: TrainingConfig,
):
    if mlflow_cfg is None or not is_main_process():
        return nullcontext()
    return tracking.stage_run(mlflow_cfg, stage, section, inputs, run_name=name, report_to=cfg.report_to)


def _log_result(mlflow_cfg: MlflowConfig | None, result: TrainResult, model_dir: Path | None) -> None:
    if mlflow_cfg is None or not is_main_process():
        return
    import mlflow

    tracking.log_metrics({f"final_{k}": v for k, v in result.metrics().items()})
    if model_dir is not None:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")


def validation_losses(
    model: Any,
    tokenizer: Any,
    family: Any,
    validation: Sequence[Mapping[str, Any]],
    domains: Sequence[str],
    cfg: TrainingConfig,
    scratch: Path,
) -> dict[str, dict[str, float | int]]:
    """Held-out loss and perplexity per domain, measured as each fine-tune and adapter measures its own."""
    return {
        domain: evaluate_loss(model, tokenizer, family, for_domain(validation, domain), cfg, scratch)
        for domain in domains
        if for_domain(validation, domain)
    }


def domain_mean(domains: Mapping[str, Mapping[str, float | int]]) -> dict[str, float]:
    """The unweighted mean over domains: each domain counts once, whatever its share of the split."""
    loss = sum(d["eval_loss"] for d in domains.values()) / len(domains)
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0))}


def train_base_model(
    params: Params,
    model_name: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path | None = None,
    pretrained: Path | None = None,
) -> dict[str, Any]:
    """A tiny model is trained from scratch; a pretrained one (imported to `pretrained`, default
    layout.pretrained_dir) is measured and passed on unchanged. Saved to `out` (default:
    layout.base_dir)."""
    out = out or layout.base_dir(model_name)
    if params.models[model_name].init == "pretrained":
        source = pretrained or layout.pretrained_dir(model_name)
        return record_pretrained_base(params, model_name, processed_dir, mlflow_cfg, out, source)
    return _train_tiny_base(params, model_name, processed_dir, mlflow_cfg, out)


def record_pretrained_base(
    params: Params,
    model_name: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path | None = None,
    source: Path | None = None,
) -> dict[str, Any]:
    """The imported model as the base: per-domain validation loss recorded, weights copied as they are.

    Re-pretraining a 135M instruct model on a few thousand records would only make it worse; what
    downstream needs is its starting point, measured the way every fine-tune measures its gain.
    """
    model_cfg = params.models[model_name]
    source = source or layout.pretrained_dir(model_name)
    if not source.is_dir():
        raise UserError(f"{source}: model '{model_name}' is not imported; run `dvc repro import_base_models`")
    model, tokenizer, _, family = load_model_dir(source, expect_model=model_name)
    cfg = params.base_training(model_name)
    validation = load_split(processed_dir, "validation")
    section = {"model": model_cfg.model_dump(), "training": cfg.model_dump()}
    inputs = [source / "model.safetensors", split_path(processed_dir, "validation")]
    out = out or layout.base_dir(model_name)
    with _run(mlflow_cfg, "train_base_models", section, inputs, f"train_base-{model_name}", cfg):
        scratch = layout.checkpoint_dir("base", model_name)
        domains = validation_losses(model, tokenizer, family, validation, params.data.domains, cfg, scratch)
        if not domains:
            raise UserError(f"{inputs[1]}: no record of data.domains {params.data.domains} to measure on")
        metrics = {
            **domain_mean(domains),
            "init": "pretrained",
            "parameters": sum(p.numel() for p in model.parameters()),
            "global_step": 0,
            "domains": domains,
        }
        if is_main_process():
            _copy_model_files(source, out)
            ModelCard(model_name, family.name, "base", metrics=metrics, purpose=model_cfg.purpose).save(out)
            if mlflow_cfg is not None:
                tracking.log_metrics({k: v for k, v in metrics.items() if k != "init"})
    return metrics


def _copy_model_files(source: Path, out: Path) -> None:
    # Byte-identical copies: DVC stores one object for both directories' weights.
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name != MODEL_CARD:
            shutil.copyfile(path, out / path.name)


def _train_tiny_base(
    params: Params, model_name: str, processed_dir: Path, mlflow_cfg: MlflowConfig | None, out: Path
) -> dict[str, Any]:
    """Tokenizer (trained on the train split unless one is given), tiny model, fit, save.

    The one fit that encodes records itself: its tokenizer is born here, so no feature store (built
    after this stage, from the saved tokenizer) can exist for it yet.
    """
    model_cfg = params.models[model_name]
    family = family_for(model_cfg.family)
    train, validation = load_split(processed_dir, "train"), load_split(processed_dir, "validation")
    tokenizer = build_tokenizer(model_name, model_cfg, params.tokenizer, tokenizer_corpus(train))
    cfg = params.base_training(model_name)
    key = "training"
    section = {
        "model": model_cfg.model_dump(),
        "training": cfg.model_dump(),
        "tokenizer": params.tokenizer.model_dump(),
    }
    inputs = [split_path(processed_dir, "train"), split_path(processed_dir, "validation")]
    fingerprint = tracking.params_hash({**section, "seed": params.seed, "data": tracking.inputs_md5(inputs)})

    def build() -> Any:
        return build_tiny_model(model_cfg, tokenizer, params.seed)

    if params.hpo.n_trials and launched_world_size() > 1:
        # Each rank would ask the study for its own trial and train a different config in lockstep.
        raise UserError(
            f"params.yaml: hpo.n_trials is {params.hpo.n_trials} under a {launched_world_size()}-process "
            "launch: run the search in one process (python scripts/train_base_models.py), then launch with "
            "hpo.n_trials: 0 and the best values in training"
        )
    with _run(mlflow_cfg, "train_base_models", section, inputs, f"train_base-{model_name}", cfg):
        if params.hpo.n_trials:
            cfg = tune_hyperparameters(
                params.hpo,
                cfg,
                lambda trial_cfg, out: run_training(
                    TrainJob(
                        f"{model_name}-hpo",
                        build(),
                        tokenizer,
                        family,
                        train,
                        validation,
                        trial_cfg,
                        out,
                        fingerprint,
                        params.seed,
                        key,
                    ),
                    log_to_mlflow=False,
                ),
                study_name=f"{model_name}-{fingerprint}",
            )
        model = build()
        job = TrainJob(
            model_name,
            model,
            tokenizer,
            family,
            train,
            validation,
            cfg,
            layout.checkpoint_dir("base", model_name),
            fingerprint,
            params.seed,
            key,
        )
        result = run_training(job, log_to_mlflow=mlflow_cfg is not None)
        # Under an FSDP/ZeRO launch the model holds only this rank's shards after training (or was kept
        # replicated beside sharded ones), and accelerate will not wrap a model without its optimizer
        # for another evaluate(): the per-domain split is measured on unsharded launches only.
        domains = (
            {}
            if sharded_launch() is not None
            else validation_losses(
                model, tokenizer, family, validation, params.data.domains, cfg, job.checkpoint_dir
            )
        )
        metrics = {**result.metrics(), "init": "tiny", "domains": domains}
        if is_main_process():
            card = ModelCard(model_name, family.name, "base", metrics=metrics, purpose=model_cfg.purpose)
            save_model_dir(out, model, tokenizer, card, state_dict=result.state_dict)
            write_loss_curve(layout.loss_plot("train_base", model_name), result.history, model_name)
            _log_result(mlflow_cfg, result, out)
    return {**metrics, "resumed_from": result.resumed_from, "learning_rate": cfg.learning_rate}


def finetune_domain_model(
    params: Params,
    model_name: str,
    domain: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Continue training the base checkpoint on one domain's records only; save to `out`
    (default: layout.domain_dir)."""
    if domain not in params.data.domains:
        raise UserError(f"--domain '{domain}' is not one of data.domains {params.data.domains}")
    cfg = params.finetune_training(model_name, domain)
    features = base_features(model_name, cfg, processed_dir)
    train, validation = features.split("train", domain), features.split("validation", domain)
    out = out or layout.domain_dir(model_name, domain)
    if not train or not validation:
        which = "train" if not train else "validation"
        reason = f"the {which} split has no '{domain}' records"
        if not params.finetune.skip_empty_domains:
            raise UserError(
                f"{split_path(processed_dir, which)}: {reason} (set finetune.skip_empty_domains to skip)"
            )
        log.warning("skipping %s/%s: %s", model_name, domain, reason)
        if is_main_process():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / SKIPPED_MARKER, {"reason": reason})
            run = f"{model_name}/{domain}"
            write_loss_curve(
                layout.loss_plot("finetune", f"{model_name}-{domain}"), [], run, f"{run}: skipped, {reason}"
            )
        return {"skipped": 1, "reason": reason}
    model, tokenizer, card, family = load_model_dir(layout.base_dir(model_name), expect_model=model_name)
    section = {
        "model": model_name,
        "domain": domain,
        "training": cfg.model_dump(),
        "feature_fingerprint": features.fingerprint,
    }
    inputs = [layout.base_dir(model_name) / "model.safetensors", split_path(processed_dir, "train")]
    fingerprint = tracking.params_hash({**section, "seed": params.seed, "data": tracking.inputs_md5(inputs)})
    key = f"finetune.domains.{domain}"
    with _run(mlflow_cfg, "finetune_domain_models", section, inputs, f"finetune-{model_name}-{domain}", cfg):
        job = TrainJob(
            f"{model_name}/{domain}",
            model,
            tokenizer,
            family,
            [],
            [],
            cfg,
            layout.checkpoint_dir("domain", model_name, domain),
            fingerprint,
            params.seed,
            key,
            features=EncodedSplits(train, validation),
        )
        result = run_training(job, log_to_mlflow=mlflow_cfg is not None)
        if is_main_process():
            save_model_dir(
                out,
                model,
                tokenizer,
                ModelCard(model_name, family.name, "domain", domain, result.metrics(), purpose=card.purpose),
                state_dict=result.state_dict,
            )
            curve = layout.loss_plot("finetune", f"{model_name}-{domain}")
            write_loss_curve(curve, result.history, f"{model_name}/{domain}")
            _log_result(mlflow_cfg, result, out)
    return {**result.metrics(), "skipped": 0}


def train_lora_adapters(
    params: Params,
    model_name: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """One LoRA adapter per domain on top of the (optionally 4-bit) base model; adapters only are
    saved, each to `out`/<domain> (default: layout.lora_dir)."""
    adapters_root = out or layout.lora_dir(model_name)
    lora = params.lora
    if lora.qlora:
        qlora_load_kwargs()  # fails before any training when 4-bit is unavailable here
    base = layout.base_dir(model_name)
    results: dict[str, Any] = {}
    # Opened once per encoding: a domain's override rarely changes max_length or masking, and
    # opening re-hashes the processed splits.
    stores: dict[FeatureSpec, FeatureStore] = {}
    for domain in params.data.domains:
        cfg: TrainingConfig = params.lora_training(model_name, domain)
        spec = feature_spec(model_name, cfg)
        if spec not in stores:
            stores[spec] = base_features(model_name, cfg, processed_dir)
        features = stores[spec]
        train, validation = features.split("train", domain), features.split("validation", domain)
        if not train or not validation:
            if not params.finetune.skip_empty_domains:
                raise UserError(
                    f"{split_path(processed_dir, 'train')}: no '{domain}' records for its LoRA adapter"
                )
            results[domain] = {"skipped": 1}
            if is_main_process():
                run = f"{model_name}/lora-{domain}"
                reason = f"{run}: skipped, the train or validation split has no '{domain}' records"
                write_loss_curve(layout.loss_plot(f"lora/{model_name}", domain), [], run, reason)
            continue
        load_kwargs = qlora_load_kwargs() if lora.qlora else {}
        model, tokenizer, card, family = load_model_dir(base, expect_model=model_name, **load_kwargs)
        peft_model = attach_lora(model, family, lora, adapter_name=domain)
        share = trainable_parameter_share(peft_model)
        section = {
            "model": model_name,
            "domain": domain,
            "lora": lora.model_dump(),
            "training": cfg.model_dump(),
            "feature_fingerprint": features.fingerprint,
        }
        inputs = [base / "model.safetensors", split_path(processed_dir, "train")]
        fingerprint = tracking.params_hash(
            {**section, "seed": params.seed, "data": tracking.inputs_md5(inputs)}
        )
        with _run(mlflow_cfg, "train_lora_adapters", section, inputs, f"lora-{model_name}-{domain}", cfg):
            job = TrainJob(
                f"{model_name}/lora-{domain}",
                peft_model,
                tokenizer,
                family,
                [],
                [],
                cfg,
                layout.checkpoint_dir("lora", model_name, domain),
                fingerprint,
                params.seed,
                f"lora.domains.{domain}" if domain in lora.domains else "lora.training",
                features=EncodedSplits(train, validation),
            )
            result = run_training(job, log_to_mlflow=mlflow_cfg is not None)
            out = adapters_root / domain
            if is_main_process():
                save_adapter(peft_model, out, domain, state_dict=result.state_dict)
                curve = layout.loss_plot(f"lora/{model_name}", domain)
                write_loss_curve(curve, result.history, f"{model_name}/lora-{domain}")
            if mlflow_cfg is not None and is_main_process():
                tracking.log_metrics({**{f"final_{k}": v for k, v in result.metrics().items()}, **share})
                import mlflow

                mlflow.log_artifacts(str(out), artifact_path="adapter")
        results[domain] = {**result.metrics(), **share, "skipped": 0}
    return results
