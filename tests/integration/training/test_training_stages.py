"""The three training stages on tiny models of both families, through the library entry points."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer

from aistudio import layout
from aistudio.config import load_mlflow_config, load_params
from aistudio.errors import UserError
from aistudio.features.store import build_features, feature_spec
from aistudio.modeling.loading import load_model_dir
from aistudio.training.adapters import AdapterSet
from aistudio.training.stages import finetune_domain_model, train_base_model, train_lora_adapters

PROCESSED = Path("data/processed")


@pytest.mark.parametrize("model", ["phi2", "codet5p"])
def test_base_finetune_and_lora_train_save_and_reload(workspace: Path, model: str) -> None:
    written = yaml.safe_load(Path("params.yaml").read_text())
    written["lora"]["domains"] = {"code": {"max_steps": 2, "eval_steps": 2, "save_steps": 2}}
    Path("params.yaml").write_text(yaml.safe_dump(written, sort_keys=False))
    params = load_params("params.yaml")
    mlflow_cfg = load_mlflow_config("mlflow.yaml")

    base = train_base_model(params, model, PROCESSED, mlflow_cfg)
    assert base["global_step"] == 16
    with layout.loss_plot("train_base", model).open() as handle:
        losses = [float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]]
    assert losses[-1] < losses[0] * 0.8, f"loss did not decrease: {losses}"
    tokenizer = AutoTokenizer.from_pretrained(layout.base_dir(model))
    assert tokenizer.eos_token_id is not None and tokenizer.pad_token_id is not None

    features = build_features(feature_spec(model, params.training), PROCESSED)
    tuned = finetune_domain_model(params, model, "code", PROCESSED, mlflow_cfg)
    assert tuned["global_step"] == 4 and tuned["skipped"] == 0
    _, _, card, _ = load_model_dir(layout.domain_dir(model, "code"), expect_model=model)
    assert (card.stage, card.domain) == ("domain", "code")

    adapters = train_lora_adapters(params, model, PROCESSED, mlflow_cfg)
    assert set(adapters) == set(params.data.domains)
    assert all(a["share"] < 0.25 for a in adapters.values())
    # lora.domains.code has the last word for code alone.
    assert {d: a["global_step"] for d, a in adapters.items()} == {
        d: 2 if d == "code" else 4 for d in params.data.domains
    }
    for domain in params.data.domains:
        assert sorted(p.name for p in layout.lora_dir(model, domain).iterdir()) == [
            "adapter_config.json",
            "adapter_model.safetensors",
        ]

    base_model, tok, _, family = load_model_dir(layout.base_dir(model), expect_model=model)
    adapter_set = AdapterSet.load(
        base_model, family, {d: layout.lora_dir(model, d) for d in params.data.domains}
    )
    outputs = adapter_set.generate(
        tok, ["Add 3 and 4."] * 2, adapter_names=["code", "analysis"], max_new_tokens=4
    )
    assert len(outputs) == 2

    db = sqlite3.connect(workspace / "mlflow.db")
    runs = dict(db.execute("select name, run_uuid from runs").fetchall())
    assert {f"train_base-{model}", f"finetune-{model}-code", f"lora-{model}-code"} <= set(runs)
    run = runs[f"train_base-{model}"]
    metrics = {k for (k,) in db.execute("select key from metrics where run_uuid=?", (run,))}
    assert {"loss", "eval_loss", "learning_rate", "tokens_per_second", "final_eval_loss"} <= metrics
    params_logged = dict(db.execute("select key, value from params where run_uuid=?", (run,)).fetchall())
    assert params_logged["training.max_steps"] == "16" and params_logged["model.family"]
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (run,)).fetchall())
    assert tags["aistudio.stage"] == "train_base_models" and tags["aistudio.params_hash"]
    artifact_root = Path(db.execute("select artifact_uri from runs where run_uuid=?", (run,)).fetchone()[0])
    assert (artifact_root / "model" / "model.safetensors").exists()
    for trained_on_features in (f"finetune-{model}-code", f"lora-{model}-code"):
        logged = dict(
            db.execute(
                "select key, value from params where run_uuid=?", (runs[trained_on_features],)
            ).fetchall()
        )
        assert logged["feature_fingerprint"] == features["fingerprint"]


def test_fine_tune_and_lora_train_on_the_feature_store_and_refuse_a_stale_one(workspace: Path) -> None:
    params = load_params("params.yaml")
    train_base_model(params, "codet5p", PROCESSED, None)
    with pytest.raises(
        UserError, match=r"no feature store for model 'codet5p'.*dvc repro build_features@codet5p"
    ):
        finetune_domain_model(params, "codet5p", "code", PROCESSED, None)
    card = build_features(feature_spec("codet5p", params.training), PROCESSED)
    code = card["splits"]["train"]["domains"]["code"]
    tuned = finetune_domain_model(params, "codet5p", "code", PROCESSED, None)
    assert tuned["train_examples"] + tuned["skipped_examples"] == code["rows"]
    # The processed splits change and the store is not rebuilt: both stages refuse it.
    rows = (PROCESSED / "train_data.jsonl").read_text().splitlines()
    (PROCESSED / "train_data.jsonl").write_text("\n".join(rows[:-1]) + "\n")
    stale = rf"feature fingerprint {card['fingerprint']} does not match [0-9a-f]{{16}}.*differs in: data"
    with pytest.raises(UserError, match=stale):
        finetune_domain_model(params, "codet5p", "code", PROCESSED, None)
    with pytest.raises(UserError, match=stale):
        train_lora_adapters(params, "codet5p", PROCESSED, None)


def test_prompt_longer_than_max_length_is_refused_before_training(workspace: Path) -> None:
    params = load_params("params.yaml").model_copy()
    data = params.model_dump()
    data["training"]["max_length"] = 16
    from aistudio.config import Params

    with pytest.raises(UserError, match=r"training.max_length \(16\) is smaller than the prompt template"):
        train_base_model(Params.model_validate(data), "phi2", PROCESSED, None)


def test_missing_domain_split_is_a_clear_error_or_a_logged_skip(workspace: Path) -> None:
    params = load_params("params.yaml")
    train_base_model(params, "codet5p", PROCESSED, None)
    rows = [json.loads(line) for line in (PROCESSED / "train_data.jsonl").read_text().splitlines()]
    (PROCESSED / "train_data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows if r["domain"] != "analysis")
    )
    build_features(feature_spec("codet5p", params.training), PROCESSED)
    with pytest.raises(UserError, match="the train split has no 'analysis' records"):
        finetune_domain_model(params, "codet5p", "analysis", PROCESSED, None)
    data = params.model_dump()
    data["finetune"]["skip_empty_domains"] = True
    from aistudio.config import Params

    skipped = finetune_domain_model(Params.model_validate(data), "codet5p", "analysis", PROCESSED, None)
    assert skipped["skipped"] == 1
    assert (layout.domain_dir("codet5p", "analysis") / "SKIPPED.json").exists()


def test_a_model_directory_of_another_model_is_refused(workspace: Path) -> None:
    params = load_params("params.yaml")
    train_base_model(params, "codet5p", PROCESSED, None)
    with pytest.raises(UserError, match="holds model 'codet5p', expected 't5_small'"):
        load_model_dir(layout.base_dir("codet5p"), expect_model="t5_small")


def test_base_model_generates_after_reload(workspace: Path) -> None:
    params = load_params("params.yaml")
    train_base_model(params, "phi2", PROCESSED, None)
    model, tokenizer, _, family = load_model_dir(layout.base_dir("phi2"))
    model.eval()
    with torch.no_grad():
        first = family.generate(
            model, tokenizer, ["### Instruction:\nAdd 1 and 2.\n\n### Response:\n"], max_new_tokens=6
        )
        again = family.generate(
            model, tokenizer, ["### Instruction:\nAdd 1 and 2.\n\n### Response:\n"], max_new_tokens=6
        )
    assert first == again and first[0]
