"""Where trained models, checkpoints, metrics and plots of the training stages live."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")


def base_dir(model: str) -> Path:
    return MODELS_DIR / "base" / model


def domain_dir(model: str, domain: str) -> Path:
    return MODELS_DIR / "domain" / model / domain


def lora_dir(model: str, domain: str) -> Path:
    return MODELS_DIR / "lora" / model / domain


def checkpoint_dir(kind: str, model: str, domain: str | None = None) -> Path:
    # Kept out of the model outputs so `dvc repro` (persist: true) never deletes them mid-run.
    path = MODELS_DIR / "checkpoints" / kind / model
    return path / domain if domain else path


TRAIN_BASE_METRICS = METRICS_DIR / "train_base.json"


def finetune_metrics(model: str, domain: str) -> Path:
    return METRICS_DIR / "finetune" / model / f"{domain}.json"


def lora_metrics(model: str) -> Path:
    return METRICS_DIR / "lora" / f"{model}.json"


def loss_plot(kind: str, name: str) -> Path:
    return METRICS_DIR / "plots" / kind / f"{name}.csv"
