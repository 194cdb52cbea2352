"""Finding the checkpoint to resume from, and refusing checkpoints that are not ours to resume.

Trainer writes `trainer_state.json` last, so a checkpoint without it (or whose weights cannot be
read) was interrupted mid-save: we fall back to the previous one with a warning.

A checkpoint holds its weights in one of three layouts, and each is checked for completeness:
- safetensors: `model.safetensors` (or `model-*.safetensors` shards) for a full model,
  `adapter_model.safetensors` for a LoRA adapter (PEFT puts a named adapter in `<name>/`);
  every tensor must be readable.
- sharded (FSDP with SHARDED_STATE_DICT): `pytorch_model_fsdp_0/` and `optimizer_0/`, torch
  distributed-checkpoint directories, one `__<rank>_0.distcp` file per rank. Their `.metadata`
  is written last, by rank 0, once every rank has written its shard; every byte range it lists
  must be present. `consolidate_checkpoint` merges such a checkpoint into one safetensors file.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from safetensors import safe_open
from transformers.utils import ADAPTER_SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_NAME

from aistudio.errors import UserError

log = logging.getLogger(__name__)
FINGERPRINT_FILE = "aistudio_fingerprint.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# transformers' names for the sharded model and optimizer directories of an FSDP checkpoint.
SHARDED_MODEL_DIR = "pytorch_model_fsdp_0"
_SHARDED_DIRS = re.compile(r"^(pytorch_model_fsdp|optimizer)_\d+$")


def _safetensors_weights(checkpoint: Path) -> list[Path]:
    weights = [checkpoint / name for name in (SAFE_WEIGHTS_NAME, ADAPTER_SAFE_WEIGHTS_NAME)]
    weights += [sub / ADAPTER_SAFE_WEIGHTS_NAME for sub in checkpoint.iterdir() if sub.is_dir()]
    return [p for p in weights if p.is_file()] + sorted(checkpoint.glob("model-*.safetensors"))


def _sharded_dirs(checkpoint: Path) -> list[Path]:
    return sorted(p for p in checkpoint.iterdir() if p.is_dir() and _SHARDED_DIRS.match(p.name))


def _unreadable_safetensors(path: Path, checkpoint: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                handle.get_slice(key)
    except Exception as exc:  # safetensors raises several error types for truncated files
        return f"{path.relative_to(checkpoint)} is unreadable ({type(exc).__name__})"
    return None


def _incomplete_shards(directory: Path) -> str | None:
    from torch.distributed.checkpoint import FileSystemReader

    try:
        metadata = FileSystemReader(str(directory)).read_metadata()
    except Exception as exc:  # a missing or truncated .metadata fails to open or to unpickle
        return f"{directory.name}/.metadata is missing or unreadable ({type(exc).__name__})"
    for item in metadata.storage_data.values():
        shard = directory / item.relative_path
        if not shard.is_file():
            return f"{directory.name}/{item.relative_path} is missing"
        if shard.stat().st_size < item.offset + item.length:
            return f"{directory.name}/{item.relative_path} is truncated"
    return None


def _is_complete(checkpoint: Path) -> str | None:
    """None when the checkpoint can be resumed from, else why not."""
    state = checkpoint / "trainer_state.json"
    if not state.exists():
        return "no trainer_state.json (interrupted while saving)"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights, sharded = _safetensors_weights(checkpoint), _sharded_dirs(checkpoint)
    if not weights and not (checkpoint / SHARDED_MODEL_DIR).is_dir():
        return "no safetensors weights and no sharded model"
    problems = [_unreadable_safetensors(path, checkpoint) for path in weights]
    problems += [_incomplete_shards(directory) for directory in sharded]
    return next((p for p in problems if p is not None), None)


def adapter_checkpoint_dir(checkpoint: Path, adapter: str) -> Path | None:
    """Where a checkpoint holds adapter `adapter`: PEFT writes `default` at the top, others in `<name>/`."""
    candidates = [checkpoint] if adapter == "default" else [checkpoint / adapter, checkpoint]
    return next((c for c in candidates if (c / ADAPTER_SAFE_WEIGHTS_NAME).is_file()), None)


def consolidate_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Merge a sharded (FSDP) checkpoint's model into `out_dir/model.safetensors`, in one process.

    The same merge as `accelerate merge-weights`; refuses an incomplete checkpoint first.
    """
    from accelerate.utils import merge_fsdp_weights

    sharded = checkpoint / SHARDED_MODEL_DIR
    if not sharded.is_dir():
        raise UserError(f"{checkpoint}: not a sharded checkpoint (no {SHARDED_MODEL_DIR}/)")
    problem = _incomplete_shards(sharded)
    if problem is not None:
        raise UserError(f"{checkpoint}: cannot consolidate, {problem}")
    out_dir.mkdir(parents=True, exist_ok=True)
    merge_fsdp_weights(str(sharded), str(out_dir), safe_serialization=True)
    return out_dir / SAFE_WEIGHTS_NAME


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The newest resumable checkpoint-N under `directory`, skipping broken ones with a warning."""
    if not directory.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    for _, checkpoint in reversed(found):
        problem = _is_complete(checkpoint)
        if problem is None:
            return checkpoint
        log.warning("checkpoint %s is not usable (%s); falling back to the previous one", checkpoint, problem)
    return None


def prepare_checkpoint_dir(directory: Path, model: str, fingerprint: str) -> None:
    """Make `directory` safe to resume from.

    Checkpoints of another base model are an error; checkpoints of this model trained with other
    params or data are stale and removed, so the new run starts fresh.
    """
    marker = directory / FINGERPRINT_FILE
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("model") != model:
            raise UserError(
                f"{directory}: checkpoints belong to model '{recorded.get('model')}', not '{model}'; "
                "remove the directory or point this model elsewhere"
            )
        if recorded.get("fingerprint") == fingerprint:
            return
        log.info("params or data changed since the checkpoints in %s were written; starting fresh", directory)
        shutil.rmtree(directory)
    elif directory.is_dir() and any(directory.iterdir()):
        if any(_CHECKPOINT.match(p.name) for p in directory.iterdir()):
            raise UserError(
                f"{directory}: holds checkpoints this project did not write ({FINGERPRINT_FILE} missing)"
            )
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"model": model, "fingerprint": fingerprint}, sort_keys=True) + "\n")
