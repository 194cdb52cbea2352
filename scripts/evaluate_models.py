"""DVC stage evaluate: every form × domain, quality gates, then registration and promotion in MLflow.

A failed gate is reported, not a crash (exit 0), unless params.yaml sets evaluation.fail_on_gate.
"""

from __future__ import annotations

import logging

from aistudio import layout, lineage
from aistudio.cli import configure_logging, run_cli, stage_args

STAGE = "evaluate"
GATE_FAILED_EXIT = 1


def main() -> int:
    args = stage_args(STAGE, __doc__, model="some", out=layout.BUNDLES_DIR)
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.evaluation.stage import evaluate_model, write_stage_outputs

    with lineage.record_stage(args.mlflow, STAGE):
        evaluations = {
            name: evaluate_model(args.params, name, args.data, args.mlflow, bundles=args.out)
            for name in args.models
        }
    failed = write_stage_outputs(evaluations)
    for name in failed:
        logging.getLogger(STAGE).warning(
            "%s failed its gates: %s", name, "; ".join(g.reason for g in evaluations[name].gate.failures)
        )
    return GATE_FAILED_EXIT if failed and args.params.evaluation.fail_on_gate else 0


if __name__ == "__main__":
    run_cli(main)
