"""MLflow wiring: one run per stage (or per model within a stage) with params, metrics, artifacts
and lineage tags, so any model can be traced back to its code, data and parameters. A stage whose
`report_to` names wandb gets a W&B run beside it that receives the same metrics (aistudio.wandb_run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aistudio import wandb_run
from aistudio.config import MlflowConfig
from aistudio.tracking_store import check_tracking_store

PIPELINE_ENV = "AISTUDIO_PIPELINE_ID"
STAGE_TAG = "aistudio.stage"
PIPELINE_TAG = "aistudio.pipeline_id"
# MLflow metric names allow alphanumerics and _ - . space : / only (source globs contain '*').
_INVALID_METRIC_CHARS = re.compile(r"[^\w\-. :/]")
MAX_PARAM_CHARS = 6000


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; lists and other values are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def params_hash(section: Any) -> str:
    canonical = json.dumps(section, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inputs_md5(paths: Iterable[Path]) -> str:
    """One md5 over the files of the stage's inputs (files hashed like DVC: md5 of the bytes)."""
    lines = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        lines += [f"{p.as_posix()} {file_md5(p)}" for p in files if p.exists()]
    return hashlib.md5("\n".join(sorted(lines)).encode(), usedforsecurity=False).hexdigest()


def _dvc_ancestor_id() -> str | None:
    """The pid and start time of the `dvc repro` process above us: shared by all stages of one repro."""
    pid = os.getppid()
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="ignore")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if "dvc" in cmdline and ("repro" in cmdline or "exp" in cmdline):
            return f"dvc-{pid}-{stat[19]}"
        pid = int(stat[1])
        if pid <= 1:
            return None
    return None


@cache
def _adhoc_id() -> str:
    # One per process: the runs of one script started by hand share it.
    return f"adhoc-{uuid.uuid4().hex[:12]}"


def pipeline_id() -> str:
    """Runs of one `dvc repro` share this tag: from the environment, the dvc process, or an id of
    this process."""
    return os.environ.get(PIPELINE_ENV) or _dvc_ancestor_id() or _adhoc_id()


def lineage_tags(stage: str, section: Any, inputs: Iterable[Path], root: Path) -> dict[str, str]:
    return {
        STAGE_TAG: stage,
        PIPELINE_TAG: pipeline_id(),
        "aistudio.git_commit": git_commit(root),
        "aistudio.params_hash": params_hash(section),
        "aistudio.inputs_md5": inputs_md5(inputs),
    }


def configure(cfg: MlflowConfig) -> None:
    """Point mlflow at the configured store and experiment (created with its artifact root if new).

    The store is checked first, in seconds: a server, database or bucket that is down fails the
    stage here with one line naming the tracking URI, before any work rather than after it.
    """
    import mlflow

    check_tracking_store(cfg.tracking_uri)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        mlflow.create_experiment(cfg.experiment, artifact_location=cfg.artifact_location)
    mlflow.set_experiment(cfg.experiment)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM_CHARS]


@dataclass(frozen=True)
class StartedRun:
    name: str
    run_id: str
    pipeline_id: str


_RECORDED: ContextVar[list[StartedRun] | None] = ContextVar("aistudio_recorded_runs", default=None)


@contextmanager
def recording_runs() -> Iterator[list[StartedRun]]:
    """Every run `stage_run` starts inside this block is appended to the yielded list (the lineage a
    stage writes: aistudio.lineage)."""
    runs: list[StartedRun] = []
    token = _RECORDED.set(runs)
    try:
        yield runs
    finally:
        _RECORDED.reset(token)


@contextmanager
def stage_run(
    cfg: MlflowConfig,
    stage: str,
    section: Mapping[str, Any],
    inputs: Iterable[Path] = (),
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    root: Path = Path("."),
    report_to: Collection[str] = ("mlflow",),
) -> Iterator[Any]:
    """An MLflow run carrying the stage's params section and lineage tags (and a W&B twin on request)."""
    import mlflow

    configure(cfg)
    tags = {**cfg.tags, **lineage_tags(stage, section, inputs, root), **(extra_tags or {})}
    with mlflow.start_run(run_name=run_name or f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags) as run:
        recorded = _RECORDED.get()
        if recorded is not None:
            recorded.append(StartedRun(run.info.run_name, run.info.run_id, tags[PIPELINE_TAG]))
        params = {k: _param_value(v) for k, v in flatten(section).items()}
        mlflow.log_params(params)
        twin_config = {**params, **tags, "mlflow.run_id": run.info.run_id}
        with wandb_run.wandb_run(report_to, cfg.experiment, run.info.run_name, twin_config, [stage]) as twin:
            if twin is not None:
                mlflow.set_tags({"aistudio.wandb_run_id": twin.id, "aistudio.wandb_dir": str(twin.dir)})
            yield run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log every numeric leaf of a (nested) metrics dict; booleans become 0/1."""
    import mlflow

    numeric = {
        _INVALID_METRIC_CHARS.sub("_", k): float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, str)
    }
    if numeric:
        mlflow.log_metrics(numeric, step=step)
        wandb_run.log(numeric, step)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path)


def log_table(columns: Mapping[str, list[Any]], artifact_file: str) -> None:
    """A table artifact of the active run, shown by the MLflow UI (Artifacts and Evaluation tabs)."""
    import mlflow

    mlflow.log_table(data=dict(columns), artifact_file=artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)
