"""Loading and saving models: hub ids or local dirs via from_pretrained, tiny configs built offline.

A saved model directory is a standard HF directory (config.json, model.safetensors, tokenizer
files) plus `aistudio.json`, which records which base model and family it belongs to, so that a
directory from another model is refused instead of silently trained on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from aistudio.config import BaseModelConfig, TokenizerConfig
from aistudio.errors import UserError
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.tokenizer import train_bpe_tokenizer

MODEL_CARD = "aistudio.json"


@dataclass(frozen=True)
class ModelCard:
    """What a saved model directory is: which base model, family and stage produced it."""

    model: str
    family: str
    stage: str
    domain: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # "quality" (a pretrained model) or "plumbing" (tiny random init: its numbers test the pipeline).
    purpose: str = "quality"

    def save(self, directory: Path) -> None:
        (directory / MODEL_CARD).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = directory / MODEL_CARD
        if not path.exists():
            raise UserError(f"{directory}: not a model directory of this project (no {MODEL_CARD})")
        return cls(**json.loads(path.read_text()))


def offline_hint(what: str, key: str, name: str) -> UserError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    reason = "is not available offline (HF_HUB_OFFLINE=1)" if offline else "could not be loaded"
    return UserError(
        f"params.yaml: {key} '{name}' {reason}: download the {what} on a connected machine and set {key} "
        "to its local directory, or use init: tiny"
    )


def load_tokenizer_from(name_or_path: str, key: str) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise offline_hint("tokenizer", key, name_or_path) from exc
    if tokenizer.pad_token is None:
        # Hub causal tokenizers often have no pad token; reuse EOS (labels are masked by position).
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_tokenizer(
    model_name: str, cfg: BaseModelConfig, tok_cfg: TokenizerConfig, texts: Iterable[str]
) -> PreTrainedTokenizerBase:
    """A tiny model's tokenizer: the pretrained one named in params, or a BPE trained on `texts`.

    Pretrained models bring their own (the import stage saved it beside the weights).
    """
    if cfg.tokenizer:
        return load_tokenizer_from(cfg.tokenizer, f"models.{model_name}.tokenizer")
    special = family_for(cfg.family).special_tokens
    return train_bpe_tokenizer(texts, tok_cfg.vocab_size, tok_cfg.min_frequency, special)


def build_tiny_model(cfg: BaseModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    return family_for(cfg.family).build_tiny(cfg.tiny, tokenizer, seed)


def save_model_dir(
    directory: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    card: ModelCard,
    state_dict: dict[str, Any] | None = None,
) -> None:
    """safetensors weights, tokenizer and card; never pickles.

    `state_dict` replaces the model's own weights: a sharded model's gathered full state.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(directory)
    card.save(directory)


def load_model_dir(
    directory: Path, expect_model: str | None = None, **load_kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelCard, ModelFamily]:
    """Load a directory this project saved; refuse one that belongs to a different base model."""
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory not found (run the stage that produces it: dvc repro)")
    card = ModelCard.load(directory)
    if expect_model is not None and card.model != expect_model:
        raise UserError(f"{directory}: holds model '{card.model}', expected '{expect_model}'")
    family = family_for(card.family)
    model = family.auto_class.from_pretrained(directory, **load_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return model, tokenizer, card, family
