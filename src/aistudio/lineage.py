"""Which MLflow run made each stage's outputs, kept whole when DVC skips a stage.

A stage records the runs it starts in its lineage file (`layout.lineage_file`, a `cache: false`
metrics output of the stage, so `dvc metrics show` lists the run ids). When `dvc repro` restores a
stage from DVC's run-cache our script does not run at all, but DVC restores that file with the
ids of the runs that really made the outputs. The stage is then *linked* into the pipeline it was
restored in: a small MLflow run tagged with this pipeline's id, the stage and
`aistudio.restored_from=<original run id>`, carrying the original's params and metrics (its
artifacts stay with the original). Links are made

- by each stage that runs, for its upstream stages (DVC's graph) whose runs are not in this
  pipeline yet: restored from the run-cache, or unchanged and reused (reason `upstream`);
- by `scripts/run_pipeline.py` (`make pipeline`) after `dvc repro`, for every stage whose lineage
  file DVC rewrote during the repro without our script running (reason `run-cache`): the trailing
  stages no later stage links.

Linking is idempotent per pipeline id: a run already in the pipeline, or already linked into it,
is skipped. So a pipeline id's MLflow view has every stage that ran, was restored or fed one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio import layout, tracking
from aistudio.config import MlflowConfig
from aistudio.io import write_json
from aistudio.training.distributed import is_main_process

log = logging.getLogger(__name__)

RESTORED_FROM_TAG = "aistudio.restored_from"
RESTORED_PIPELINE_TAG = "aistudio.restored_from_pipeline"
LINK_REASON_TAG = "aistudio.link_reason"
LINKED_BY_TAG = "aistudio.linked_by"
DVC_STAGE_TAG = "aistudio.dvc_stage"
UPSTREAM, RUN_CACHE = "upstream", "run-cache"
# The name DVC exports to a stage's command: its address (finetune_domain_models@phi2-code).
DVC_STAGE_ENV = "DVC_STAGE"
_NOT_COPIED_TAGS = (tracking.PIPELINE_TAG, "mlflow.")
_PARAMS_PER_BATCH, _METRICS_PER_BATCH = 100, 1000


@dataclass(frozen=True)
class Lineage:
    """One DVC stage's record: the runs that made its outputs, by run name."""

    address: str
    runs: tuple[tracking.StartedRun, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.address,
            "runs": {run.name: {"run_id": run.run_id, "pipeline_id": run.pipeline_id} for run in self.runs},
        }


@dataclass(frozen=True)
class LinkedRun:
    address: str
    run_id: str
    restored_from: str
    reason: str


def write_lineage(address: str, runs: Iterable[tracking.StartedRun], path: Path) -> Lineage:
    """Record `runs` for `address`, keeping the runs of the record already there under other names
    (a partial `--model` run replaces only its models; under `dvc repro` the file starts empty)."""
    previous = read_lineage(path)
    kept = {run.name: run for run in previous.runs} if previous and previous.address == address else {}
    kept.update({run.name: run for run in runs})
    lineage = Lineage(address, tuple(kept.values()))
    write_json(path, lineage.to_json())
    return lineage


def _started_run(name: str, entry: Any) -> tracking.StartedRun | None:
    if isinstance(entry, dict) and isinstance(entry.get("run_id"), str):
        return tracking.StartedRun(str(name), entry["run_id"], str(entry.get("pipeline_id", "")))
    return None


def read_lineage(path: Path) -> Lineage | None:
    """The record in `path`, or None when there is none (never ran, or not a lineage file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("%s: not a lineage record (%s); its stage is not linked", path, err)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict) or "stage" not in data:
        log.warning("%s: not a lineage record (no stage and runs); its stage is not linked", path)
        return None
    runs = [_started_run(name, entry) for name, entry in data["runs"].items()]
    return Lineage(str(data["stage"]), tuple(run for run in runs if run is not None))


def lineage_files(root: Path = Path(".")) -> list[Path]:
    directory = Path(root) / layout.LINEAGE_DIR
    return sorted(directory.rglob("*.json")) if directory.is_dir() else []


# --- what the stages upstream of this one are ---------------------------------------------------------


def upstream_addresses(addresses: Iterable[str], root: Path = Path(".")) -> set[str]:
    """Every stage one of `addresses` depends on, directly or not, as DVC's graph of dvc.yaml has it."""
    import networkx as nx
    from dvc.repo import Repo  # a second to import and read the graph; only done when linking

    with Repo(str(root)) as repo:
        stages = {stage.addressing: stage for stage in repo.index.stages}
        graph = repo.index.graph
        # DVC's edges point from a stage to the stages it depends on.
        return {
            upstream.addressing
            for address in addresses
            if address in stages
            for upstream in nx.descendants(graph, stages[address])
        }


# --- linking ------------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pipeline_runs(client: Any, experiment_id: str, pipeline: str) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tracking.PIPELINE_TAG}` = {_quoted(pipeline)}",
            max_results=1000,
            page_token=token,
        )
        found += list(page)
        token = page.token
        if not token:
            return found


