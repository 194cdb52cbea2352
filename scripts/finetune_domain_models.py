"""DVC stage finetune_domain_models@<model>-<domain>: the base checkpoint trained on one domain."""

from __future__ import annotations

from aistudio import layout, lineage
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.io import write_json
from aistudio.training.distributed import is_main_process

STAGE = "finetune_domain_models"


def main() -> int:
    args = stage_args(STAGE, __doc__, model="one", domain=True, out=layout.domain_dir)
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.training.stages import finetune_domain_model

    with lineage.record_stage(args.mlflow, STAGE, item=f"{args.model}-{args.domain}"):
        metrics = finetune_domain_model(
            args.params, args.model, args.domain, args.data, args.mlflow, out=args.out
        )
    if is_main_process():
        write_json(layout.finetune_metrics(args.model, args.domain), metrics)
    return 0


if __name__ == "__main__":
    run_cli(main)
