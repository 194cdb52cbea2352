"""DVC stage train_base_models: one base model per entry of params.yaml `models` (or --model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio import paths
from aistudio.cli import configure_logging, run_cli, selected_models
from aistudio.config import load_mlflow_config, load_params
from aistudio.io import write_json
from aistudio.training import layout
from aistudio.training.distributed import is_main_process

STAGE = "train_base_models"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=paths.PARAMS_FILE)
    parser.add_argument("--mlflow-config", type=Path, default=paths.MLFLOW_FILE)
    parser.add_argument("--model", action="append", help="train only this model (repeatable)")
    args = parser.parse_args()
    params = load_params(args.params)
    mlflow_cfg = load_mlflow_config(args.mlflow_config) if is_main_process() else None
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.training.stages import train_base_model

    names = selected_models(params.models, args.model)
    metrics = {
        name: train_base_model(params, name, Path(params.data.processed_dir), mlflow_cfg) for name in names
    }
    if is_main_process():
        write_json(layout.TRAIN_BASE_METRICS, metrics)
    return 0


if __name__ == "__main__":
    run_cli(main)
