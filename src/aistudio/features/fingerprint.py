"""What a feature store's token ids depend on, hashed into the name of its directory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aistudio.layout import SPLIT_NAMES, split_path
from aistudio.modeling.prompts import prompt_format
from aistudio.modeling.sources import sha256_of

# Bumped when the stored columns or the encoding change meaning: old stores are then refused.
FEATURES_SCHEMA = 1
FINGERPRINT_CHARS = 16
# Every file a saved tokenizer may consist of (which ones exist depends on the tokenizer's kind).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
)


def tokenizer_hash(model_dir: Path) -> str:
    """sha256 over the tokenizer files of a model directory (name and content of each)."""
    digest = hashlib.sha256()
    found = [name for name in TOKENIZER_FILES if (Path(model_dir) / name).is_file()]
    for name in found:
        digest.update(f"{name}\0{sha256_of(Path(model_dir) / name)}\0".encode())
    if not found:
        raise FileNotFoundError(f"{model_dir}: holds no tokenizer file ({', '.join(TOKENIZER_FILES[:2])})")
    return digest.hexdigest()


def data_hash(processed_dir: Path) -> str:
    digest = hashlib.sha256()
    for split in SPLIT_NAMES:
        digest.update(f"{split}\0{sha256_of(split_path(processed_dir, split))}\0".encode())
    return digest.hexdigest()


def fingerprint_inputs(
    model_dir: Path,
    tokenizer: Any,
    family: str,
    max_length: int,
    loss_on_output_only: bool,
    processed_dir: Path,
) -> dict[str, Any]:
    """The named ingredients of a fingerprint; kept in the feature card so a mismatch says which differs."""
    fmt = prompt_format(tokenizer)
    return {
        "schema": FEATURES_SCHEMA,
        "tokenizer": tokenizer_hash(model_dir),
        # The rendered template, not just its name: a template edited in code changes the token ids too.
        "prompt_format": f"{fmt.name}:{fmt.instruction('{instruction}', '{input}')}",
        "family": family,
        "max_length": max_length,
        "loss_on_output_only": loss_on_output_only,
        "data": data_hash(processed_dir),
    }


def fingerprint_of(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(dict(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]
