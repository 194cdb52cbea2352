"""Token-weighted negative log-likelihood of reference targets, batch by batch.

The model's own `loss` is a mean over one batch's label tokens; averaging those means would
weight a short batch like a long one, so the sum of token losses is computed here from the
logits and divided once by the token count at the end. Only one batch of logits is alive at a
time: a (batch × length × vocabulary) tensor is the largest thing evaluation allocates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from aistudio.modeling.family import IGNORE_INDEX, Encoded, ModelFamily
from aistudio.modeling.prompts import prompt_format


def encode_for_nll(
    family: ModelFamily,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping[str, Any]],
    max_length: int,
) -> list[Encoded]:
    """Each record as training encodes it, loss on the output only; records that cannot fit are left out."""
    fmt = prompt_format(tokenizer)
    encoded = [
        family.encode(fmt.example(r), tokenizer, max_length, loss_on_output_only=True) for r in records
    ]
    return [e for e in encoded if e is not None]


def is_encoder_decoder(model: Any) -> bool:
    """From the model's config, which PEFT and quantized wrappers expose unchanged."""
    return bool(getattr(model.config, "is_encoder_decoder", False))


def summed_token_nll(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> tuple[float, int]:
    """Sum of cross-entropy over the label tokens (IGNORE_INDEX excluded), and their count."""
    if shift:
        logits, labels = logits[:, :-1, :], labels[:, 1:]
    # fp32 for the log-softmax: half-precision logits lose the tail of the distribution.
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1).to(flat_logits.device)
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return float(total), int((flat_labels != IGNORE_INDEX).sum())


@torch.no_grad()
def mean_nll(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    records: Sequence[Mapping[str, Any]],
    batch_size: int,
    max_length: int,
) -> tuple[float, int]:
    """(mean NLL per target token, number of target tokens) of `records` under `model`.

    `model` may be a PeftModel: whichever adapter the caller made active is the one measured.
    The model is put in eval mode for the measurement (dropout off) and restored afterwards.
    """
    encoded = encode_for_nll(family, tokenizer, records, max_length)
    if not encoded:
        raise ValueError(
            f"none of the {len(records)} record(s) fits in max_length {max_length} with room for a target; "
            "raise max_length"
        )
    return encoded_nll(model, tokenizer, family, encoded, batch_size)


@torch.no_grad()
def encoded_nll(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    encoded: Sequence[Encoded],
    batch_size: int,
) -> tuple[float, int]:
    """mean_nll of examples already encoded (labels masked to the target), e.g. from the feature store."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    if not encoded:
        raise ValueError("no encoded example to measure")
    # An encoder-decoder's decoder reads the labels shifted right, so logit t predicts label t;
    # a decoder-only model reads the labels themselves, so logit t predicts label t + 1.
    shift = not is_encoder_decoder(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(encoded), batch_size):
            batch = family.collate(encoded[start : start + batch_size], tokenizer)
            labels = batch.pop("labels")
            inputs = {k: v.to(device) for k, v in batch.items()}
            if not shift:
                # The decoder's inputs are built from the labels; the model's own mean loss is not used.
                inputs["labels"] = labels.to(device)
            logits = model(**inputs).logits
            batch_total, batch_count = summed_token_nll(logits, labels, shift)
            del logits, inputs
            total += batch_total
            count += batch_count
    finally:
        model.train(was_training)
    return total / count, count


def perplexity(nll: float) -> float:
    """exp(mean NLL); infinity rather than an OverflowError for a hopeless model."""
    try:
        return math.exp(nll)
    except OverflowError:
        return math.inf
