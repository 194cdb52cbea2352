"""A tiny workspace: processed splits with a learnable task, and params sized to train in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

DOMAINS = ("code", "creative", "analysis", "summarization")
# Tiny random-init stand-ins named after the GPU recipe's models whose architectures they share
# (Phi, T5): both families' code paths in seconds. The real SmolLM2 has its own tests.
TINY_MODELS = {
    "phi2": {
        "family": "causal",
        "init": "tiny",
        "tiny": {"hidden_size": 64, "intermediate_size": 256, "num_layers": 2, "num_heads": 4},
        "training": {"packing": True},
    },
    "codet5p": {
        "family": "seq2seq",
        "init": "tiny",
        "tiny": {"hidden_size": 64, "intermediate_size": 256, "num_layers": 2, "num_heads": 4},
    },
}
WORDS = "the cat sat on a mat and sang to the moon while rain fell softly".split()


def _record(split: str, i: int, rng: random.Random) -> dict:
    domain = DOMAINS[i % 4]
    base = {
        "id": f"{split}-{i:04d}",
        "domain": domain,
        "source": "toy",
        "source_line": i,
        "instruction": "",
        "input": "",
        "output": "",
        "text": "",
    }
    if domain == "creative":
        start = rng.randrange(len(WORDS))
        base["text"] = " ".join(WORDS[(start + k) % len(WORDS)] for k in range(24))
    else:
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        base["instruction"] = f"Add {a} and {b}."
        base["output"] = f"{a} plus {b} is {a + b}."
    return base


def write_workspace(root: Path, repo_root: Path, overrides: dict | None = None) -> Path:
    rng = random.Random(0)
    processed = root / "data" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 160), ("validation", 32), ("test", 32)):
        rows = [_record(split, i, rng) for i in range(n)]
        (processed / f"{split}_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["models"] = {**TINY_MODELS, **params["models"]}
    params["training"].update(
        {
            "max_steps": 16,
            "eval_steps": 8,
            "save_steps": 8,
            "warmup_steps": 2,
            "early_stopping_patience": 0,
            "max_eval_samples": 16,
        }
    )
    params["finetune"]["defaults"].update({"max_steps": 4, "eval_steps": 2, "save_steps": 2})
    params["lora"]["training"].update({"max_steps": 4, "eval_steps": 2, "save_steps": 2})
    params["lora"]["domains"] = {}  # the default code adapter's longer run is for the real model
    params["tokenizer"]["vocab_size"] = 512
    for key, value in (overrides or {}).items():
        section, _, leaf = key.rpartition(".")
        node = params
        for part in section.split(".") if section else []:
            node = node.setdefault(part, {})
        node[leaf] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "mlflow.yaml").write_text(
        yaml.safe_dump({"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "test"})
    )
    return root


@pytest.fixture
def workspace(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_workspace(tmp_path, repo_root)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def make_workspace(tmp_path_factory: pytest.TempPathFactory):
    """For module-scoped fixtures: a function writing a fresh workspace with `overrides` applied."""
    repo_root = Path(__file__).resolve().parents[3]
    return lambda name, overrides=None: write_workspace(tmp_path_factory.mktemp(name), repo_root, overrides)
