"""Loss curves: train_loss and eval_loss per step, enough points, a note when nothing was logged."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from aistudio.plots.data import LOSS_CURVE_COLUMNS, NOTE
from aistudio.training.stages import write_loss_curve
from aistudio.training.trainer import logging_interval

# What HF Trainer's on_log sees: step logs, evaluations, and the end-of-training summary.
HISTORY = [
    {"step": 1.0, "loss": 4.0, "grad_norm": 1.0, "learning_rate": 0.001, "epoch": 0.1},
    {"step": 2.0, "loss": 3.0, "grad_norm": 1.0, "learning_rate": 0.0005, "epoch": 0.2},
    {"step": 2.0, "eval_loss": 3.5, "eval_runtime": 0.1, "epoch": 0.2},
    {"step": 2.0, "train_runtime": 1.0, "train_loss": 3.5, "epoch": 0.2},
]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_train_and_eval_loss_of_a_step_share_its_row_and_the_run_summary_is_not_a_step(
    tmp_path: Path,
) -> None:
    path = tmp_path / "curve.csv"
    write_loss_curve(path, HISTORY, "phi2")
    assert path.read_text().splitlines()[0] == ",".join(LOSS_CURVE_COLUMNS)
    assert _read(path) == [
        {"step": "1", "train_loss": "4.0", "eval_loss": "", "learning_rate": "0.001", NOTE: ""},
        {"step": "2", "train_loss": "3.0", "eval_loss": "3.5", "learning_rate": "0.0005", NOTE: ""},
    ]


def test_a_run_that_logged_no_step_writes_one_row_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    write_loss_curve(path, [], "smollm2")
    (row,) = _read(path)
    assert row["step"] == "" and row["train_loss"] == ""
    assert row[NOTE].startswith("smollm2: no training step was logged")
    write_loss_curve(path, [], "smollm2", "smollm2: pretrained, evaluated as is")
    assert _read(path)[0][NOTE] == "smollm2: pretrained, evaluated as is"


@pytest.mark.parametrize("max_steps", [12, 40, 100, 10_000])
def test_a_curve_gets_at_least_ten_points(max_steps: int) -> None:
    assert max_steps // logging_interval(max_steps) >= 10


def test_the_default_budgets_log_at_least_ten_train_loss_points(repo_root: Path) -> None:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    budgets = [
        params["training"]["max_steps"],
        params["finetune"]["defaults"].get("max_steps", params["training"]["max_steps"]),
        params["lora"]["training"].get("max_steps", params["training"]["max_steps"]),
    ]
    assert all(steps // logging_interval(steps) >= 10 for steps in budgets), budgets
