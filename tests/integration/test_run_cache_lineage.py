"""Run-cache restores keep a pipeline's MLflow view whole: real `dvc repro` (its own cache) on a
two-stage DAG whose stages record their runs through aistudio.lineage, and a real sqlite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from aistudio import layout, lineage, tracking
from aistudio.config import MlflowConfig
from aistudio.repro import repro

BIN = Path(sys.executable).parent

# A stage of the toy DAG: reads its input, writes its output, one MLflow run, its lineage recorded.
STAGE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import yaml

    from aistudio import lineage, tracking
    from aistudio.config import MlflowConfig

    stage, source, out = sys.argv[1:4]
    cfg = MlflowConfig(tracking_uri="sqlite:///mlflow.db", experiment="lineage")
    section = yaml.safe_load(Path("params.yaml").read_text())[stage]
    with lineage.record_stage(cfg, stage):
        with tracking.stage_run(cfg, stage, section, run_name=stage):
            text = Path(source).read_text() if source != "-" else ""
            Path(out).write_text(text + f"{stage} {section}\\n")
            tracking.log_metrics({"value": section["value"]})
    """
)


def _dvc_yaml() -> dict:
    def stage(name: str, source: str, out: str) -> dict:
        return {
            "cmd": f"python stage.py {name} {source} {out}",
            "deps": ["stage.py", *([source] if source != "-" else [])],
            "params": [name],
            "outs": [out],
            "metrics": [{layout.lineage_file(name).as_posix(): {"cache": False}}],
        }

    return {
        "stages": {
            "first": stage("first", "-", "first.txt"),
            "second": stage("second", "first.txt", "second.txt"),
        }
    }


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stage.py").write_text(STAGE_SCRIPT)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(_dvc_yaml(), sort_keys=False))
    _set_params(repo, first=1, second=1)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {repo / '.dvc' / 'cache'}\n")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "toy"], cwd=repo, check=True)
    return repo


def _set_params(repo: Path, first: int, second: int) -> None:
    (repo / "params.yaml").write_text(
        yaml.safe_dump({"first": {"value": first}, "second": {"value": second}})
    )


def _env(pipeline: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop(tracking.PIPELINE_ENV, None)
    if pipeline:
        env[tracking.PIPELINE_ENV] = pipeline
    return env


def _dvc(repo: Path, *args: str, pipeline: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, timeout=300, env=_env(pipeline)
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def _runs(repo: Path, pipeline: str) -> dict[str, dict[str, str]]:
    """run name -> tags, of every run tagged with `pipeline`."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lineage")
    runs = lineage.pipeline_runs(client, experiment.experiment_id, pipeline)
    return {run.info.run_name: {"run_id": run.info.run_id, **run.data.tags} for run in runs}


def _cfg(repo: Path) -> MlflowConfig:
    # Absolute: MLflow keeps one store per URI in the process, so a relative sqlite URI would keep
    # writing to the database of the test that opened it first.
    return MlflowConfig(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}", experiment="lineage")


def _recorded(repo: Path, stage: str) -> str:
    """The run id `dvc metrics show` reports for the stage's lineage."""
    shown = json.loads(_dvc(repo, "metrics", "show", "--json"))
    files = shown[""]["data"]
    return files[layout.lineage_file(stage).as_posix()]["data"]["runs"][stage]["run_id"]


def test_a_stage_that_runs_links_the_upstream_stage_dvc_restored_from_its_run_cache(toy_repo: Path) -> None:
    _dvc(toy_repo, "repro", pipeline="p1")
    first_p1 = _runs(toy_repo, "p1")["first"]["run_id"]
    _set_params(toy_repo, first=2, second=1)
    _dvc(toy_repo, "repro", pipeline="p2")
    # Back to first's old params (restored from the run-cache) and new ones for second (runs).
    _set_params(toy_repo, first=1, second=3)
    out = _dvc(toy_repo, "repro", pipeline="p3")
    assert "Stage 'first' is cached - skipping run" in out

    runs = _runs(toy_repo, "p3")
    assert set(runs) == {"first-restored", "second"}
    link = runs["first-restored"]
    assert link[lineage.RESTORED_FROM_TAG] == first_p1 == _recorded(toy_repo, "first")
    assert link[tracking.STAGE_TAG] == "first"
    assert link[lineage.RESTORED_PIPELINE_TAG] == "p1"
    assert link[lineage.LINK_REASON_TAG] == lineage.UPSTREAM
    assert link[lineage.LINKED_BY_TAG] == "second"
    assert runs["second"]["run_id"] == _recorded(toy_repo, "second")


def test_a_trailing_stage_restored_from_the_run_cache_is_linked_after_the_repro(
    toy_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dvc(toy_repo, "repro", pipeline="p1")
    first_p1, second_p1 = (_runs(toy_repo, "p1")[name]["run_id"] for name in ("first", "second"))
    _set_params(toy_repo, first=1, second=2)
    _dvc(toy_repo, "repro", pipeline="p2")  # second runs again; first is unchanged
    _set_params(toy_repo, first=1, second=1)  # second's old params: restored, nothing runs

    monkeypatch.chdir(toy_repo)
    monkeypatch.setenv("PATH", _env()["PATH"])
    cfg = _cfg(toy_repo)
    result = repro([], cfg, pipeline="p3")

    assert result.returncode == 0
    runs = _runs(toy_repo, "p3")
    assert set(runs) == {"first-restored", "second-restored"}
    assert runs["second-restored"][lineage.RESTORED_FROM_TAG] == second_p1 == _recorded(toy_repo, "second")
    assert runs["second-restored"][lineage.LINK_REASON_TAG] == lineage.RUN_CACHE
    # first fed the restored stage, so the pipeline shows where its output came from too.
    assert runs["first-restored"][lineage.RESTORED_FROM_TAG] == first_p1 == _recorded(toy_repo, "first")
    assert runs["first-restored"][lineage.LINK_REASON_TAG] == lineage.UPSTREAM

    again = repro([], cfg, pipeline="p3")  # a no-op repro under the same id links nothing twice
    assert again.linked == [] and set(_runs(toy_repo, "p3")) == set(runs)
    assert repro([], cfg, pipeline="p4").linked == []  # nor does a no-op under a new id


def test_a_run_cache_restore_after_removing_the_outputs_is_linked(toy_repo: Path, monkeypatch) -> None:
    _dvc(toy_repo, "repro", pipeline="p1")
    recorded = {name: run["run_id"] for name, run in _runs(toy_repo, "p1").items()}
    for path in ("first.txt", "second.txt", layout.LINEAGE_DIR.as_posix()):
        subprocess.run(["rm", "-rf", path], cwd=toy_repo, check=True)

    monkeypatch.chdir(toy_repo)
    monkeypatch.setenv("PATH", _env()["PATH"])
    cfg = _cfg(toy_repo)
    repro([], cfg, pipeline="p2")

    runs = _runs(toy_repo, "p2")
    assert {name: run[lineage.RESTORED_FROM_TAG] for name, run in runs.items()} == {
        f"{name}-restored": run_id for name, run_id in recorded.items()
    }
    assert (toy_repo / "second.txt").read_text() == "first {'value': 1}\nsecond {'value': 1}\n"
