"""The quantize_models stage: every variant of each base model (and, with
quantization.merged_domains, of each merged domain model), measured against its fp32 source,
LoRA compatibility included, logged to MLflow and written to metrics/quantization.json."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from aistudio import layout, tracking
from aistudio.config import MlflowConfig, Params, QuantizationConfig
from aistudio.errors import UserError
from aistudio.io import read_jsonl, write_json
from aistudio.layout import merged_dir, split_path
from aistudio.modeling.loading import ModelCard, load_model_dir, save_model_dir
from aistudio.quantization.lora import lora_compatibility, probe_adapter, trained_adapters
from aistudio.quantization.measurement import latency_prompts, measure_variant
from aistudio.quantization.quantize import load_variant, quantize_variant
from aistudio.quantization.variants import REFERENCE, VARIANT_FILE, read_variant_info, variant_dir
from aistudio.training.adapters import AdapterSet

log = logging.getLogger(__name__)

STAGE = "quantize_models"


def merge_domain_model(model_name: str, domain: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold one domain adapter into the fp32 base and save it as a standalone model directory."""
    model, tokenizer, base, family = load_model_dir(layout.base_dir(model_name), expect_model=model_name)
    merged = AdapterSet.load(model, family, {domain: adapter_dir}).merged(domain)
    metrics = {"adapter": str(adapter_dir)}
    card = ModelCard(model_name, family.name, "merged", domain, metrics, purpose=base.purpose)
    save_model_dir(out_dir, merged, tokenizer, card)
    return out_dir


@dataclass
class MeasureInputs:
    prompts: list[str]
    records: list[dict[str, Any]]
    max_length: int
    adapters: dict[str, Path] = field(default_factory=dict)


def quantize_and_measure(
    source_dir: Path,
    out_dir_of: Callable[[str], Path],
    cfg: QuantizationConfig,
    inputs: MeasureInputs,
) -> dict[str, dict[str, Any]]:
    """{fp32: reference, <variant>: status + metrics + LoRA compatibility} for one source model."""
    start = time.perf_counter()
    model, tokenizer, _, family = load_variant(source_dir)
    load_seconds = time.perf_counter() - start
    reference = measure_variant(
        model,
        tokenizer,
        family,
        inputs.prompts,
        inputs.records,
        cfg,
        model_dir=source_dir,
        load_seconds=load_seconds,
        max_length=inputs.max_length,
    )
    del model
    results: dict[str, dict[str, Any]] = {
        REFERENCE: {"status": "ok", "method": "unquantized fp32", "directory": str(source_dir), **reference}
    }
    if inputs.adapters:
        compatible, reason = lora_compatibility(source_dir, inputs.adapters)
        results[REFERENCE].update({"lora_compatible": compatible, "lora_reason": reason})
    for variant in cfg.variants:
        outcome = quantize_variant(source_dir, variant, cfg, out_dir_of(variant))
        entry = outcome.to_json()
        entry.pop("variant")
        if outcome.ok:
            start = time.perf_counter()
            model, tokenizer, _, family = load_variant(outcome.directory)
            load_seconds = time.perf_counter() - start
            entry.update(
                measure_variant(
                    model,
                    tokenizer,
                    family,
                    inputs.prompts,
                    inputs.records,
                    cfg,
                    model_dir=outcome.directory,
                    load_seconds=load_seconds,
                    reference=reference,
                    max_length=inputs.max_length,
                )
            )
            del model
            if inputs.adapters:
                compatible, reason = lora_compatibility(outcome.directory, inputs.adapters)
                entry.update({"lora_compatible": compatible, "lora_reason": reason})
                info = read_variant_info(outcome.directory) or {}
                write_json(
                    outcome.directory / VARIANT_FILE,
                    {**info, "lora_compatible": compatible, "lora_reason": reason},
                )
        log.info(
            "%s %s: %s", source_dir, variant, {k: entry.get(k) for k in ("status", "size_ratio", "reason")}
        )
        results[variant] = entry
    return results


def _stage_run(
    mlflow_cfg: MlflowConfig | None, section: Mapping[str, Any], inputs: Sequence[Path], name: str
):
    if mlflow_cfg is None:
        return nullcontext()
    return tracking.stage_run(mlflow_cfg, STAGE, section, inputs, run_name=name)


