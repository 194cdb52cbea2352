"""Optional hyperparameter search with Optuna; the best values feed the final fit.

Trials live in an Optuna storage (sqlite by default, any RDB URL for distributed trials), so an
interrupted search resumes where it stopped and several machines can share one study.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aistudio.config import HpoConfig, TrainingConfig

log = logging.getLogger(__name__)
Fit = Callable[[TrainingConfig, Path], Any]


def _ensure_sqlite_dir(storage: str) -> None:
    prefix = "sqlite:///"
    if storage.startswith(prefix):
        Path(storage[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def tune_hyperparameters(
    hpo: HpoConfig, base: TrainingConfig, fit: Fit, study_name: str, seed: int = 0
) -> TrainingConfig:
    """Run the trials still missing from the study; return `base` updated with the best values."""
    import optuna

    _ensure_sqlite_dir(hpo.storage)
    study = optuna.create_study(
        study_name=study_name,
        storage=hpo.storage,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
    )

    def objective(trial: optuna.Trial) -> float:
        values: dict[str, Any] = {}
        for name, space in hpo.search_space.items():
            if name == "warmup_steps":
                values[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
            else:
                values[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
        steps = hpo.max_steps_per_trial
        trial_cfg = TrainingConfig.model_validate(
            {
                **base.model_dump(),
                **values,
                "max_steps": steps,
                "eval_steps": steps,
                "save_steps": steps,
                "early_stopping_patience": 0,
            }
        )
        with tempfile.TemporaryDirectory(prefix="hpo-") as out:
            return float(fit(trial_cfg, Path(out)).eval_loss)

    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if done < hpo.n_trials:
        study.optimize(objective, n_trials=hpo.n_trials - done)
    best = study.best_params
    log.info("hpo %s: best %s (eval_loss %.4f)", study_name, best, study.best_value)
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_params({f"hpo.best.{k}": v for k, v in best.items()})
        mlflow.log_metric("hpo_best_eval_loss", study.best_value)
    return TrainingConfig.model_validate({**base.model_dump(), **best})
