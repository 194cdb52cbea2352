"""Every path a stage reads or writes, and the stage names, defined once.

Paths are relative to the repository root, where `dvc repro` runs every stage. dvc.yaml repeats
the stage outputs (DVC needs them literally); `validate_pipeline` checks that each one is a
path this module knows for that stage (`stage_outputs`), so the two cannot drift apart.

This module imports nothing from the project: it is the lowest layer, importable from anywhere.
"""

from __future__ import annotations

from pathlib import Path

# --- the stages, in pipeline order ---------------------------------------------------------------

PIPELINE_STAGES: tuple[str, ...] = (
    "prepare_data",
    "import_base_models",
    "train_base_models",
    "build_features",
    "finetune_domain_models",
    "train_lora_adapters",
    "quantize_models",
    "evaluate",
    "deploy",
)
# The stages that make the models, in order: what scripts/train_models.py runs.
TRAINING_STAGES: tuple[str, ...] = PIPELINE_STAGES[
    PIPELINE_STAGES.index("import_base_models") : PIPELINE_STAGES.index("train_lora_adapters") + 1
]

# --- configuration files -------------------------------------------------------------------------

PARAMS_FILE = Path("params.yaml")
MLFLOW_FILE = Path("mlflow.yaml")
DVC_FILE = Path("dvc.yaml")
CONFIGS_DIR = Path("configs")
TRAINING_CONFIG_FILE = CONFIGS_DIR / "training_config.yaml"  # the GPU recipes
SERVING_CONFIG_FILE = CONFIGS_DIR / "serving.yaml"
MONITORING_CONFIG_FILE = CONFIGS_DIR / "monitoring_config.yaml"
DEPLOYMENT_CONFIG_FILE = CONFIGS_DIR / "deployment_config.yaml"  # per-environment rollout values
MONITORING_DIR = CONFIGS_DIR / "monitoring"
ALERT_RULES = MONITORING_DIR / "alert_rules.yml"
DASHBOARD = MONITORING_DIR / "grafana_dashboard.json"
PROMETHEUS_CONFIG = MONITORING_DIR / "prometheus.yml"

# --- local services ------------------------------------------------------------------------------

# The team stack of `make team-up` (PostgreSQL, S3, MLflow server): its state, logs and `env` file.
TEAM_DIR = Path(".team")
# The local mirror of the registry's audit trail (aistudio.audit): a copy the stored log must extend.
AUDIT_MIRROR = Path(".audit") / "audit.jsonl"

# --- data ----------------------------------------------------------------------------------------

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
REJECTED_FILE = "rejected.jsonl"
FEATURES_DIR = Path("data/features")
# The server's feedback store (JSONL segments; a PVC in the cluster) and where collected pairs land.
FEEDBACK_STORE_DIR = Path("logs/feedback")
FEEDBACK_RAW_DIR = RAW_DIR / "feedback"


def split_path(processed_dir: Path, split: str) -> Path:
    return Path(processed_dir) / f"{split}_data.jsonl"


def rejected_path(processed_dir: Path = PROCESSED_DIR) -> Path:
    return Path(processed_dir) / REJECTED_FILE


# Inside a feature store: the card naming what its fingerprint was made of (aistudio.features).
FEATURE_MANIFEST = "card.json"


def features_dir(model: str, fingerprint: str | None = None, root: Path = FEATURES_DIR) -> Path:
    """A model's tokenized splits (the build_features output), or the store of one fingerprint in it."""
    path = Path(root) / model
    return path / fingerprint if fingerprint else path


def features_split_dir(store: Path, split: str) -> Path:
    """One split of a store (`features_dir(model, fingerprint)`) as an HF dataset (`save_to_disk`, Arrow)."""
    return Path(store) / split


# --- models --------------------------------------------------------------------------------------

MODELS_DIR = Path("models")
PRETRAINED_DIR = MODELS_DIR / "pretrained"
BASE_MODELS_DIR = MODELS_DIR / "base"
DOMAIN_MODELS_DIR = MODELS_DIR / "domain"
LORA_DIR = MODELS_DIR / "lora"
CHECKPOINTS_DIR = MODELS_DIR / "checkpoints"
QUANTIZED_DIR = MODELS_DIR / "quantized"
# A domain's LoRA adapter folded into the base weights, the source of that domain's variants.
BUNDLES_DIR = MODELS_DIR / "bundles"


