"""`make pipeline`: dvc repro of the whole DAG (or the given stages) under one pipeline id, then the
stages DVC restored from its run-cache linked into that pipeline in MLflow.

    python scripts/run_pipeline.py [STAGE ...] [dvc repro flags, e.g. --force]

The pipeline id is $AISTUDIO_PIPELINE_ID, or repro-<UTC time>. Exit code: dvc repro's.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config
from aistudio.repro import repro


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="dvc.yaml stages (default: all)")
    parser.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE, help="default: mlflow.yaml")
    args, dvc_args = parser.parse_known_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return repro(args.stages, load_mlflow_config(args.mlflow_config), dvc_args).returncode


if __name__ == "__main__":
    run_cli(main)
