"""Building a model's feature store (the build_features stage) and reading it back (training).

Each split is an HF dataset saved with `save_to_disk`: one row per processed record, in split order,
with the token ids and labels training uses (`family.encode` of the record's prompt-format example,
exactly as training encoded records itself), plus `domain`, the rendered `prompt`, `fits` (false
when the record cannot fit max_length; its ids are then empty) and `truncated`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio import layout
from aistudio.config import TrainingConfig
from aistudio.errors import UserError
from aistudio.features.fingerprint import fingerprint_inputs, fingerprint_of
from aistudio.io import read_jsonl, write_json
from aistudio.layout import SPLIT_NAMES, split_path
from aistudio.modeling.family import IGNORE_INDEX, Encoded, ModelFamily, family_for
from aistudio.modeling.prompts import Example, prompt_format

# Token counts without truncation: no record of the corpus comes near it.
_UNBOUNDED = 1 << 30
# Below this many records per process, starting workers costs more than it saves.
_ROWS_PER_PROCESS = 2000


def encode_examples(
    family: ModelFamily,
    tokenizer: Any,
    examples: Sequence[Example],
    max_length: int,
    loss_on_output_only: bool,
) -> list[Encoded | None]:
    """Each example as training encodes it; None where it cannot fit max_length."""
    return [family.encode(e, tokenizer, max_length, loss_on_output_only) for e in examples]


def encode_records(
    family: ModelFamily,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    max_length: int,
    loss_on_output_only: bool,
) -> list[Encoded | None]:
    fmt = prompt_format(tokenizer)
    return encode_examples(
        family, tokenizer, [fmt.example(r) for r in records], max_length, loss_on_output_only
    )


def fitting(items: Sequence[Encoded | None]) -> tuple[list[Encoded], int]:
    """The examples that fit, and how many did not."""
    kept = [item for item in items if item is not None]
    return kept, len(items) - len(kept)


@dataclass(frozen=True)
class FeatureSpec:
    """What a store is built for: the tokenizer's model directory and the encoding settings."""

    model: str
    model_dir: Path
    max_length: int
    loss_on_output_only: bool

    def inputs(self, tokenizer: Any, family: str, processed_dir: Path) -> dict[str, Any]:
        return fingerprint_inputs(
            self.model_dir, tokenizer, family, self.max_length, self.loss_on_output_only, processed_dir
        )


def _encode_batch(
    batch: dict[str, list[Any]], family: str, tokenizer: Any, max_length: int, loss_on_output_only: bool
) -> dict[str, list[Any]]:
    fam = family_for(family)
    out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "fits": [], "truncated": []}
    for prompt, target, domain in zip(batch["prompt"], batch["target"], batch["domain"], strict=True):
        example = Example(prompt, target, domain)
        item = fam.encode(example, tokenizer, max_length, loss_on_output_only)
        full = fam.encode(example, tokenizer, _UNBOUNDED, loss_on_output_only)
        kept = (len(item.input_ids), len(item.labels)) if item else (0, 0)
        whole = (len(full.input_ids), len(full.labels)) if full else (0, 0)
        out["input_ids"].append(item.input_ids if item else [])
        out["labels"].append(item.labels if item else [])
        out["fits"].append(item is not None)
        out["truncated"].append(item is None or kept != whole)
    return out


def _split_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    fits = [r for r in rows if r["fits"]]
    return {
        "rows": len(rows),
        "usable_rows": len(fits),
        "dropped_rows": len(rows) - len(fits),
        "truncated_rows": sum(1 for r in rows if r["truncated"]),
        "input_tokens": sum(len(r["input_ids"]) for r in fits),
        "target_tokens": sum(sum(1 for t in r["labels"] if t != IGNORE_INDEX) for r in fits),
    }


def split_card(dataset: Any) -> dict[str, Any]:
    rows = dataset.select_columns(["domain", "input_ids", "labels", "fits", "truncated"]).to_list()
    domains = sorted({r["domain"] for r in rows})
    return {
        **_split_counts(rows),
        "domains": {d: _split_counts([r for r in rows if r["domain"] == d]) for d in domains},
    }