def pretrained_dir(model: str) -> Path:
    """A published model imported as an HF directory, before this project trains it."""
    return PRETRAINED_DIR / model


def base_dir(model: str) -> Path:
    return BASE_MODELS_DIR / model


def domain_dir(model: str, domain: str) -> Path:
    return DOMAIN_MODELS_DIR / model / domain


def lora_dir(model: str, domain: str | None = None) -> Path:
    """One domain's adapter, or (no domain) the folder of all of a model's adapters."""
    return LORA_DIR / model / domain if domain else LORA_DIR / model


def checkpoint_dir(kind: str, model: str, domain: str | None = None) -> Path:
    # Kept out of the model outputs so `dvc repro` (persist: true) never deletes them mid-run.
    path = CHECKPOINTS_DIR / kind / model
    return path / domain if domain else path


def quantized_dir(model: str, variant: str, domain: str | None = None, root: Path = QUANTIZED_DIR) -> Path:
    """models/quantized/<model>/<variant>, or .../<model>/domains/<domain>/<variant> for the variant
    of a merged domain model."""
    base = Path(root) / model
    return base / "domains" / domain / variant if domain else base / variant


def merged_dir(model: str, domain: str, root: Path = QUANTIZED_DIR) -> Path:
    """The fp32 domain model quantize_models merges from an adapter, beside its quantized variants:
    inside the stage's declared output, so DVC caches and restores it with them."""
    return Path(root) / model / "domains" / domain / "merged"


def bundle_dir(model: str, root: Path = BUNDLES_DIR) -> Path:
    """What the registry stores and the server loads: base (or its variant) plus every adapter."""
    return Path(root) / model


# --- metrics, plots, reports ---------------------------------------------------------------------

METRICS_DIR = Path("metrics")
DATA_QUALITY_METRICS = METRICS_DIR / "data_quality.json"
TRAIN_BASE_METRICS = METRICS_DIR / "train_base.json"
QUANTIZATION_METRICS = METRICS_DIR / "quantization.json"
EVALUATION_METRICS = METRICS_DIR / "evaluation.json"
EVALUATION_REPORT = METRICS_DIR / "evaluation_report.md"
GATE_METRICS = METRICS_DIR / "gate.json"
DEPLOY_METRICS = METRICS_DIR / "deploy.json"
MONITORING_METRICS = METRICS_DIR / "monitoring.json"
BENCH_DIR = METRICS_DIR / "bench"
# Inputs a benchmark derives once and reuses (e.g. a model converted from a wheel); never tracked.
BENCH_CACHE_DIR = Path(".cache/bench")
PLOTS_DIR = METRICS_DIR / "plots"
EVALUATION_PLOTS_DIR = PLOTS_DIR / "evaluation"
QUANTIZATION_PLOT = PLOTS_DIR / "quantization.json"


def bench_model_dir(model: str) -> Path:
    return BENCH_CACHE_DIR / "models" / model


def finetune_metrics(model: str, domain: str) -> Path:
    return METRICS_DIR / "finetune" / model / f"{domain}.json"


def feature_card(model: str) -> Path:
    """Rows, tokens and truncations per split and domain of a model's feature store, and its fingerprint."""
    return METRICS_DIR / "features" / f"{model}.json"


def lora_metrics(model: str) -> Path:
    return METRICS_DIR / "lora" / f"{model}.json"


def loss_plot(kind: str, name: str) -> Path:
    """step,train_loss,eval_loss,learning_rate,note rows of one training run, for `dvc plots show`."""
    return PLOTS_DIR / kind / f"{name}.csv"


def evaluation_plot(chart: str) -> Path:
    """One bar-chart data file per metric (evaluation/plots.py CHARTS): {model, domain, form, ...} rows."""
    return EVALUATION_PLOTS_DIR / f"{chart}.json"


# --- the `dvc plots` page ------------------------------------------------------------------------

