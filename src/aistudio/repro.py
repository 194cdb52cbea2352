"""`dvc repro` under one pipeline id, with the stages DVC restored linked into it afterwards.

What `make pipeline` (scripts/run_pipeline.py) and scripts/train_models.py run: DVC still decides
what runs and what its caches restore; this adds the pipeline id every stage's MLflow run carries
and, after the repro, the link runs for stages restored at the end of the DAG (aistudio.lineage).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aistudio import layout, lineage, tracking
from aistudio.config import MlflowConfig, read_yaml
from aistudio.errors import UserError

log = logging.getLogger(__name__)

AFTER_REPRO = "dvc repro"  # the linked_by of the links made after the repro


@dataclass(frozen=True)
class ReproResult:
    returncode: int
    pipeline: str
    linked: list[lineage.LinkedRun]


def new_pipeline_id() -> str:
    return f"repro-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def dvc_stages(root: Path = Path(".")) -> list[str]:
    """The stage names dvc.yaml defines (a matrix stage once, by its name)."""
    path = Path(root) / layout.DVC_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; run from the repository root")
    return list((read_yaml(path) or {}).get("stages") or {})


def chain_until(
    until: str | None, defined: Sequence[str], chain: Sequence[str] = layout.TRAINING_STAGES
) -> list[str]:
    """The stages of `chain` that dvc.yaml defines, up to and including `until` (default: all)."""
    present = [stage for stage in chain if stage in defined]
    if until is None:
        return present
    if until not in chain:
        raise UserError(f"--until '{until}' is not a training stage; choose one of {', '.join(chain)}")
    if until not in present:
        raise UserError(
            f"--until '{until}': dvc.yaml has no such stage; choose one of {', '.join(present) or 'none'}"
        )
    return present[: present.index(until) + 1]


def repro(
    targets: Sequence[str],
    mlflow_cfg: MlflowConfig,
    dvc_args: Sequence[str] = (),
    pipeline: str | None = None,
    root: Path = Path("."),
) -> ReproResult:
    """`dvc repro [dvc_args] [targets]` with AISTUDIO_PIPELINE_ID set, then link the stages whose
    lineage DVC rewrote without running them (restored from its run-cache) into the pipeline."""
    pipeline = pipeline or os.environ.get(tracking.PIPELINE_ENV) or new_pipeline_id()
    before = lineage.lineage_state(root)
    env = {**os.environ, tracking.PIPELINE_ENV: pipeline}
    log.info("pipeline %s: dvc repro %s", pipeline, " ".join([*dvc_args, *targets]))
    code = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", *dvc_args, *targets], cwd=root, env=env, check=False
    ).returncode
    # Also after a failed repro: what was restored before the failure belongs to this pipeline too.
    rewritten = lineage.rewritten_lineage(before, root)
    linked = lineage.link_restored(mlflow_cfg, rewritten, pipeline, AFTER_REPRO, root)
    return ReproResult(code, pipeline, linked)