def build_features(
    spec: FeatureSpec, processed_dir: Path, out: Path | None = None, num_proc: int | None = None
) -> dict[str, Any]:
    """Tokenize every split for `spec`'s tokenizer into `out`/<fingerprint>/<split>; return the card.

    Stores of other fingerprints under `out` are removed: a model has one current store.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer

    from aistudio.modeling.loading import ModelCard

    out = Path(out or layout.features_dir(spec.model))
    if not spec.model_dir.is_dir():
        raise UserError(
            f"{spec.model_dir}: model '{spec.model}' has no tokenizer yet; run `dvc repro train_base_models`"
        )
    for split in SPLIT_NAMES:
        if not split_path(processed_dir, split).exists():
            raise UserError(
                f"{split_path(processed_dir, split)}: missing; run `dvc repro prepare_data` first"
            )
    family = ModelCard.load(spec.model_dir).family
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    inputs = spec.inputs(tokenizer, family, processed_dir)
    fingerprint = fingerprint_of(inputs)
    fmt = prompt_format(tokenizer)
    if out.exists():
        shutil.rmtree(out)
    splits: dict[str, Any] = {}
    for split in SPLIT_NAMES:
        examples = [fmt.example(r) for r in read_jsonl(split_path(processed_dir, split))]
        columns = {
            "domain": [e.domain for e in examples],
            "prompt": [e.prompt for e in examples],
            "target": [e.target for e in examples],
        }
        procs = num_proc or max(1, min(os.cpu_count() or 1, len(examples) // _ROWS_PER_PROCESS))
        dataset = Dataset.from_dict(columns).map(
            _encode_batch,
            batched=True,
            num_proc=procs if procs > 1 else None,
            fn_kwargs={
                "family": family,
                "tokenizer": tokenizer,
                "max_length": spec.max_length,
                "loss_on_output_only": spec.loss_on_output_only,
            },
            desc=f"{spec.model}: {split} features",
        )
        dataset.save_to_disk(str(layout.features_split_dir(out / fingerprint, split)))
        splits[split] = split_card(dataset)
    card = {"model": spec.model, "fingerprint": fingerprint, "fingerprint_inputs": inputs, "splits": splits}
    write_json(out / fingerprint / layout.FEATURE_MANIFEST, card)
    return card


@dataclass(frozen=True)
class FeatureStore:
    """A model's store, checked against the reader's own tokenizer and settings."""

    model: str
    fingerprint: str
    path: Path

    def split(self, split: str, domain: str | None = None) -> list[Encoded | None]:
        """A split's rows in order (None where the record did not fit), optionally one domain's."""
        from datasets import load_from_disk

        dataset = load_from_disk(str(layout.features_split_dir(self.path, split)))
        rows = dataset.select_columns(["domain", "input_ids", "labels", "fits"]).to_list()
        return [
            Encoded(list(r["input_ids"]), list(r["labels"])) if r["fits"] else None
            for r in rows
            if domain is None or r["domain"] == domain
        ]

    def prompts(self, split: str) -> list[tuple[str, str]]:
        """(prompt, domain) of every row: the text the model was trained on, as served."""
        from datasets import load_from_disk

        dataset = load_from_disk(str(layout.features_split_dir(self.path, split)))
        return list(zip(dataset["prompt"], dataset["domain"], strict=True))


def open_features(
    spec: FeatureSpec, tokenizer: Any, family: str, processed_dir: Path, root: Path | None = None
) -> FeatureStore:
    """The store built for exactly this tokenizer, prompt format, max_length, masking and data, or a
    UserError naming both fingerprints, what differs and the fix."""
    root = Path(root or layout.features_dir(spec.model))
    inputs = spec.inputs(tokenizer, family, processed_dir)
    wanted = fingerprint_of(inputs)
    path = root / wanted
    if (path / layout.FEATURE_MANIFEST).is_file():
        return FeatureStore(spec.model, wanted, path)
    fix = f"run `dvc repro build_features@{spec.model}`"
    built = sorted(p.parent for p in root.glob(f"*/{layout.FEATURE_MANIFEST}"))
    if not built:
        raise UserError(
            f"{root}: no feature store for model '{spec.model}' (expected fingerprint {wanted}); {fix}"
        )
    found = json.loads((built[-1] / layout.FEATURE_MANIFEST).read_text())
    theirs = found.get("fingerprint_inputs", {})
    differs = ", ".join(
        f"{key} (store {_short(theirs.get(key))}, here {_short(value)})"
        for key, value in inputs.items()
        if theirs.get(key) != value
    )
    raise UserError(
        f"{built[-1]}: feature fingerprint {found.get('fingerprint')} does not match {wanted} of this "
        f"stage's tokenizer ({spec.model_dir}) and settings; differs in: {differs or 'unknown'}; {fix}"
    )


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text[:40]


def feature_spec(model: str, cfg: TrainingConfig) -> FeatureSpec:
    """The store of a model at `cfg`'s max_length and label masking. Its tokenizer is the base
    model's (trained there for a tiny model, imported for a pretrained one), which every fine-tune
    and adapter of it shares. build_features builds for params.yaml `training`; a stage whose own
    settings differ there finds no store for them and is refused."""
    return FeatureSpec(model, layout.base_dir(model), cfg.max_length, cfg.loss_on_output_only)
