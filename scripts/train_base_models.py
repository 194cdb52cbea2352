"""DVC stage train_base_models: one base model per entry of params.yaml `models` (or --model),
each saved to --out/<model>: a tiny model trained, an imported one (--pretrained/<model>) measured."""

from __future__ import annotations

from pathlib import Path

from aistudio import layout, lineage
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.io import write_json
from aistudio.training.distributed import is_main_process

STAGE = "train_base_models"


def main() -> int:
    args = stage_args(
        STAGE,
        __doc__,
        model="some",
        out=layout.BASE_MODELS_DIR,
        options=lambda p: p.add_argument(
            "--pretrained",
            type=Path,
            default=layout.PRETRAINED_DIR,
            help=f"the imported models, for init: pretrained (default: {layout.PRETRAINED_DIR})",
        ),
    )
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.training.stages import train_base_model

    mlflow_cfg = args.mlflow if is_main_process() else None
    with lineage.record_stage(mlflow_cfg, STAGE):
        metrics = {
            name: train_base_model(
                args.params,
                name,
                args.data,
                mlflow_cfg,
                out=args.out / name,
                pretrained=args.options.pretrained / name,
            )
            for name in args.models
        }
    if is_main_process():
        write_json(layout.TRAIN_BASE_METRICS, metrics)
    return 0


if __name__ == "__main__":
    run_cli(main)
