"""The feature store on a tokenizer trained in the test: what it stores, its card, its fingerprint and
the refusal of a store built for another tokenizer or settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aistudio import layout
from aistudio.config import TrainingConfig
from aistudio.errors import UserError
from aistudio.features.store import FeatureSpec, build_features, open_features
from aistudio.modeling.family import IGNORE_INDEX, family_for
from aistudio.modeling.loading import ModelCard
from aistudio.modeling.prompts import prompt_format
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.trainer import encode_records

WORDS = "the cat sat on a mat and sang to the moon while rain fell softly".split()


def _records(split: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        domain = ("code", "creative")[i % 2]
        row = {
            "id": f"{split}-{i}",
            "domain": domain,
            "instruction": "",
            "input": "",
            "output": "",
            "text": "",
        }
        if domain == "creative":
            # Every fourth text is long: truncated at a small max_length.
            row["text"] = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(80 if i % 4 == 1 else 16))
        else:
            row["instruction"], row["output"] = f"Add {i} and {i + 1}.", f"{i} plus {i + 1} is {2 * i + 1}."
        rows.append(row)
    return rows


def _write_splits(processed: Path, sizes: dict[str, int]) -> dict[str, list[dict]]:
    processed.mkdir(parents=True, exist_ok=True)
    splits = {split: _records(split, n) for split, n in sizes.items()}
    for split, rows in splits.items():
        layout.split_path(processed, split).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return splits


def _model_dir(root: Path, family: str, vocab_size: int = 300) -> Path:
    """What build_features reads of a base model: its card and tokenizer (no weights needed)."""
    texts = [" ".join(WORDS), *(f"Add {i} and {i + 1}. {i} plus {i + 1} is {2 * i + 1}." for i in range(40))]
    tokenizer = train_bpe_tokenizer(texts, vocab_size, 1, family_for(family).special_tokens)
    root.mkdir(parents=True)
    tokenizer.save_pretrained(root)
    ModelCard("m", family, "base").save(root)
    return root


@pytest.fixture
def processed(tmp_path: Path) -> tuple[Path, dict[str, list[dict]]]:
    directory = tmp_path / "processed"
    return directory, _write_splits(directory, {"train": 12, "validation": 6, "test": 4})


def _spec(model_dir: Path, max_length: int = 48, loss_on_output_only: bool = True) -> FeatureSpec:
    return FeatureSpec("m", model_dir, max_length, loss_on_output_only)


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_each_split_is_stored_with_the_token_ids_and_labels_training_encodes(
    tmp_path: Path, processed, family: str
) -> None:
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    directory, splits = processed
    model_dir = _model_dir(tmp_path / "base", family)
    card = build_features(_spec(model_dir), directory, tmp_path / "features")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cfg = TrainingConfig(max_length=48)
    store = open_features(_spec(model_dir), tokenizer, family, directory, tmp_path / "features")
    assert store.fingerprint == card["fingerprint"]
    for split, records in splits.items():
        stored = load_from_disk(str(store.path / split))
        assert {"input_ids", "labels", "domain", "prompt", "fits", "truncated"} <= set(stored.column_names)
        assert stored["domain"] == [r["domain"] for r in records]
        expected, skipped = encode_records(family_for(family), tokenizer, records, cfg)
        got = [e for e in store.split(split) if e is not None]
        assert got == expected and len(store.split(split)) - len(got) == skipped
    code_train = [r for r in splits["train"] if r["domain"] == "code"]
    assert store.split("train", "code") == encode_records(family_for(family), tokenizer, code_train, cfg)[0]
    fmt = prompt_format(tokenizer)
    assert store.prompts("test") == [(fmt.example(r).prompt, r["domain"]) for r in splits["test"]]


def test_the_card_counts_rows_tokens_and_truncations_per_split_and_domain(tmp_path: Path, processed) -> None:
    from datasets import load_from_disk

    directory, _ = processed
    model_dir = _model_dir(tmp_path / "base", "causal")
    card = build_features(_spec(model_dir, max_length=160), directory, tmp_path / "features")

    train = card["splits"]["train"]
    assert (train["rows"], card["splits"]["validation"]["rows"], card["splits"]["test"]["rows"]) == (12, 6, 4)
    assert {d: c["rows"] for d, c in train["domains"].items()} == {"code": 6, "creative": 6}
    rows = load_from_disk(str(tmp_path / "features" / card["fingerprint"] / "train")).to_list()
    fits = [r for r in rows if r["fits"]]
    assert train["input_tokens"] == sum(len(r["input_ids"]) for r in fits)
    assert train["target_tokens"] == sum(sum(t != IGNORE_INDEX for t in r["labels"]) for r in fits)
    assert train["usable_rows"] + train["dropped_rows"] == 12
    # The long creative texts (records 1, 5, 9: ~370 tokens) are cut at 160; the others (< 120) are whole.
    assert train["domains"]["creative"]["truncated_rows"] == 3 and train["truncated_rows"] == 3
    assert [len(r["input_ids"]) for r in rows if r["truncated"]] == [160, 160, 160]
    assert card["fingerprint_inputs"]["max_length"] == 160
    manifest = tmp_path / "features" / card["fingerprint"] / layout.FEATURE_MANIFEST
    assert json.loads(manifest.read_text()) == card


def test_the_same_inputs_give_the_same_fingerprint_and_another_tokenizer_or_length_another(
    tmp_path: Path, processed
) -> None:
    directory, _ = processed
    model_dir = _model_dir(tmp_path / "base", "causal")
    first = build_features(_spec(model_dir), directory, tmp_path / "a")
    again = build_features(_spec(model_dir), directory, tmp_path / "b")
    assert first == again
    other_tokenizer = _model_dir(tmp_path / "other", "causal", vocab_size=280)
    assert (
        build_features(_spec(other_tokenizer), directory, tmp_path / "c")["fingerprint"]
        != first["fingerprint"]
    )
    longer = build_features(_spec(model_dir, max_length=64), directory, tmp_path / "d")
    assert longer["fingerprint"] != first["fingerprint"]
    # One store per model: rebuilding replaces the old fingerprint's directory.
    build_features(_spec(model_dir, max_length=64), directory, tmp_path / "a")
    assert [p.name for p in (tmp_path / "a").iterdir()] == [longer["fingerprint"]]


def test_a_store_for_other_settings_is_refused_naming_both_fingerprints_and_the_fix(
    tmp_path: Path, processed
) -> None:
    from transformers import AutoTokenizer

    directory, _ = processed
    model_dir = _model_dir(tmp_path / "base", "causal")
    root = tmp_path / "features"
    built = build_features(_spec(model_dir), directory, root)["fingerprint"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with pytest.raises(UserError) as refused:
        open_features(_spec(model_dir, max_length=40), tokenizer, "causal", directory, root)
    message = str(refused.value)
    named = re.search(r"feature fingerprint ([0-9a-f]{16}) does not match ([0-9a-f]{16})", message)
    assert named and named.group(1) == built and named.group(2) != built
    assert "max_length (store 48, here 40)" in message and "dvc repro build_features@m" in message

    # New processed data and no rebuild: the data hash differs.
    _write_splits(directory, {"train": 10, "validation": 6, "test": 4})
    with pytest.raises(UserError, match=r"differs in: data \(store [0-9a-f]{12}, here [0-9a-f]{12}\)"):
        open_features(_spec(model_dir), tokenizer, "causal", directory, root)


def test_a_missing_store_is_a_user_error_with_the_fix(tmp_path: Path, processed) -> None:
    from transformers import AutoTokenizer

    directory, _ = processed
    model_dir = _model_dir(tmp_path / "base", "causal")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with pytest.raises(UserError, match=r"no feature store for model 'm'.*run `dvc repro build_features@m`"):
        open_features(_spec(model_dir), tokenizer, "causal", directory, tmp_path / "none")
