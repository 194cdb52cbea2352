"""The evaluate stage for one base model: every form on every domain, gates, then the registry.

Forms: the base model, each domain fine-tune, base + the domain's LoRA adapter, and the
quantized serving variant + that adapter. The serving form is gated against params and against
the current champion; the bundle (serving variant + tokenizer + all adapters) is registered as a
challenger and promoted only when it passes every gate and beats the champion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio import layout, tracking
from aistudio.config import MlflowConfig, Params
from aistudio.errors import UserError
from aistudio.evaluation.behavioural import INVARIANCE_PROMPTS, invariance_check, minimum_functionality
from aistudio.evaluation.evaluate import evaluate_form, make_generate_fn, make_nll_fn
from aistudio.evaluation.gates import GateReport, beats_champion, check_gates, gate_summary, serving_form
from aistudio.evaluation.plots import write_charts
from aistudio.evaluation.report import write_report
from aistudio.evaluation.results import FormResult
from aistudio.io import write_json
from aistudio.modeling.loading import load_model_dir
from aistudio.training.adapters import AdapterSet
from aistudio.training.stages import SKIPPED_MARKER, for_domain, load_split

log = logging.getLogger(__name__)
# Training prompts sampled for the server's drift reference: plenty for stable bins, cheap to featurise.
REFERENCE_PROMPTS = 2000


@dataclass
class ModelEvaluation:
    results: dict[str, dict[str, FormResult]]
    behaviour: dict[str, dict[str, Any]]
    gate: GateReport
    candidate: dict[str, Any]
    registration: dict[str, Any]

    def gate_json(self) -> dict[str, Any]:
        return {**self.gate.to_json(), "registration": self.registration}


def _adapters(model: str, domains: list[str]) -> dict[str, Path]:
    found = {
        d: layout.lora_dir(model, d)
        for d in domains
        if (layout.lora_dir(model, d) / "adapter_config.json").exists()
    }
    if not found:
        raise UserError(
            f"{layout.lora_dir(model, '*')}: no trained LoRA adapter; run `dvc repro train_lora_adapters`"
        )
    return found


def write_reference_profile(model: str, train: list[Mapping[str, Any]], path: Path) -> Path:
    """The drift reference the server compares live prompts with: training prompts, as served."""
    from transformers import AutoTokenizer

    from aistudio.modeling.family import family_for
    from aistudio.modeling.loading import ModelCard
    from aistudio.modeling.prompts import example_from_record
    from aistudio.serving.drift import profile_from_prompts, save_profile

    base = layout.base_dir(model)
    family = family_for(ModelCard.load(base).family)
    tokenizer = AutoTokenizer.from_pretrained(base)
    # The split is sorted by domain: a strided sample keeps every domain in its share.
    sample = train[:: max(1, len(train) // REFERENCE_PROMPTS)]
    prompts = ((example_from_record(r).prompt, r.get("domain")) for r in sample)
    profile = profile_from_prompts(
        prompts, lambda text: family.token_ids(tokenizer, text), tokenizer.get_vocab(), tokenizer.unk_token_id
    )
    save_profile(profile, path)
    return path


def serving_base_dir(params: Params, model: str) -> Path:
    """The model directory the bundle serves: the quantized variant named in params, or the fp32 base."""
    from aistudio.quantization import read_variant_info, variant_dir

    variant = params.evaluation.serving_variant
    if variant == "fp32":
        return layout.base_dir(model)
    directory = variant_dir(model, variant)
    info = read_variant_info(directory) if directory.exists() else None
    if info is None or info.get("status") != "ok":
        reason = (info or {}).get("reason", "not produced; run `dvc repro quantize_models`")
        raise UserError(
            f"params.yaml: evaluation.serving_variant '{variant}' is unavailable for {model}: {reason}"
        )
    return directory


def _evaluate_forms(
    params: Params,
    model: str,
    test: list[Mapping[str, Any]],
    adapters: Mapping[str, Path],
    processed_dir: Path,
) -> tuple[dict[str, dict[str, FormResult]], dict[str, dict[str, Any]]]:
    from aistudio.quantization import load_variant

    cfg, max_length = params.evaluation, params.training.max_length
    domains = [d for d in params.data.domains if for_domain(test, d)]
    if not domains:
        raise UserError(f"{layout.split_path(processed_dir, 'test')}: the test split is empty")
    results: dict[str, dict[str, FormResult]] = {d: {} for d in domains}
    behaviour: dict[str, dict[str, Any]] = {}

    def run(form: str, domain: str, target: Any, tokenizer: Any, family: Any, adapter: str | None) -> None:
        generate = make_generate_fn(target, tokenizer, family, adapter, cfg.max_new_tokens)
        nll = make_nll_fn(target, tokenizer, family, adapter, cfg.batch_size, max_length)
        results[domain][form] = evaluate_form(generate, nll, for_domain(test, domain), domain, cfg, form=form)

    base, tokenizer, _, family = load_model_dir(layout.base_dir(model), expect_model=model)
    adapter_set = AdapterSet.load(base, family, adapters)
    for domain in domains:
        run("base", domain, adapter_set, tokenizer, family, None)
        if domain in adapters:
            run("lora", domain, adapter_set, tokenizer, family, domain)
            generate = make_generate_fn(adapter_set, tokenizer, family, domain, cfg.max_new_tokens)
            behaviour[domain] = {
                "invariance": invariance_check(generate, INVARIANCE_PROMPTS[domain], domain=domain),
                "minimum_functionality": minimum_functionality(generate, domain),
            }
        tuned_dir = layout.domain_dir(model, domain)
        if tuned_dir.is_dir() and not (tuned_dir / SKIPPED_MARKER).exists():
            tuned, tuned_tok, _, tuned_family = load_model_dir(tuned_dir, expect_model=model)
            run("domain", domain, tuned, tuned_tok, tuned_family, None)
            del tuned
    del adapter_set, base
    if cfg.serving_variant != "fp32":
        quantized, q_tokenizer, _, q_family = load_variant(
            serving_base_dir(params, model), expect_model=model
        )
        q_set = AdapterSet.load(quantized, q_family, adapters)
        for domain in domains:
            if domain in adapters:
                run("quantized_lora", domain, q_set, q_tokenizer, q_family, domain)
    return results, behaviour


def evaluate_model(
    params: Params,
    model: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig,
    registry_factory: Callable[[str], Any] | None = None,
    bundles: Path = layout.BUNDLES_DIR,
) -> ModelEvaluation:
    """Evaluate, gate, and register (and maybe promote) one base model's serving bundle, built
    under `bundles`."""
    from aistudio.bundle import REFERENCE_PROFILE, build_bundle
    from aistudio.registry import ModelRegistry, check_reachable

    registered = mlflow_cfg.registry.get(model)
    if registered is None:
        raise UserError(f"mlflow.yaml: registry has no registered-model name for '{model}'")
    check_reachable(mlflow_cfg.tracking_uri)  # fail before an hour of evaluation, not after
    registry = (registry_factory or ModelRegistry)(mlflow_cfg.tracking_uri)
    test = load_split(processed_dir, "test")
    adapters = _adapters(model, params.data.domains)
    section = {"model": model, "evaluation": params.evaluation.model_dump()}
    inputs = [layout.base_dir(model) / "model.safetensors", layout.split_path(processed_dir, "test")]
    with tracking.stage_run(mlflow_cfg, "evaluate", section, inputs, run_name=f"evaluate-{model}") as run:
        results, behaviour = _evaluate_forms(params, model, test, adapters, processed_dir)
        candidate = gate_summary(results, serving_form(params.evaluation))
        champion = registry.champion_summary(registered)
        gate = check_gates(candidate, params.evaluation.gates, champion)
        beats = beats_champion(candidate, champion)
        tracking.log_metrics({d: {f: r.metrics for f, r in forms.items()} for d, forms in results.items()})
        tracking.log_metrics({"gate_passed": gate.passed, "beats_champion": beats})
        lineage = tracking.lineage_tags("evaluate", section, inputs, Path.cwd())
        manifest_lineage = {
            "git_commit": lineage["aistudio.git_commit"],
            "data_hash": lineage["aistudio.inputs_md5"],
            "params_hash": lineage["aistudio.params_hash"],
            "run_ids": {"evaluate": run.info.run_id},
        }
        reference = write_reference_profile(
            model, load_split(processed_dir, "train"), Path(bundles) / f".{model}-{REFERENCE_PROFILE}"
        )
        build_bundle(
            layout.bundle_dir(model, bundles),
            serving_base_dir(params, model),
            adapters,
            model,
            _family_name(model),
            params.evaluation.serving_variant,
            candidate,
            manifest_lineage,
            extra_files={REFERENCE_PROFILE: reference},
        )
        reference.unlink()
        version = registry.register_bundle(
            registered, layout.bundle_dir(model, bundles), run.info.run_id, {"aistudio.model": model}
        )
        decision = registry.promote_if_better(registered, version, gate.passed, beats)
        registration = {
            "registered_model": registered,
            "version": version,
            "decision": decision,
            "beats_champion": beats,
            "aliases": registry.aliases(registered),
        }
        log.info("%s: %s v%d %s", model, registered, version, decision)
    return ModelEvaluation(results, behaviour, gate, candidate, registration)


def _family_name(model: str) -> str:
    from aistudio.modeling.loading import ModelCard

    return ModelCard.load(layout.base_dir(model)).family


def write_stage_outputs(
    evaluations: Mapping[str, ModelEvaluation],
    metrics_path: Path = layout.EVALUATION_METRICS,
    gate_path: Path = layout.GATE_METRICS,
    report_path: Path = layout.EVALUATION_REPORT,
    plots_dir: Path = layout.EVALUATION_PLOTS_DIR,
) -> list[str]:
    """The evaluate stage's metrics (model → domain → form → metrics), gate decisions, report and
    chart data; returns the models that failed a gate."""
    results = {name: ev.results for name, ev in evaluations.items()}
    write_json(
        metrics_path,
        {
            name: {d: {form: r.metrics for form, r in forms.items()} for d, forms in domains.items()}
            for name, domains in results.items()
        },
    )
    write_json(gate_path, {name: ev.gate_json() for name, ev in evaluations.items()})
    write_report(
        report_path,
        results,
        {name: ev.gate for name, ev in evaluations.items()},
        {name: ev.behaviour for name, ev in evaluations.items()},
    )
    write_charts(results, plots_dir)
    return [name for name, ev in evaluations.items() if not ev.gate.passed]
