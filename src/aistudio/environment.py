"""Offline defaults for the whole project; applied by scripts at start-up, never on import."""

from __future__ import annotations

import os
from pathlib import Path

from aistudio.layout import PARAMS_FILE

# No hub access, no telemetry, and nothing written under the user's home directory.
OFFLINE_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def project_root() -> Path:
    """The repository root: where params.yaml lives, or the working directory."""
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / PARAMS_FILE).exists():
            return candidate
    return here


def apply_offline_defaults(root: Path | None = None) -> None:
    """Set offline/telemetry variables unless the user already chose a value."""
    root = root or project_root()
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HF_HOME", str(root / ".hf"))
    os.environ.setdefault("MPLCONFIGDIR", str(root / ".hf" / "matplotlib"))
    os.environ.setdefault("XDG_CACHE_HOME", str(root / ".cache"))
