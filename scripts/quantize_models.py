"""DVC stage quantize_models: 4-bit, 8-bit and dynamic-int8 variants of each base model, measured vs fp32.

Every requested variant appears in metrics/quantization.json, `ok` with its numbers or
`unavailable` with the reason (a backend this machine lacks); the stage does not fail on one.
"""

from __future__ import annotations

from aistudio import layout, lineage
from aistudio.cli import configure_logging, run_cli, stage_args

STAGE = "quantize_models"


def main() -> int:
    args = stage_args(STAGE, __doc__.splitlines()[0], model="some", out=layout.QUANTIZED_DIR)
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.quantization.plot import write_plot
    from aistudio.quantization.stage import check_base_models, quantize_model, write_quantization_metrics

    check_base_models(args.models)  # all missing models reported at once, before hours of work on the others
    with lineage.record_stage(args.mlflow, STAGE):
        results = {
            name: quantize_model(args.params, name, args.data, args.mlflow, out=args.out)
            for name in args.models
        }
    merged = write_quantization_metrics(layout.QUANTIZATION_METRICS, results, list(args.params.models))
    write_plot(merged, layout.QUANTIZATION_PLOT)
    return 0


if __name__ == "__main__":
    run_cli(main)
