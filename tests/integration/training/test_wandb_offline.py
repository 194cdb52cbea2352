"""`training.report_to: [mlflow, wandb]` offline: a local W&B run with the same metrics as MLflow.

The W&B run is read back from its own transaction log (`run-<id>.wandb`, the file `wandb sync`
uploads): records in LevelDB's log framing, each a `wandb_internal_pb2.Record` protobuf.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from aistudio.config import load_mlflow_config, load_params
from aistudio.training.stages import train_base_model

pytestmark = pytest.mark.slow

MODEL = "wandb_tiny"
_BLOCK, _CHUNK_HEADER = 32 * 1024, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_wandb_log(path: Path) -> list[object]:
    """Every record of an offline run's transaction log, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pending, pos = [], b"", 7
    while pos + _CHUNK_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind in (_FULL, _FIRST):
            pending = chunk
        elif kind in (_MIDDLE, _LAST):
            pending += chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _key(item: object) -> str:
    return item.key or "/".join(item.nested_key)


def wandb_metrics(path: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, float]]:
    """(history: key → [(step, value)], summary: key → value), W&B's own `_` keys left out."""
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    summary: dict[str, float] = {}
    for record in read_wandb_log(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                if not _key(item).startswith("_"):
                    history[_key(item)].append((record.history.step.num, json.loads(item.value_json)))
        elif kind == "summary":
            for item in record.summary.update:
                summary[_key(item)] = json.loads(item.value_json)
    return dict(history), summary


def mlflow_metrics(db: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT key, step, value FROM metrics WHERE run_uuid = ? ORDER BY key, step, timestamp", (run_id,)
        ).fetchall()
    found: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, step, value in rows:
        found[key].append((int(step), float(value)))
    return dict(found)


def test_report_to_wandb_offline_writes_a_local_run_with_the_same_metrics_as_mlflow(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, single_torch_thread: None
) -> None:
    params_file = workspace / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["models"] = {MODEL: {"family": "causal", "init": "tiny"}}
    params["training"]["report_to"] = ["mlflow", "wandb"]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    wandb_dir = workspace / ".wandb"
    monkeypatch.setenv("WANDB_MODE", "offline")
    home = workspace / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key, sub in (
        ("WANDB_DIR", ""),
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
    ):
        monkeypatch.setenv(key, str(wandb_dir / sub))

    result = train_base_model(
        load_params(params_file), MODEL, Path("data/processed"), load_mlflow_config("mlflow.yaml")
    )

    (log,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    history, summary = wandb_metrics(log)
    with sqlite3.connect(workspace / "mlflow.db") as connection:
        ((run_id,),) = connection.execute(
            "SELECT run_uuid FROM runs WHERE name = ?", (f"train_base-{MODEL}",)
        )
        tags = dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
    in_mlflow = mlflow_metrics(workspace / "mlflow.db", run_id)
    assert tags["aistudio.wandb_run_id"] == log.stem.removeprefix("run-")

    # W&B keeps one value per key and step (the last logged); the trainer evaluates twice at the
    # final step (the eval_steps one and the closing evaluate), which MLflow keeps as two rows.
    per_step = {k: list(dict(v).items()) for k, v in in_mlflow.items() if not k.startswith("final_")}
    assert {"loss", "eval_loss", "learning_rate", "tokens_per_second"} <= set(per_step)
    assert history == per_step  # every key, every step, every value
    final = {k: v[-1][1] for k, v in in_mlflow.items() if k.startswith("final_")}
    assert final["final_global_step"] == result["global_step"] == 16
    assert {k: summary[k] for k in final} == final
    assert [p for p in home.rglob("*") if "wandb" in p.name.lower()] == []  # nothing under ~
