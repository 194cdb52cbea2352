"""Finding the checkpoint to resume from, and refusing checkpoints that are not ours to resume.

Trainer writes `trainer_state.json` last, so a checkpoint without it (or whose weights cannot be
read) was interrupted mid-save: we fall back to the previous one with a warning.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from safetensors import safe_open

from aistudio.errors import UserError

log = logging.getLogger(__name__)
FINGERPRINT_FILE = "aistudio_fingerprint.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")


def _is_complete(checkpoint: Path) -> str | None:
    """None when the checkpoint can be resumed from, else why not."""
    state = checkpoint / "trainer_state.json"
    if not state.exists():
        return "no trainer_state.json (interrupted while saving)"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights = [checkpoint / name for name in _WEIGHTS if (checkpoint / name).exists()]
    weights += sorted(checkpoint.glob("model-*.safetensors"))
    if not weights:
        return "no safetensors weights"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as exc:  # safetensors raises several error types for truncated files
            return f"{path.name} is unreadable ({type(exc).__name__})"
    return None


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
