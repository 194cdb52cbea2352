from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aistudio.errors import UserError
from aistudio.training.checkpoints import (
    adapter_checkpoint_dir,
    consolidate_checkpoint,
    last_complete_checkpoint,
    prepare_checkpoint_dir,
)


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


def _sharded_checkpoint(root: Path, step: int, weights: dict[str, torch.Tensor]) -> Path:
    """The layout FSDP's SHARDED_STATE_DICT leaves: torch distributed-checkpoint dirs, model keyed "model"."""
    import torch.distributed.checkpoint as dcp

    path = root / f"checkpoint-{step}"
    dcp.save({"model": weights}, checkpoint_id=str(path / "pytorch_model_fsdp_0"), no_dist=True)
    dcp.save(
        {"optimizer": {"step": torch.tensor(float(step))}},
        checkpoint_id=str(path / "optimizer_0"),
        no_dist=True,
    )
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_a_sharded_checkpoint_without_safetensors_is_resumable(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 10)
    sharded = _sharded_checkpoint(tmp_path, 20, {"w": torch.ones(4)})
    assert last_complete_checkpoint(tmp_path) == sharded


def test_a_sharded_checkpoint_missing_its_metadata_or_a_shard_falls_back(tmp_path: Path, caplog) -> None:
    previous = _sharded_checkpoint(tmp_path, 10, {"w": torch.ones(4)})
    no_metadata = _sharded_checkpoint(tmp_path, 20, {"w": torch.ones(4)})
    (no_metadata / "optimizer_0" / ".metadata").unlink()
    assert last_complete_checkpoint(tmp_path) == previous
    assert "optimizer_0/.metadata is missing or unreadable" in caplog.text
    no_shard = _sharded_checkpoint(tmp_path, 30, {"w": torch.ones(4)})
    next((no_shard / "pytorch_model_fsdp_0").glob("*.distcp")).unlink()
    assert last_complete_checkpoint(tmp_path) == previous
    assert "pytorch_model_fsdp_0/__0_0.distcp is missing" in caplog.text


def test_a_truncated_shard_falls_back(tmp_path: Path, caplog) -> None:
    previous = _sharded_checkpoint(tmp_path, 10, {"w": torch.ones(4)})
    broken = _sharded_checkpoint(tmp_path, 20, {"w": torch.ones(1024)})
    shard = next((broken / "pytorch_model_fsdp_0").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])
    assert last_complete_checkpoint(tmp_path) == previous
    assert "__0_0.distcp is truncated" in caplog.text


def test_a_named_adapter_in_its_sub_folder_counts_as_weights(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-5"
    (path / "code").mkdir(parents=True)
    save_file({"lora_A": torch.zeros(2, 2)}, str(path / "code" / "adapter_model.safetensors"))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    assert last_complete_checkpoint(tmp_path) == path
    assert adapter_checkpoint_dir(path, "code") == path / "code"
    assert adapter_checkpoint_dir(path, "creative") is None
    assert adapter_checkpoint_dir(path, "default") is None


def test_consolidation_merges_a_sharded_checkpoint_into_one_safetensors_file(tmp_path: Path) -> None:
    weights = {"model.embed.weight": torch.randn(8, 4), "lm_head.weight": torch.randn(8, 4)}
    checkpoint = _sharded_checkpoint(tmp_path / "run", 4, weights)
    merged = load_file(consolidate_checkpoint(checkpoint, tmp_path / "merged"))
    assert merged.keys() == weights.keys()
    assert all(torch.equal(merged[k], weights[k]) for k in weights)


def test_consolidating_a_checkpoint_that_is_not_sharded_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a sharded checkpoint"):
        consolidate_checkpoint(_checkpoint(tmp_path, 3), tmp_path / "merged")
