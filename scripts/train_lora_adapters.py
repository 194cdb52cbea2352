"""DVC stage train_lora_adapters@<model>: one LoRA adapter per domain on the base model."""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio import paths
from aistudio.cli import configure_logging, run_cli, selected_models
from aistudio.config import load_mlflow_config, load_params
from aistudio.io import write_json
from aistudio.training import layout
from aistudio.training.distributed import is_main_process

STAGE = "train_lora_adapters"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--params", type=Path, default=paths.PARAMS_FILE)
    parser.add_argument("--mlflow-config", type=Path, default=paths.MLFLOW_FILE)
    args = parser.parse_args()
    params = load_params(args.params)
    selected_models(params.models, [args.model])
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.training.stages import train_lora_adapters

    metrics = train_lora_adapters(
        params, args.model, Path(params.data.processed_dir), load_mlflow_config(args.mlflow_config)
    )
    if is_main_process():
        write_json(layout.lora_metrics(args.model), metrics)
    return 0


if __name__ == "__main__":
    run_cli(main)
