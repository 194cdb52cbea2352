"""Sharded training for real: 2 CPU processes over gloo running torch FSDP2 through accelerate.

accelerate 1.15 shards only on accelerators, so the sharded runs go through `fsdp_on_cpu.py` (see
its docstring); the shipped configs/accelerate/fsdp.yaml is the config every run launches with.
Tolerance: FSDP's per-step losses match an unsharded 2-process run to 4 decimals; against one
process with the same global batch (16 = 2 x 8) they differ by rounding and per-rank padding, which
stays well under LOSS_TOLERANCE.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from safetensors.torch import load_file

from aistudio.config import load_params
from aistudio.features.store import FeatureSpec, build_features
from aistudio.modeling.loading import load_model_dir
from aistudio.training.adapters import AdapterSet
from aistudio.training.checkpoints import consolidate_checkpoint, last_complete_checkpoint
from aistudio.training.trainer import logging_interval

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[3]
FSDP_CONFIG = REPO_ROOT / "configs/accelerate/fsdp.yaml"
SHIM = Path(__file__).with_name("fsdp_on_cpu.py")
BASE_SCRIPT = REPO_ROOT / "scripts/train_base_models.py"
LOSS_TOLERANCE = 0.03  # relative, per logged step and for the final eval loss
TINY = {"hidden_size": 64, "intermediate_size": 256, "num_layers": 2, "num_heads": 4}
MODELS = {
    "tiny_causal": {"family": "causal", "init": "tiny", "tiny": {**TINY, "max_position_embeddings": 512}},
    "tiny_seq2seq": {"family": "seq2seq", "init": "tiny", "tiny": TINY},
    # Same architecture, but its threshold makes it "too small to shard": it must train replicated.
    "tiny_replicated": {
        "family": "seq2seq",
        "init": "tiny",
        "tiny": TINY,
        "training": {"fsdp_min_params": 10**12},
    },
}
SHORT_RUN = {
    "models": MODELS,
    "training.max_steps": 8,
    "training.eval_steps": 2,
    "training.save_steps": 4,
    "training.fsdp_min_params": 0,
}


def _launch(
    workspace: Path, *script_args: str, processes: int = 2, config: Path = FSDP_CONFIG, shim: bool = True
) -> list[str]:
    entry = [str(SHIM), str(BASE_SCRIPT)] if shim else [str(BASE_SCRIPT)]
    accelerate = Path(sys.executable).parent / "accelerate"
    return [
        str(accelerate),
        "launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(processes),
        "--main_process_port",
        "0",
        *entry,
        *script_args,
    ]


def _run(cmd: list[str], workspace: Path, timeout: int = 420) -> subprocess.CompletedProcess[str]:
    # One thread per process: two processes already fill the two cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=timeout, env=env)


def _worker_error(result: subprocess.CompletedProcess[str]) -> str:
    """The stage's one error line. The worker exits 2; the launcher then fails with its own summary."""
    assert result.returncode != 0 and "(exitcode: 2)" in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


def _metrics(workspace: Path) -> dict:
    return json.loads((workspace / "metrics/train_base.json").read_text())


def _log_history(checkpoint: Path) -> list[dict]:
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


