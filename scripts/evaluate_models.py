"""DVC stage evaluate: every form × domain, quality gates, then registration and promotion in MLflow.

A failed gate is reported, not a crash (exit 0), unless params.yaml sets evaluation.fail_on_gate.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aistudio import paths
from aistudio.cli import configure_logging, run_cli, selected_models
from aistudio.config import load_mlflow_config, load_params
from aistudio.io import write_json

STAGE = "evaluate"
GATE_FAILED_EXIT = 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", help="evaluate only this model (repeatable)")
    parser.add_argument("--params", type=Path, default=paths.PARAMS_FILE)
    parser.add_argument("--mlflow-config", type=Path, default=paths.MLFLOW_FILE)
    args = parser.parse_args()
    params = load_params(args.params)
    mlflow_cfg = load_mlflow_config(args.mlflow_config)
    names = selected_models(params.models, args.model)
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.evaluation import layout
    from aistudio.evaluation.report import write_plots, write_report
    from aistudio.evaluation.stage import evaluate_model

    evaluations = {
        name: evaluate_model(params, name, Path(params.data.processed_dir), mlflow_cfg) for name in names
    }
    results = {name: ev.results for name, ev in evaluations.items()}
    write_json(
        layout.EVALUATION_METRICS,
        {
            name: {d: {form: r.metrics for form, r in forms.items()} for d, forms in ev.results.items()}
            for name, ev in evaluations.items()
        },
    )
    write_json(paths.GATE_METRICS, {name: ev.gate_json() for name, ev in evaluations.items()})
    write_report(
        layout.EVALUATION_REPORT,
        results,
        {n: ev.gate for n, ev in evaluations.items()},
        {n: ev.behaviour for n, ev in evaluations.items()},
    )
    write_plots(results)
    failed = [name for name, ev in evaluations.items() if not ev.gate.passed]
    for name in failed:
        logging.getLogger(STAGE).warning(
            "%s failed its gates: %s", name, "; ".join(g.reason for g in evaluations[name].gate.failures)
        )
    return GATE_FAILED_EXIT if failed and params.evaluation.fail_on_gate else 0


if __name__ == "__main__":
    run_cli(main)
