"""The edge every script goes through: offline environment, logging, user errors → exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from aistudio.environment import apply_offline_defaults
from aistudio.errors import UserError

USER_ERROR_EXIT = 2


def configure_logging(stage: str, log_dir: Path = Path("logs")) -> None:
    """Log to stderr and to logs/<stage>.log so a long `dvc repro` leaves a readable trail."""
    log_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_dir / f"{stage}.log")):
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
