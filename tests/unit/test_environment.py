from __future__ import annotations

import os
from pathlib import Path

import pytest

from aistudio.environment import OFFLINE_DEFAULTS, WANDB_DIRS, apply_offline_defaults


def test_offline_defaults_keep_caches_inside_the_repo_and_respect_user_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (*OFFLINE_DEFAULTS, *WANDB_DIRS, "HF_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "0")  # a user's explicit choice wins
    apply_offline_defaults(tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["DVC_NO_ANALYTICS"] == "0"
    assert os.environ["WANDB_MODE"] == "offline"
    for key in ("HF_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", *WANDB_DIRS):
        assert Path(os.environ[key]).is_relative_to(tmp_path), key