def _log_to_mlflow(results: Mapping[str, Any], variant_dirs: Mapping[str, Path]) -> None:
    import mlflow

    tracking.log_metrics(results)
    for key, entry in tracking.flatten(results).items():
        if key.endswith((".status", ".method", ".reason", ".lora_reason")):
            mlflow.set_tag(f"quantization.{key}", str(entry)[:5000])
    mlflow.log_dict(dict(results), "quantization.json")
    for variant, directory in variant_dirs.items():
        mlflow.log_artifacts(str(directory), artifact_path=f"variants/{variant}")


def check_base_models(model_names: Sequence[str]) -> None:
    """Every named model has its saved base directory; one UserError lists all that do not."""
    problems = []
    for name in model_names:
        base = layout.base_dir(name)
        if not base.is_dir():
            problems.append(f"{base}: model directory not found (run train_base_models first: dvc repro)")
        elif (card := ModelCard.load(base)).model != name:
            problems.append(f"{base}: holds model '{card.model}', expected '{name}'")
    if problems:
        raise UserError(problems)


def quantize_model(
    params: Params,
    model_name: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path = layout.QUANTIZED_DIR,
) -> dict[str, Any]:
    """The quantize_models stage for one model: every variant of the base (and, with
    quantization.merged_domains, of each merged domain model) under `out`, measured against its
    fp32 source."""
    if model_name not in params.models:
        raise UserError(f"--model '{model_name}' is not in params.yaml models {sorted(params.models)}")
    cfg = params.quantization
    base = layout.base_dir(model_name)
    check_base_models([model_name])
    validation_path = split_path(processed_dir, "validation")
    if not validation_path.exists():
        raise UserError(f"{validation_path}: missing; run `dvc repro prepare_data` first")
    records = read_jsonl(validation_path)
    adapters = trained_adapters(model_name, params.data.domains)
    section = {"model": model_name, "quantization": cfg.model_dump()}
    lineage = [base / "model.safetensors", validation_path, *adapters.values()]
    with (
        tempfile.TemporaryDirectory() as scratch,
        _stage_run(mlflow_cfg, section, lineage, f"quantize-{model_name}"),
    ):
        # Without trained adapters, LoRA compatibility is still measured, with a random probe adapter.
        lora_check = adapters or {"probe": probe_adapter(base, params.lora, Path(scratch) / "probe")}
        inputs = MeasureInputs(
            latency_prompts(records, cfg.latency_prompts, AutoTokenizer.from_pretrained(base)),
            records[: cfg.perplexity_samples],
            params.base_training(model_name).max_length,
            lora_check,
        )
        results: dict[str, Any] = quantize_and_measure(
            base, lambda v: variant_dir(model_name, v, root=out), cfg, inputs
        )
        results[REFERENCE]["lora_adapters"] = (
            "trained" if adapters else "random probe (no trained adapters found)"
        )
        if cfg.merged_domains:
            results["merged_domains"] = _merged_domains(params, model_name, adapters, inputs, out)
        if mlflow_cfg is not None:
            ok = {
                v: variant_dir(model_name, v, root=out) for v in cfg.variants if results[v]["status"] == "ok"
            }
            _log_to_mlflow(results, ok)
    return results


def write_quantization_metrics(
    path: Path, results: Mapping[str, Any], models: Sequence[str]
) -> dict[str, Any]:
    """metrics/quantization.json: a partial run (--model) keeps the other models' entries, but
    never those of models no longer in params.yaml."""
    previous = json.loads(path.read_text()) if path.exists() else {}
    merged = {**{name: entry for name, entry in previous.items() if name in models}, **results}
    write_json(path, merged)
    return merged


def _merged_domains(
    params: Params, model_name: str, adapters: Mapping[str, Path], inputs: MeasureInputs, out: Path
) -> dict[str, Any]:
    cfg = params.quantization
    # Same prompts and records as the base, so merged and base numbers compare; no LoRA on a merged model.
    plain = MeasureInputs(inputs.prompts, inputs.records, inputs.max_length)
    merged: dict[str, Any] = {}
    for domain in params.data.domains:
        if domain not in adapters:
            reason = f"no adapter at {layout.lora_dir(model_name, domain)} (skipped by train_lora_adapters)"
            merged[domain] = {
                v: {"status": "unavailable", "reason": reason} for v in [REFERENCE, *cfg.variants]
            }
            continue
        source = merge_domain_model(model_name, domain, adapters[domain], merged_dir(model_name, domain, out))
        merged[domain] = quantize_and_measure(
            source, lambda v, d=domain: variant_dir(model_name, v, d, out), cfg, plain
        )
    return merged
