"""`dvc repro prepare_data` in a throwaway copy of the repository: outputs, metrics, MLflow run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=check, timeout=600, env=env)


@pytest.fixture(scope="module")
def prepared(make_repo_copy) -> Path:
    repo = make_repo_copy("dvc")
    result = _run([str(BIN / "dvc"), "repro", "prepare_data"], repo, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return repo


def test_repro_writes_splits_rejections_and_reconciled_metrics(prepared: Path) -> None:
    processed = prepared / "data/processed"
    for name in ("train_data.jsonl", "validation_data.jsonl", "test_data.jsonl", "rejected.jsonl"):
        assert (processed / name).stat().st_size > 0
    report = json.loads((prepared / "metrics/data_quality.json").read_text())
    assert report["reconciled"] is True
    assert report["input_records"] == report["kept_records"] + report["rejected_records"]
    for source, counts in report["per_source"].items():
        assert counts["input"] == counts["kept"] + counts["rejected"], source
    assert sum(report["rejected_by_reason"].values()) == report["rejected_records"]
    for reason in (
        "invalid_json",
        "invalid_utf8",
        "missing_columns",
        "empty_file",
        "binary_file",
        "duplicate",
        "near_duplicate",
        "mojibake",
        "too_short",
    ):
        assert report["rejected_by_reason"].get(reason, 0) > 0, reason
    assert any(r.startswith("unsafe:") for r in report["rejected_by_reason"])
    assert sum(report["pii_replacements"].values()) > 0
    for domain, counts in report["domains"].items():
        assert sum(counts.values()) >= 300, domain


def test_rejections_name_reason_source_and_line(prepared: Path) -> None:
    rows = [
        json.loads(line) for line in (prepared / "data/processed/rejected.jsonl").read_text().splitlines()
    ]
    assert rows and all(r["reason"] and r["source"].startswith("data/raw/") for r in rows)
    broken = [r for r in rows if r["reason"] == "invalid_json"]
    assert all(r["source_line"] > 0 for r in broken)


def test_dvc_metrics_show_reads_the_quality_report(prepared: Path) -> None:
    shown = _run([str(BIN / "dvc"), "metrics", "show", "--json"], prepared).stdout
    data = json.loads(shown)
    flat = json.dumps(data)
    assert "data_quality.json" in flat and "kept_records" in flat


def test_check_data_quality_passes_on_fresh_output_and_fails_on_a_leak(prepared: Path) -> None:
    script = [str(BIN / "python"), "scripts/check_data_quality.py", "--input", "data/processed/"]
    assert _run(script, prepared, check=False).returncode == 0
    leaky = prepared / "leaky"
    leaky.mkdir()
    for name in ("train", "validation", "test"):
        (leaky / f"{name}_data.jsonl").write_text(
            (prepared / f"data/processed/{name}_data.jsonl").read_text()
        )
    train_first = (leaky / "train_data.jsonl").read_text().splitlines()[0]
    with (leaky / "test_data.jsonl").open("a") as out:
        out.write(train_first.replace('"id": "', '"id": "leak') + "\n")
    result = _run([*script[:-1], str(leaky)], prepared, check=False)
    assert result.returncode == 1 and "split leak" in result.stderr


def test_the_copy_runs_with_a_dvc_cache_of_its_own(prepared: Path) -> None:
    # Sharing the working tree's cache would let a user's earlier `dvc repro` (its run-cache) decide
    # whether the stage runs here, and with it whether an MLflow run is logged.
    shown = _run([str(BIN / "dvc"), "cache", "dir"], prepared).stdout.strip()
    assert Path(shown) == prepared / ".dvc" / "cache"
    runs = [p for p in (prepared / ".dvc" / "cache" / "runs").rglob("*") if p.is_file()]
    assert len(runs) == 1  # the run this copy made, and no other


def test_mlflow_run_has_params_metrics_artifact_and_lineage(prepared: Path) -> None:
    db = sqlite3.connect(prepared / "mlflow.db")
    (run_uuid,) = db.execute("select run_uuid from runs").fetchone()
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (run_uuid,)).fetchall())
    for key in (
        "aistudio.stage",
        "aistudio.git_commit",
        "aistudio.params_hash",
        "aistudio.inputs_md5",
        "aistudio.pipeline_id",
    ):
        assert tags.get(key), key
    assert tags["aistudio.stage"] == "prepare_data" and tags["aistudio.pipeline_id"].startswith("dvc-")
    params = dict(db.execute("select key, value from params where run_uuid=?", (run_uuid,)).fetchall())
    assert params["split.validation"] == "0.1"
    metrics = {k for (k,) in db.execute("select key from metrics where run_uuid=?", (run_uuid,))}
    assert {"kept_records", "rejected_records"} <= metrics


def test_second_repro_is_a_fast_no_op_and_threshold_change_reruns_only_prepare(prepared: Path) -> None:
    start = time.perf_counter()
    again = _run([str(BIN / "dvc"), "repro", "prepare_data"], prepared)
    assert (
        "didn't change, skipping" in again.stdout
        or "is cached" in again.stdout
        or "up to date" in again.stdout
    )
    assert time.perf_counter() - start < 10
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["data"]["quality"]["min_words"] = 7
    (prepared / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_run([str(BIN / "dvc"), "status", "prepare_data", "--json"], prepared).stdout)
    assert {"changed deps": {"params.yaml": {"data": "modified"}}} in status["prepare_data"]


def test_bad_params_fail_with_exit_2_and_one_line_per_problem(prepared: Path) -> None:
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["data"]["split"]["validation"] = 1.5
    params["data"]["sources"][0]["path"] = "data/raw/nowhere/*.jsonl"
    bad = prepared / "bad_params.yaml"
    bad.write_text(yaml.safe_dump(params))
    result = _run(
        [str(BIN / "python"), "scripts/prepare_data.py", "--params", str(bad)], prepared, check=False
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: bad_params.yaml: data.split.validation must be in (0, 1) (got 1.5)"
    )
    assert "Traceback" not in result.stderr
