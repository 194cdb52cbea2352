"""The training entry point under `accelerate launch` with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def test_two_gloo_processes_train_and_rank_0_saves_once(workspace: Path, repo_root: Path) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["training"].update({"max_steps": 6, "eval_steps": 3, "save_steps": 3})
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate),
        "launch",
        "--config_file",
        str(repo_root / "configs/accelerate/cpu_ddp.yaml"),
        "--main_process_port",
        "0",
        str(repo_root / "scripts/train_base_models.py"),
        "--model",
        "codet5p",
    ]
    result = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workspace / "metrics/train_base.json").read_text())
    assert metrics["codet5p"]["global_step"] == 6 and metrics["codet5p"]["world_size"] == 2
    state = json.loads(
        (workspace / "models/checkpoints/base/codet5p/checkpoint-6/trainer_state.json").read_text()
    )
    assert state["global_step"] == 6
    assert (workspace / "models/base/codet5p/model.safetensors").exists()
