from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from aistudio.errors import UserError
from aistudio.training.checkpoints import last_complete_checkpoint, prepare_checkpoint_dir


def _checkpoint(root: Path, step: int, complete: bool = True, corrupt: bool = False) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(path / "model.safetensors"))
    if corrupt:
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_latest_complete_checkpoint_is_chosen(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 10)
    latest = _checkpoint(tmp_path, 20)
    assert last_complete_checkpoint(tmp_path) == latest


def test_interrupted_save_falls_back_to_the_previous_checkpoint(tmp_path: Path, caplog) -> None:
    previous = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, complete=False)
    assert last_complete_checkpoint(tmp_path) == previous
    assert "checkpoint-20 is not usable" in caplog.text


def test_truncated_weights_fall_back_with_a_warning(tmp_path: Path, caplog) -> None:
    previous = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, corrupt=True)
    assert last_complete_checkpoint(tmp_path) == previous
    assert "unreadable" in caplog.text


def test_checkpoints_of_another_model_are_refused(tmp_path: Path) -> None:
    prepare_checkpoint_dir(tmp_path, "phi2", "abc")
    with pytest.raises(UserError, match="belong to model 'phi2', not 't5_small'"):
        prepare_checkpoint_dir(tmp_path, "t5_small", "abc")


def test_changed_params_start_fresh_and_same_params_keep_checkpoints(tmp_path: Path) -> None:
    prepare_checkpoint_dir(tmp_path, "phi2", "v1")
    kept = _checkpoint(tmp_path, 10)
    prepare_checkpoint_dir(tmp_path, "phi2", "v1")
    assert kept.exists()
    prepare_checkpoint_dir(tmp_path, "phi2", "v2")
    assert not kept.exists() and last_complete_checkpoint(tmp_path) is None


def test_foreign_checkpoints_without_a_fingerprint_are_refused(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 5)
    with pytest.raises(UserError, match="did not write"):
        prepare_checkpoint_dir(tmp_path, "phi2", "v1")
