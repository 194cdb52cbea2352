"""DVC stage train_lora_adapters@<model>: one LoRA adapter per domain on the base model, each
saved to --out/<domain>."""

from __future__ import annotations

from aistudio import layout, lineage
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.io import write_json
from aistudio.training.distributed import is_main_process

STAGE = "train_lora_adapters"


def main() -> int:
    args = stage_args(STAGE, __doc__, model="one", out=lambda model, _: layout.lora_dir(model))
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.training.stages import train_lora_adapters

    with lineage.record_stage(args.mlflow, STAGE, item=args.model):
        metrics = train_lora_adapters(args.params, args.model, args.data, args.mlflow, out=args.out)
    if is_main_process():
        write_json(layout.lora_metrics(args.model), metrics)
    return 0


if __name__ == "__main__":
    run_cli(main)