@pytest.fixture(scope="module")
def sharded_run(make_workspace) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workspace = make_workspace("fsdp", SHORT_RUN)
    result = _run(
        _launch(workspace, "--model", "tiny_causal", "--model", "tiny_seq2seq", "--model", "tiny_replicated"),
        workspace,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return workspace, result


@pytest.fixture(scope="module")
def one_process_run(make_workspace) -> Path:
    workspace = make_workspace("one_process", {**SHORT_RUN, "training.batch_size": 16})
    cmd = [sys.executable, str(BASE_SCRIPT), "--model", "tiny_causal", "--model", "tiny_seq2seq"]
    result = _run(cmd, workspace)
    assert result.returncode == 0, result.stderr[-4000:]
    return workspace


@pytest.mark.parametrize("model", ["tiny_causal", "tiny_seq2seq"])
def test_each_family_trains_sharded_and_checkpoints_one_shard_per_rank(sharded_run, model: str) -> None:
    workspace, _ = sharded_run
    metrics = _metrics(workspace)[model]
    assert (metrics["sharded"], metrics["world_size"], metrics["global_step"]) == (1, 2, 8)
    checkpoint = workspace / f"models/checkpoints/base/{model}/checkpoint-8"
    assert last_complete_checkpoint(checkpoint.parent) == checkpoint
    for sharded in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert sorted(p.name for p in (checkpoint / sharded).glob("*.distcp")) == [
            "__0_0.distcp",
            "__1_0.distcp",
        ]
    assert not (checkpoint / "model.safetensors").exists()


@pytest.mark.parametrize("model", ["tiny_causal", "tiny_seq2seq"])
def test_saved_model_is_the_full_state_gathered_from_both_ranks(
    sharded_run, model: str, tmp_path: Path
) -> None:
    workspace, _ = sharded_run
    loaded, _, card, _ = load_model_dir(workspace / f"models/base/{model}", expect_model=model)
    merged = load_file(
        consolidate_checkpoint(workspace / f"models/checkpoints/base/{model}/checkpoint-8", tmp_path)
    )
    saved = loaded.state_dict()
    assert card.metrics["sharded"] == 1 and merged
    for name, tensor in merged.items():
        assert torch.equal(saved[name], tensor), name


@pytest.mark.parametrize("model", ["tiny_causal", "tiny_seq2seq"])
def test_loss_trajectory_matches_a_one_process_run(sharded_run, one_process_run: Path, model: str) -> None:
    workspace, _ = sharded_run
    runs = [w / f"models/checkpoints/base/{model}/checkpoint-8" for w in (workspace, one_process_run)]
    sharded, single = ([(r["step"], r["loss"]) for r in _log_history(c) if "loss" in r] for c in runs)
    logged = list(range(logging_interval(8), 9, logging_interval(8)))  # an 8-step run's loss points
    assert [s for s, _ in sharded] == [s for s, _ in single] == logged
    for (step, a), (_, b) in zip(sharded, single, strict=True):
        assert abs(a - b) <= LOSS_TOLERANCE * b, f"step {step}: {a} (2 processes) vs {b} (1 process)"
    a, b = _metrics(workspace)[model]["eval_loss"], _metrics(one_process_run)[model]["eval_loss"]
    assert abs(a - b) <= LOSS_TOLERANCE * b
    assert sharded[-1][1] < sharded[0][1]  # it learned


def test_model_below_fsdp_min_params_trains_replicated_in_the_same_launch(sharded_run) -> None:
    workspace, result = sharded_run
    metrics = _metrics(workspace)["tiny_replicated"]
    assert (metrics["sharded"], metrics["world_size"], metrics["global_step"]) == (0, 2, 8)
    checkpoint = workspace / "models/checkpoints/base/tiny_replicated/checkpoint-8"
    assert (checkpoint / "model.safetensors").exists() and not (checkpoint / "pytorch_model_fsdp_0").exists()
    warnings = re.findall(r"WARNING aistudio\.training\.sharding: (.*)", result.stderr)
    assert len(warnings) == 1, "one warning, from rank 0"
    assert re.fullmatch(
        r"tiny_replicated: [\d,]+ parameters is below training\.fsdp_min_params \(1,000,000,000,000\), too "
        r"small to shard: training it replicated \(DDP\) on 2 processes; set training\.fsdp_min_params: 0 to "
        r"shard it anyway",
        warnings[0],
    )


def test_lora_stage_shards_and_rank_0_alone_saves_adapters_and_mlflow_runs(
    sharded_run, make_workspace
) -> None:
    base, _ = sharded_run
    workspace = make_workspace("fsdp_lora", SHORT_RUN)
    shutil.copytree(base / "models/base/tiny_causal", workspace / "models/base/tiny_causal")
    params = load_params(workspace / "params.yaml")
    spec = FeatureSpec(
        "tiny_causal",
        workspace / "models/base/tiny_causal",
        params.training.max_length,
        params.training.loss_on_output_only,
    )
    build_features(spec, workspace / "data/processed", workspace / "data/features/tiny_causal")
    cmd = _launch(workspace, "--model", "tiny_causal")
    cmd[cmd.index(str(BASE_SCRIPT))] = str(REPO_ROOT / "scripts/train_lora_adapters.py")
    result = _run(cmd, workspace)
    assert result.returncode == 0, result.stderr[-4000:]

    metrics = json.loads((workspace / "metrics/lora/tiny_causal.json").read_text())
    domains = ["analysis", "code", "creative", "summarization"]
    assert {d: (m["sharded"], m["world_size"]) for d, m in metrics.items()} == {d: (1, 2) for d in domains}
    model, _, _, family = load_model_dir(workspace / "models/base/tiny_causal")
    adapters = AdapterSet.load(
        model, family, {d: workspace / f"models/lora/tiny_causal/{d}" for d in metrics}
    )
    trained = [p for n, p in adapters.model.named_parameters() if "lora_B" in n]
    assert trained and all(p.abs().sum() > 0 for p in trained)  # lora_B starts at zero
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["test"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == [f"lora-tiny_causal-{d}" for d in domains]


def test_killed_two_process_run_resumes_from_its_sharded_checkpoint(make_workspace) -> None:
    max_steps = 40
    workspace = make_workspace(
        "fsdp_resume",
        {
            **SHORT_RUN,
            "training.max_steps": max_steps,
            "training.eval_steps": 4,
            "training.save_total_limit": 3,
        },
    )
    checkpoints = workspace / "models/checkpoints/base/tiny_causal"
    cmd = _launch(workspace, "--model", "tiny_causal")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and last_complete_checkpoint(checkpoints) is None:
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    interrupted = last_complete_checkpoint(checkpoints)
    assert interrupted is not None
    interrupted_at = int(interrupted.name.split("-")[1])
    assert interrupted_at < max_steps

    done = _run(cmd, workspace)
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = _metrics(workspace)["tiny_causal"]
    assert (metrics["global_step"], metrics["sharded"]) == (max_steps, 1)
    assert int(metrics["resumed_from"].split("-")[1]) >= interrupted_at
    steps = [r["step"] for r in _log_history(checkpoints / f"checkpoint-{max_steps}") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == max_steps, steps


def test_fsdp_launch_on_cpu_without_sharding_support_is_refused(make_workspace) -> None:
    workspace = make_workspace("fsdp_refused", SHORT_RUN)
    result = _run(_launch(workspace, "--model", "tiny_causal", processes=1, shim=False), workspace)
    assert _worker_error(result) == (
        f"error: {FSDP_CONFIG}: asks for FSDP, but accelerate 1.15.0 does not shard on CPU processes (it "
        "would train replicated, as DDP): on a CPU machine launch with configs/accelerate/cpu_ddp.yaml"
    )
    assert not (workspace / "models/base").exists()


def test_wrap_class_the_model_lacks_exits_2_before_any_work(make_workspace) -> None:
    workspace = make_workspace("fsdp_wrap_class", SHORT_RUN)
    config = workspace / "phi_fsdp.yaml"
    policy = "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
    wrap_phi = "  fsdp_transformer_layer_cls_to_wrap: PhiDecoderLayer\n"
    config.write_text(FSDP_CONFIG.read_text().replace(policy, policy + wrap_phi))
    result = _run(_launch(workspace, "--model", "tiny_seq2seq", processes=1, config=config), workspace)
    assert _worker_error(result) == (
        f"error: {config}: fsdp_config.fsdp_transformer_layer_cls_to_wrap names PhiDecoderLayer, which model "
        "'tiny_seq2seq' (T5ForConditionalGeneration) does not have; its _no_split_modules are ['T5Block']: "
        "remove the key so every model wraps its own _no_split_modules"
    )
    assert not (workspace / "models").exists() and not (workspace / "metrics").exists()
