"""The edge every script goes through: offline environment, logging, user errors → exit 2, and
the arguments every stage script shares (`stage_args`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aistudio import layout
from aistudio.config import MlflowConfig, Params, load_mlflow_config, load_params
from aistudio.environment import apply_offline_defaults
from aistudio.errors import UserError

USER_ERROR_EXIT = 2


def configure_logging(stage: str, log_dir: Path = layout.LOGS_DIR) -> None:
    """Log to stderr and to logs/<stage>.log so a long `dvc repro` leaves a readable trail."""
    log_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(layout.stage_log(stage, log_dir))):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's main; a UserError becomes one stderr line per problem and exit code 2."""
    apply_offline_defaults()
    try:
        code = main() or 0
    except UserError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


def selected_models(known: Collection[str], requested: Sequence[str] | None) -> list[str]:
    """The --model values a stage was given (all of params.yaml `models` when none), checked."""
    if not known:
        raise UserError("params.yaml: models has no entry; add at least one base model")
    unknown = sorted(set(requested or ()) - set(known))
    if unknown:
        raise UserError(f"--model {unknown} is not in params.yaml models {sorted(known)}")
    return list(requested or known)


def selected_domain(known: Sequence[str], requested: str) -> str:
    if requested not in known:
        raise UserError(f"--domain '{requested}' is not in params.yaml data.domains {list(known)}")
    return requested


# --- the arguments of a stage script ------------------------------------------------------------

# A matrix stage (one --model, required) or a stage over some or all models (--model repeatable).
ModelChoice = Literal["one", "some"]
# Where a stage writes by default: a fixed path, or one that depends on a matrix item.
OutDefault = Path | Callable[[str, str], Path]


@dataclass(frozen=True)
class StageArgs:
    """A stage script's arguments with params.yaml and mlflow.yaml loaded and checked."""

    stage: str
    params: Params
    mlflow: MlflowConfig | None
    models: list[str]
    domain: str | None
    data: Path
    out: Path | None  # None: the stage takes no --out
    options: argparse.Namespace  # the flags only this stage has

    @property
    def model(self) -> str:
        """The one --model of a matrix stage."""
        return self.models[0]


def _out_help(out: OutDefault) -> str:
    shown = out("<model>", "<domain>") if callable(out) else out
    return f"where the stage writes (default: {shown}, as dvc.yaml declares it)"


def stage_args(
    stage: str,
    description: str,
    *,
    model: ModelChoice | None = None,
    domain: bool = False,
    data: bool = True,
    out: OutDefault | None = None,
    mlflow: bool = True,
    options: Callable[[argparse.ArgumentParser], object] | None = None,
    argv: Sequence[str] | None = None,
) -> StageArgs:
    """Parse a stage script's command line and load what it names, so every problem is a UserError
    before any heavy import: --params, --mlflow-config, --model and --domain (checked against
    params.yaml), --data (the processed splits) and --out, both defaulting to the layout."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=layout.PARAMS_FILE, help="default: params.yaml")
    if mlflow:
        parser.add_argument(
            "--mlflow-config", type=Path, default=layout.MLFLOW_FILE, help="default: mlflow.yaml"
        )
    if model == "one":
        parser.add_argument("--model", required=True, help="a model of params.yaml models")
    elif model == "some":
        parser.add_argument(
            "--model", action="append", help="a model of params.yaml models (repeatable; default: all)"
        )
    if domain:
        parser.add_argument("--domain", required=True, help="a domain of params.yaml data.domains")
    if data:
        parser.add_argument(
            "--data",
            type=Path,
            default=layout.PROCESSED_DIR,
            help=f"the processed splits (default: {layout.PROCESSED_DIR})",
        )
    if out is not None:
        parser.add_argument("--out", type=Path, help=_out_help(out))
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    mlflow_cfg = load_mlflow_config(args.mlflow_config) if mlflow else None
    requested = args.model if model == "some" else [args.model] if model == "one" else None
    models = selected_models(params.models, requested) if model else []
    chosen_domain = selected_domain(params.data.domains, args.domain) if domain else None
    if out is None:
        where = None
    elif args.out is not None:
        where = args.out
    else:
        where = out(models[0] if models else "", chosen_domain or "") if callable(out) else out
    return StageArgs(
        stage=stage,
        params=params,
        mlflow=mlflow_cfg,
        models=models,
        domain=chosen_domain,
        data=args.data if data else layout.PROCESSED_DIR,
        out=where,
        options=args,
    )
