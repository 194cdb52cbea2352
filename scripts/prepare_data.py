"""DVC stage prepare_data: raw sources → data/processed/{train,validation,test}_data.jsonl."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aistudio import paths, tracking
from aistudio.cli import configure_logging, run_cli
from aistudio.config import load_mlflow_config, load_params
from aistudio.data.prepare import prepare_records, write_outputs

STAGE = "prepare_data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=paths.PARAMS_FILE)
    parser.add_argument("--mlflow-config", type=Path, default=paths.MLFLOW_FILE)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args()

    params = load_params(args.params)
    mlflow_cfg = load_mlflow_config(args.mlflow_config)
    configure_logging(STAGE)
    root = Path.cwd()
    processed = Path(params.data.processed_dir)

    result = prepare_records(params.data, root, params.seed, progress=not args.no_progress)
    report = write_outputs(result, processed, paths.DATA_QUALITY_METRICS)
    inputs = [root / name for name in result.read_files]  # sources and decontamination references
    with tracking.stage_run(mlflow_cfg, STAGE, {"seed": params.seed, **params.data.model_dump()}, inputs):
        tracking.log_metrics(report)
        tracking.log_artifact(paths.DATA_QUALITY_METRICS)
    logging.getLogger(STAGE).info(
        "kept %d of %d records (%d rejected); splits %s",
        report["kept_records"],
        report["input_records"],
        report["rejected_records"],
        report["splits"],
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
