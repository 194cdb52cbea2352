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
    # W&B writes runs locally; `wandb sync .wandb/wandb/offline-run-*` uploads them when wanted.
    "WANDB_MODE": "offline",
    # Artifacts go through the MLflow server's proxy, as the manifests promise: a client needs the
    # tracking URI and nothing else. Left to itself, MLflow 3 hands out presigned bucket URLs to
    # clients of an S3-backed server, which then need a network path to the bucket itself.
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
}
# W&B's run, settings, artifact-cache and staging dirs, relative to the repository root.
WANDB_DIRS: dict[str, str] = {
    "WANDB_DIR": ".wandb",
    "WANDB_CONFIG_DIR": ".wandb/config",
    "WANDB_CACHE_DIR": ".wandb/cache",
    "WANDB_DATA_DIR": ".wandb/data",
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
    for key, relative in WANDB_DIRS.items():
        os.environ.setdefault(key, str(root / relative))
