"""W&B as a second sink for what a stage logs to MLflow (`training.report_to: [mlflow, wandb]`).

Offline unless the user says otherwise: `aistudio.environment` defaults WANDB_MODE=offline and keeps
WANDB_DIR and W&B's config, cache and data dirs inside the repository, so a run is written under
`.wandb/wandb/offline-run-*` and uploaded later with `wandb sync`. HF's own WandbCallback is not used:
it renames metrics (`train/loss`), and here W&B receives exactly the rows MLflow does, same names and
same steps. Final metrics (logged without a step) go to the W&B run's summary.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aistudio.errors import UserError

REPORTER = "wandb"
_run: Any = None  # the W&B run of the stage run in progress, like MLflow's active run


def wanted(report_to: Collection[str]) -> bool:
    return REPORTER in report_to


def _init(project: str, name: str, config: Mapping[str, Any], tags: Collection[str]) -> Any:
    try:
        import wandb
    except ModuleNotFoundError:
        raise UserError(
            "params.yaml: training.report_to names wandb, but the wandb package is not installed "
            "(make setup installs the pinned stack)"
        ) from None
    directory = Path(os.environ.get("WANDB_DIR") or ".wandb")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(
            project=project,
            name=name,
            config=dict(config),
            tags=[t[:64] for t in tags],
            dir=str(directory),
            # The stage's log already goes to stderr and logs/<stage>.log; no second copy of it.
            settings=wandb.Settings(console="off"),
        )
    except (wandb.errors.UsageError, wandb.errors.CommError, wandb.errors.AuthenticationError) as exc:
        mode = os.environ.get("WANDB_MODE", "online")
        raise UserError(
            f"W&B run '{name}' could not start (WANDB_MODE={mode}): {' '.join(str(exc).split())} "
            "(set WANDB_MODE=offline and upload later with `wandb sync`, or set WANDB_API_KEY)"
        ) from None


@contextmanager
def wandb_run(
    report_to: Collection[str], project: str, name: str, config: Mapping[str, Any], tags: Collection[str]
) -> Iterator[Any]:
    """A W&B run for the duration of the block when `report_to` names wandb; else nothing (None)."""
    global _run
    if not wanted(report_to):
        yield None
        return
    run = _init(project, name, config, tags)
    _run = run
    try:
        yield run
    except BaseException:
        _run = None
        run.finish(exit_code=1)
        raise
    _run = None
    run.finish()


def log(metrics: Mapping[str, float], step: int | None) -> None:
    """Per-step metrics into the history at `step`; step-less (final) metrics into the summary."""
    if _run is None or not metrics:
        return
    if step is None:
        _run.summary.update(dict(metrics))
    else:
        _run.log(dict(metrics), step=step)
