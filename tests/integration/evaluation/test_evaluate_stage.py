"""The evaluate stage on a tiny causal model, real MLflow: gates decide, a bad candidate is held.

One workspace per module: a tiny model trained on a learnable toy task, a LoRA adapter per
domain, and its int8 weight-only variant. Each test evaluates it (or a damaged copy of it) with
the real stage entry point and a sqlite MLflow registry.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from aistudio import layout
from aistudio.bundle import read_manifest
from aistudio.config import load_mlflow_config, load_params
from aistudio.evaluation.description import TABLE_ARTIFACT
from aistudio.evaluation.stage import evaluate_model
from aistudio.features.store import build_features, feature_spec
from aistudio.quantization.stage import quantize_model
from aistudio.registry import ModelRegistry
from aistudio.training.stages import train_base_model, train_lora_adapters

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]

MODEL = "tiny"
REGISTERED = "aistudio-tiny"
DOMAINS = ("code", "creative", "analysis", "summarization")
PROCESSED = Path("data/processed")
REPO_ROOT = Path(__file__).resolve().parents[3]


def _record(split: str, i: int, rng: random.Random) -> dict:
    domain = DOMAINS[i % 4]
    a, b = rng.randint(1, 30), rng.randint(1, 30)
    record = {
        "id": f"{split}-{i}",
        "domain": domain,
        "source": "toy",
        "source_line": i,
        "input": "",
        "text": "",
    }
    if domain == "code":
        record.update(
            instruction=f"Write a function add_{a}(x) that adds {a} to x.",
            output=f"def add_{a}(x):\n    return x + {a}",
            entry_point=f"add_{a}",
            tests=f"assert add_{a}({b}) == {a + b}\n",
        )
    elif domain == "summarization":
        record.update(
            instruction="Summarize.", input=f"The cat sat on {a} mats and {b} hats.", output="Cats sat."
        )
    else:
        record.update(instruction=f"Add {a} and {b}.", output=f"{a} plus {b} is {a + b}.")
    return record


def _write_workspace(root: Path) -> None:
    rng = random.Random(0)
    PROCESSED.mkdir(parents=True)
    for split, n in (("train", 160), ("validation", 32), ("test", 16)):
        rows = [_record(split, i, rng) for i in range(n)]
        (PROCESSED / f"{split}_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["models"] = {
        MODEL: {"family": "causal", "init": "tiny", "tiny": {"hidden_size": 64, "num_layers": 2}}
    }
    params["tokenizer"]["vocab_size"] = 400
    params["training"].update(
        {
            "max_steps": 30,
            "eval_steps": 10,
            "save_steps": 10,
            "early_stopping_patience": 0,
            "max_eval_samples": 8,
        }
    )
    params["lora"]["training"].update(
        {"max_steps": 8, "eval_steps": 4, "save_steps": 4, "learning_rate": 0.01}
    )
    params["lora"]["domains"] = {}  # the default code adapter's longer run is for the real model
    params["quantization"].update(
        {"variants": ["int8_weight_only"], "latency_prompts": 1, "max_new_tokens": 2, "perplexity_samples": 8}
    )
    params["evaluation"].update(
        {
            "max_samples_per_domain": 4,
            "max_new_tokens": 8,
            "batch_size": 4,
            "serving_variants": ["int8_weight_only", "fp32"],
            "sandbox": {"timeout_s": 5, "cpu_seconds": 2, "memory_mb": 256, "max_output_kb": 64},
        }
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    mlflow = {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "experiment": "t",
        "registry": {MODEL: REGISTERED},
    }
    (root / "mlflow.yaml").write_text(yaml.safe_dump(mlflow))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        _write_workspace(root)
        params = load_params("params.yaml")
        train_base_model(params, MODEL, PROCESSED, None)
        build_features(feature_spec(MODEL, params.training), PROCESSED)
        train_lora_adapters(params, MODEL, PROCESSED, None)
        quantize_model(params, MODEL, PROCESSED, None)
        yield root


def _scramble(adapter_dir: Path, seed: int) -> None:
    """Replace every LoRA matrix with noise: an adapter that only damages the base."""
    path = adapter_dir / "adapter_model.safetensors"
    generator = torch.Generator().manual_seed(seed)
    tensors = {k: torch.randn(v.shape, generator=generator) * 0.5 for k, v in load_file(path).items()}
    save_file(tensors, path)


def test_a_good_candidate_is_promoted_and_a_scrambled_one_is_held_while_the_champion_stays(
    workspace: Path,
) -> None:
    params, mlflow_cfg = load_params("params.yaml"), load_mlflow_config("mlflow.yaml")
    registry = ModelRegistry(mlflow_cfg.tracking_uri)

    good = evaluate_model(params, MODEL, PROCESSED, mlflow_cfg)
    assert good.gate.passed, [r.reason for r in good.gate.failures]
    assert good.gate.gate_set == "plumbing"
    assert good.registration["decision"] == "promoted"
    assert registry.aliases(REGISTERED)["champion"] == good.registration["version"]
    _assert_described(registry, good.registration["version"], good.variant.variant)

    backup = workspace / "lora-backup"
    shutil.copytree(layout.lora_dir(MODEL, "code").parent, backup)
    try:
        for i, domain in enumerate(DOMAINS):
            _scramble(layout.lora_dir(MODEL, domain), seed=i)
        bad = evaluate_model(params, MODEL, PROCESSED, mlflow_cfg)
    finally:
        shutil.rmtree(layout.lora_dir(MODEL, "code").parent)
        shutil.copytree(backup, layout.lora_dir(MODEL, "code").parent)
    assert not bad.gate.passed
    failed = {r.name for r in bad.gate.failures}
    assert {"max_perplexity_vs_base", "max_regression_vs_champion"} <= failed
    assert bad.registration["decision"] == "held: failed the evaluation gates"
    assert registry.aliases(REGISTERED)["champion"] == good.registration["version"]
    assert registry.aliases(REGISTERED)["challenger"] == bad.registration["version"]


def _assert_described(registry: ModelRegistry, version: int, variant: str) -> None:
    """The version and the registered model carry the description; the run has the table artifact."""
    described = registry.client.get_model_version(REGISTERED, str(version))
    text = described.description
    assert "**tiny** — base model `random-init causal model" in text
    assert "inputs md5 " in text and "git " in text
    assert "**Gates (plumbing): passed**" in text and "not model quality" in text
    assert (
        "| domain | metric | samples | base | fine-tuned − base | LoRA − base | quantized LoRA − base |"
        in text
    )
    assert "LoRA: " in text and "trainable parameters per domain adapter" in text
    model_text = registry.client.get_registered_model(REGISTERED).description
    assert model_text.startswith(f"Latest evaluated: v{version}, promoted. Champion: v{version}.")
    table_path = registry.client.download_artifacts(described.run_id, TABLE_ARTIFACT)
    table = json.loads(Path(table_path).read_text())
    assert {"model", "domain", "form", "samples", "perplexity"} <= set(table["columns"])
    forms = 2 if variant == "fp32" else 3  # base, LoRA (and quantized LoRA); no fine-tunes were trained
    assert len(table["data"]) == len(DOMAINS) * forms


def test_the_gates_choose_the_served_variant_and_the_bundle_records_which_and_why(workspace: Path) -> None:
    params, mlflow_cfg = load_params("params.yaml"), load_mlflow_config("mlflow.yaml")
    evaluation = evaluate_model(params, MODEL, PROCESSED, mlflow_cfg)
    choice = evaluation.gate_json()["serving_variant"]
    assert [c["variant"] for c in choice["candidates"]] == ["int8_weight_only", "fp32"]
    int8 = choice["candidates"][0]
    assert int8["size_bytes"] < choice["candidates"][1]["size_bytes"]
    assert set(int8["per_domain"]) == set(DOMAINS)
    # The tiny model's int8 cost is measured, not assumed: whichever way it falls, the rule holds.
    expected = "int8_weight_only" if int8["cost"] <= choice["max_quantized_perplexity_increase"] else "fp32"
    assert choice["variant"] == expected and choice["passed"]
    manifest = read_manifest(layout.bundle_dir(MODEL))
    assert manifest.variant == expected
    assert manifest.evaluation["serving_variant"]["reason"] == choice["reason"]
    served_form = "lora" if expected == "fp32" else "quantized_lora"
    for domain, cost in int8["per_domain"].items():  # the cost is the served form's own perplexity
        forms = evaluation.results[domain]
        if expected == "int8_weight_only":
            increase = forms["quantized_lora"].metrics["perplexity"] / forms["lora"].metrics["perplexity"] - 1
            assert increase == pytest.approx(cost, abs=1e-6), domain
        else:
            assert "quantized_lora" not in forms
    code = evaluation.results["code"][served_form].metrics
    assert code["pass_at_1_samples"] == 4 and 0.0 <= code["pass_at_1"] <= 1.0


def test_thresholds_no_candidate_can_meet_are_reported_as_held_with_each_failed_gate(workspace: Path) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluation"]["plumbing_gates"].update(
        {"min_primary_gain": {d: 1.0 for d in DOMAINS}, "max_perplexity": 1.0}
    )
    Path("impossible.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/evaluate_models.py"), "--params", "impossible.yaml"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    gate = json.loads(Path("metrics/gate.json").read_text())[MODEL]
    assert gate["passed"] is False
    assert {f"min_primary_gain[{d}]" for d in DOMAINS} | {f"max_perplexity[{d}]" for d in DOMAINS} <= set(
        gate["failed"]
    )
    assert len(gate["failed"]) == len([g for g in gate["gates"] if not g["passed"]])
    assert gate["registration"]["decision"] == "held: failed the evaluation gates"
    assert "failed its gates" in result.stderr
