"""kill -9 mid-run, run again: training resumes from the last complete checkpoint, no step twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

MAX_STEPS = 40


def _script(repo_root: Path, workspace: Path, *args: str) -> list[str]:
    return [sys.executable, str(repo_root / "scripts" / "train_base_models.py"), *args]


def _completed_steps(checkpoints: Path) -> list[int]:
    return sorted(
        int(p.name.split("-")[1])
        for p in checkpoints.glob("checkpoint-*")
        if (p / "trainer_state.json").exists()
    )


def test_kill_9_then_rerun_resumes_and_ends_at_the_same_step(workspace: Path, repo_root: Path) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["training"].update(
        {"max_steps": MAX_STEPS, "save_steps": 4, "eval_steps": 4, "save_total_limit": 3}
    )
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoints = workspace / "models/checkpoints/base/codet5p"
    cmd = _script(repo_root, workspace, "--model", "codet5p")

    proc = subprocess.Popen(
        cmd, cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not [s for s in _completed_steps(checkpoints) if s >= 8]:
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    interrupted_at = max(_completed_steps(checkpoints))
    assert 8 <= interrupted_at < MAX_STEPS

    done = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((workspace / "metrics/train_base.json").read_text())["codet5p"]
    assert metrics["global_step"] == MAX_STEPS
    assert metrics["resumed_from"] is not None
    assert int(metrics["resumed_from"].split("-")[1]) >= interrupted_at

    state = json.loads((checkpoints / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    loss_steps = [row["step"] for row in state["log_history"] if "loss" in row]
    assert loss_steps == sorted(set(loss_steps)), f"duplicated or out-of-order steps: {loss_steps}"
    assert loss_steps[-1] == MAX_STEPS


def test_changed_params_after_a_finished_run_start_fresh(workspace: Path, repo_root: Path) -> None:
    cmd = _script(repo_root, workspace, "--model", "codet5p")
    assert subprocess.run(cmd, cwd=workspace, capture_output=True, timeout=600).returncode == 0
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["training"]["learning_rate"] = 0.001
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert subprocess.run(cmd, cwd=workspace, capture_output=True, timeout=600).returncode == 0
    metrics = json.loads((workspace / "metrics/train_base.json").read_text())["codet5p"]
    assert metrics["resumed_from"] is None and metrics["learning_rate"] == 0.001


def _run_with_params(workspace: Path, repo_root: Path, edit) -> subprocess.CompletedProcess[str]:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    edit(params)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run(
        _script(repo_root, workspace), cwd=workspace, capture_output=True, text=True, timeout=120
    )


def test_bad_training_params_exit_2_with_one_line_each_before_training(
    workspace: Path, repo_root: Path
) -> None:
    def edit(params: dict) -> None:
        params["training"]["batch_size"] = 0
        params["models"]["phi2"]["tiny"]["hidden_size"] = 96

    result = _run_with_params(workspace, repo_root, edit)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: models.phi2.tiny.hidden_size must be a multiple of 64 (got 96)",
        "error: params.yaml: training.batch_size must be >= 1 (got 0)",
    ]
    assert not (workspace / "models").exists()


def test_packing_for_a_seq2seq_model_is_refused(workspace: Path, repo_root: Path) -> None:
    def edit(params: dict) -> None:
        params["models"]["codet5p"]["training"] = {"packing": True}

    result = _run_with_params(workspace, repo_root, edit)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: models.codet5p.training.packing is for the causal family only (models.codet5p "
        "is seq2seq)"
    ]
