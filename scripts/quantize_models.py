"""DVC stage quantize_models: 4-bit, 8-bit and dynamic-int8 variants of each base model, measured vs fp32.

Every requested variant appears in metrics/quantization.json, `ok` with its numbers or
`unavailable` with the reason (a backend this machine lacks); the stage does not fail on one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aistudio import paths
from aistudio.cli import configure_logging, run_cli, selected_models
from aistudio.config import load_mlflow_config, load_params
from aistudio.io import write_json

STAGE = "quantize_models"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", help="a model from params.yaml (repeatable; default: all)"
    )
    parser.add_argument("--params", type=Path, default=paths.PARAMS_FILE)
    parser.add_argument("--mlflow-config", type=Path, default=paths.MLFLOW_FILE)
    args = parser.parse_args()
    params = load_params(args.params)
    names = selected_models(params.models, args.model)
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.quantization import QUANTIZATION_METRICS, check_base_models, quantize_model

    names = args.model or list(params.models)
    check_base_models(names)  # all missing models reported at once, before hours of work on the others
    mlflow_cfg = load_mlflow_config(args.mlflow_config)
    results = {
        name: quantize_model(params, name, Path(params.data.processed_dir), mlflow_cfg) for name in names
    }
    # A partial run (--model) keeps the other models' entries, but never ones no longer in params.yaml.
    previous = json.loads(QUANTIZATION_METRICS.read_text()) if QUANTIZATION_METRICS.exists() else {}
    kept = {name: entry for name, entry in previous.items() if name in params.models}
    write_json(QUANTIZATION_METRICS, {**kept, **results})
    return 0


if __name__ == "__main__":
    run_cli(main)