DVC_DIR = Path(".dvc")
# DVC's templates_dir: the Vega-Lite templates dvc.yaml's plots name, and the page built from them.
PLOT_TEMPLATES_DIR = DVC_DIR / "plots"
# .dvc/config's plots.html_template (relative to .dvc/, as DVC reads it); built by `make setup`.
PLOTS_PAGE = PLOT_TEMPLATES_DIR / "page.html"
VENDORED_VEGA_DIR = Path("vendor/vega")


# Each DVC stage (a matrix stage: each item) records the MLflow runs that made its outputs here; a
# `cache: false` metrics file, so a run-cache restore brings back the ids of the runs it restores.
LINEAGE_DIR = METRICS_DIR / "lineage"
MATRIX_SEPARATOR = "@"  # DVC's stage addressing: finetune_domain_models@phi2-code


def stage_address(stage: str, item: str | None = None) -> str:
    """The name DVC gives a stage or one item of a matrix stage (item: its values joined by '-')."""
    return f"{stage}{MATRIX_SEPARATOR}{item}" if item else stage


def lineage_file(address: str) -> Path:
    """metrics/lineage/<stage>.json, or metrics/lineage/<stage>/<item>.json for a matrix item."""
    stage, _, item = address.partition(MATRIX_SEPARATOR)
    return LINEAGE_DIR / stage / f"{item}.json" if item else LINEAGE_DIR / f"{stage}.json"


# --- deployment ----------------------------------------------------------------------------------

K8S_ROOT = Path("k8s")
MONITORING_STACK = K8S_ROOT / "monitoring-stack.yaml"
RENDERED_DIR = Path("deploy/rendered")


def rendered_path(overlay: str, out_dir: Path = RENDERED_DIR) -> Path:
    return Path(out_dir) / f"{overlay}.yaml"


# --- logs ----------------------------------------------------------------------------------------

LOGS_DIR = Path("logs")


def stage_log(stage: str, log_dir: Path = LOGS_DIR) -> Path:
    return Path(log_dir) / f"{stage}.log"


# --- what each stage writes ----------------------------------------------------------------------


def stage_outputs(model: str, domain: str) -> dict[str, tuple[Path, ...]]:
    """Every output (outs, metrics and plots) of each stage, as dvc.yaml declares them.

    `model` and `domain` stand for a matrix stage's item; `pipeline_check` passes DVC's
    `${item.model}` / `${item.domain}` so the paths compare equal to dvc.yaml's text.
    """
    return {
        "prepare_data": (
            *(split_path(PROCESSED_DIR, split) for split in SPLIT_NAMES),
            rejected_path(),
            DATA_QUALITY_METRICS,
            lineage_file("prepare_data"),
        ),
        "import_base_models": (pretrained_dir(model), PRETRAINED_DIR),
        "train_base_models": (
            BASE_MODELS_DIR,
            CHECKPOINTS_DIR / "base",
            TRAIN_BASE_METRICS,
            PLOTS_DIR / "train_base",
            lineage_file("train_base_models"),
        ),
        "build_features": (features_dir(model), feature_card(model)),
        "finetune_domain_models": (
            domain_dir(model, domain),
            checkpoint_dir("domain", model, domain),
            finetune_metrics(model, domain),
            loss_plot("finetune", f"{model}-{domain}"),
            lineage_file(stage_address("finetune_domain_models", f"{model}-{domain}")),
        ),
        "train_lora_adapters": (
            lora_dir(model),
            checkpoint_dir("lora", model),
            lora_metrics(model),
            PLOTS_DIR / "lora" / model,
            lineage_file(stage_address("train_lora_adapters", model)),
        ),
        "quantize_models": (
            QUANTIZED_DIR,
            QUANTIZATION_PLOT,
            QUANTIZATION_METRICS,
            lineage_file("quantize_models"),
        ),
        "evaluate": (
            BUNDLES_DIR,
            EVALUATION_REPORT,
            EVALUATION_METRICS,
            GATE_METRICS,
            EVALUATION_PLOTS_DIR,
            lineage_file("evaluate"),
        ),
        "deploy": (RENDERED_DIR, DEPLOY_METRICS),
    }
