"""Which process of a distributed launch (accelerate/torchrun) may write files and MLflow runs."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    # accelerate and torchrun both export RANK; a plain run is rank 0.
    return int(os.environ.get("RANK", "0")) == 0


def launched_world_size() -> int:
    """Processes in this launch as the launcher exported it; 1 for a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))
