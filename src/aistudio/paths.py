"""One source of truth for stage names and the paths stages read and write."""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
MLFLOW_FILE = Path("mlflow.yaml")
DVC_FILE = Path("dvc.yaml")

PROCESSED_DIR = Path("data/processed")
METRICS_DIR = Path("metrics")
DATA_QUALITY_METRICS = METRICS_DIR / "data_quality.json"
BENCH_DIR = METRICS_DIR / "bench"

PIPELINE_STAGES: tuple[str, ...] = (
    "prepare_data",
    "train_base_models",
    "finetune_domain_models",
    "train_lora_adapters",
    "quantize_models",
    "evaluate",
    "deploy",
)
GATE_METRICS = METRICS_DIR / "gate.json"