def covered_run_ids(runs: Iterable[Any]) -> set[str]:
    """The runs a pipeline already shows: its own, and those its link runs point at."""
    covered = set()
    for run in runs:
        covered.add(run.info.run_id)
        if RESTORED_FROM_TAG in run.data.tags:
            covered.add(run.data.tags[RESTORED_FROM_TAG])
    return covered


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _link_run(
    client: Any,
    experiment_id: str,
    cfg: MlflowConfig,
    address: str,
    recorded: tracking.StartedRun,
    pipeline: str,
    reason: str,
    linked_by: str,
) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    original_id = recorded.run_id
    try:
        original = client.get_run(original_id)
    except MlflowException:
        original = None  # e.g. a teammate's run-cache from another tracking store
    tags_of_original = original.data.tags if original else {}
    copied = {k: v for k, v in tags_of_original.items() if not k.startswith(_NOT_COPIED_TAGS)}
    where = "its artifacts are there" if original else "that run is not in this tracking store"
    tags = {
        **cfg.tags,
        tracking.STAGE_TAG: address.partition(layout.MATRIX_SEPARATOR)[0],
        **copied,
        tracking.PIPELINE_TAG: pipeline,
        DVC_STAGE_TAG: address,
        RESTORED_FROM_TAG: original_id,
        RESTORED_PIPELINE_TAG: recorded.pipeline_id,
        LINK_REASON_TAG: reason,
        LINKED_BY_TAG: linked_by,
        "mlflow.note.content": (
            f"DVC reused the output of run {original_id} (pipeline {recorded.pipeline_id}) in pipeline "
            f"{pipeline} instead of running {address} again; {where}."
        ),
    }
    run = client.create_run(experiment_id, run_name=f"{recorded.name}-restored", tags=tags)
    run_id = run.info.run_id
    if original is not None:
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in original.data.params.items()]
        metrics = [Metric(k, float(v), now, 0) for k, v in original.data.metrics.items()]
        for batch in _chunks(params, _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=batch)
        for batch in _chunks(metrics, _METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    return run_id


def link_into_pipeline(
    cfg: MlflowConfig, lineages: Iterable[Lineage], pipeline: str, reason: str, linked_by: str
) -> list[LinkedRun]:
    """A link run in `pipeline` for every recorded run the pipeline does not show yet."""
    pending = [(lineage, run) for lineage in lineages for run in lineage.runs if run.pipeline_id != pipeline]
    if not pending:
        return []
    from mlflow import MlflowClient

    tracking.configure(cfg)
    client = MlflowClient(cfg.tracking_uri)
    experiment_id = client.get_experiment_by_name(cfg.experiment).experiment_id
    covered = covered_run_ids(pipeline_runs(client, experiment_id, pipeline))
    linked = []
    for lineage, original in pending:
        if original.run_id in covered:
            continue
        run_id = _link_run(client, experiment_id, cfg, lineage.address, original, pipeline, reason, linked_by)
        covered.add(original.run_id)
        linked.append(LinkedRun(lineage.address, run_id, original.run_id, reason))
        log.info(
            "%s: run %s linked into pipeline %s (%s)", lineage.address, original.run_id, pipeline, reason
        )
    return linked


def _outside(lineage: Lineage, pipeline: str) -> bool:
    return any(run.pipeline_id != pipeline for run in lineage.runs)


def link_upstream(
    cfg: MlflowConfig, addresses: Iterable[str], pipeline: str, linked_by: str, root: Path = Path(".")
) -> list[LinkedRun]:
    """Link the stages upstream of `addresses` whose runs `pipeline` does not show yet."""
    recorded = [lineage for path in lineage_files(root) if (lineage := read_lineage(path)) is not None]
    if not any(_outside(lineage, pipeline) for lineage in recorded):
        return []  # everything on disk ran in this pipeline: no need to ask DVC for the graph
    upstream = upstream_addresses(addresses, root)
    return link_into_pipeline(
        cfg, [lineage for lineage in recorded if lineage.address in upstream], pipeline, UPSTREAM, linked_by
    )


def link_dvc_upstream(cfg: MlflowConfig | None, root: Path = Path(".")) -> list[LinkedRun]:
    """Under `dvc repro` (which names the running stage in DVC_STAGE), on rank 0: link_upstream."""
    address = os.environ.get(DVC_STAGE_ENV)
    if cfg is None or not address or not is_main_process():
        return []
    return link_upstream(cfg, [address], tracking.pipeline_id(), address, root)


@contextmanager
def record_stage(
    cfg: MlflowConfig | None, stage: str, item: str | None = None, root: Path = Path(".")
) -> Iterator[list[tracking.StartedRun]]:
    """Around a stage's work: link the upstream stages this pipeline does not show yet, then record
    every run started inside into the stage's lineage file (rank 0 of a launch only)."""
    address = layout.stage_address(stage, item)
    link_dvc_upstream(cfg, root)
    with tracking.recording_runs() as runs:
        yield runs
    if is_main_process():
        write_lineage(address, runs, Path(root) / layout.lineage_file(address))


# --- after `dvc repro` -------------------------------------------------------------------------------

FileState = tuple[int, int, int]  # inode, mtime_ns, size


def lineage_state(root: Path = Path(".")) -> dict[Path, FileState]:
    """What each lineage file is now; a file DVC writes or restores gets a new state."""
    states = {}
    for path in lineage_files(root):
        stat = path.stat()
        states[path] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return states


def rewritten_lineage(before: Mapping[Path, FileState], root: Path = Path(".")) -> list[Lineage]:
    """The lineage records written since `before`: stages that ran, or that DVC restored."""
    after = lineage_state(root)
    changed = [path for path, state in after.items() if before.get(path) != state]
    return [lineage for path in changed if (lineage := read_lineage(path)) is not None]


def link_restored(
    cfg: MlflowConfig, rewritten: Iterable[Lineage], pipeline: str, linked_by: str, root: Path = Path(".")
) -> list[LinkedRun]:
    """After a repro: link the stages DVC rewrote without running them, and their upstream stages."""
    restored = [lineage for lineage in rewritten if _outside(lineage, pipeline)]
    if not restored:
        return []
    linked = link_into_pipeline(cfg, restored, pipeline, RUN_CACHE, linked_by)
    return linked + link_upstream(cfg, [lineage.address for lineage in restored], pipeline, linked_by, root)
