"""DVC stage prepare_data: the raw sources of params.yaml → train/validation/test splits in --out."""

from __future__ import annotations

import logging
from pathlib import Path

from aistudio import layout, lineage, tracking
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.data.prepare import prepare_records, write_outputs

STAGE = "prepare_data"


def main() -> int:
    args = stage_args(
        STAGE,
        __doc__,
        data=False,
        out=layout.PROCESSED_DIR,
        options=lambda p: p.add_argument("--no-progress", action="store_true", help="hide the progress bar"),
    )
    configure_logging(STAGE)
    params, root = args.params, Path.cwd()
    with lineage.record_stage(args.mlflow, STAGE):
        result = prepare_records(params.data, root, params.seed, progress=not args.options.no_progress)
        report = write_outputs(result, args.out, layout.DATA_QUALITY_METRICS)
        inputs = [root / name for name in result.read_files]  # sources and decontamination references
        section = {"seed": params.seed, **params.data.model_dump()}
        with tracking.stage_run(args.mlflow, STAGE, section, inputs, run_name=STAGE):
            tracking.log_metrics(report)
            tracking.log_artifact(layout.DATA_QUALITY_METRICS)
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
