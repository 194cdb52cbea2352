"""The training chain as one command: import_base_models -> train_base_models ->
finetune_domain_models -> train_lora_adapters, through `dvc repro` of those stages, so DVC's
caches decide what runs (and what it needs first, such as prepare_data).

    python scripts/train_models.py [--until train_base_models] [dvc repro flags, e.g. --force]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config
from aistudio.repro import chain_until, dvc_stages, repro


def main() -> int:
    parser = argparse.ArgumentParser(description="The training chain as one command, through dvc repro.")
    chain = layout.TRAINING_STAGES
    parser.add_argument("--until", help=f"the last stage: one of {', '.join(chain)} (default: {chain[-1]})")
    parser.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE, help="default: mlflow.yaml")
    args, dvc_args = parser.parse_known_args()
    stages = chain_until(args.until, dvc_stages())
    mlflow_cfg = load_mlflow_config(args.mlflow_config)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return repro(stages, mlflow_cfg, dvc_args).returncode


if __name__ == "__main__":
    run_cli(main)
