"""What a variant costs and saves: weight bytes on disk, load time, p50 latency, tokens/s and
perplexity, and the ratios against the fp32 reference."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aistudio.config import QuantizationConfig
from aistudio.modeling.family import IGNORE_INDEX, ModelFamily
from aistudio.modeling.prompts import prompt_format
from aistudio.quantization.runtime import model_device, quiet_int8_cast_warning

# Perplexity batches: small enough that one batch of logits (batch x length x vocab) stays modest.
PERPLEXITY_BATCH_SIZE = 8


def latency_prompts(records: Sequence[Mapping[str, Any]], count: int, tokenizer: Any) -> list[str]:
    """The fixed prompt set: the first `count` validation prompts (the split order is deterministic),
    in the format the model was trained with."""
    fmt = prompt_format(tokenizer)
    return [fmt.example(r).prompt for r in records[:count]]


def weight_bytes(directory: Path) -> int:
    """Bytes of the weight files on disk (safetensors shards), not tokenizer or config."""
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


@torch.no_grad()
def perplexity(
    model: Any,
    tokenizer: Any,
    family: ModelFamily,
    records: Sequence[Mapping[str, Any]],
    max_length: int = 256,
    batch_size: int = PERPLEXITY_BATCH_SIZE,
) -> tuple[float | None, int]:
    """exp(token-weighted mean NLL) of the records' targets given their prompts, and the token count.

    Summed per batch and divided once at the end, so batches of different sizes weigh by tokens;
    only one batch of logits exists at a time.
    """
    fmt = prompt_format(tokenizer)
    encoded = [
        family.encode(fmt.example(r), tokenizer, max_length, loss_on_output_only=True) for r in records
    ]
    features = [e for e in encoded if e is not None]
    total_nll, total_tokens = 0.0, 0
    device = model_device(model)
    # A decoder-only model predicts token t+1 at position t; an encoder-decoder's logits align with labels.
    shift = not bool(getattr(model.config, "is_encoder_decoder", False))
    for start in range(0, len(features), batch_size):
        batch = {
            k: v.to(device)
            for k, v in family.collate(features[start : start + batch_size], tokenizer).items()
        }
        labels = batch["labels"]
        # Labels go in only where the model needs them to build decoder inputs; its own mean loss is
        # not token-weighted across batches, so it is not used.
        inputs = {k: v for k, v in batch.items() if not (shift and k == "labels")}
        with quiet_int8_cast_warning():
            logits = model(**inputs).logits
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        total_nll += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        ).item()
        total_tokens += int((labels != IGNORE_INDEX).sum())
        del logits
    if not total_tokens:
        return None, 0
    return math.exp(total_nll / total_tokens), total_tokens


def generation_latency(
    model: Any, tokenizer: Any, family: ModelFamily, prompts: Sequence[str], max_new_tokens: int
) -> dict[str, float | None]:
    """Median seconds per prompt (one at a time, greedy) and generated tokens per second.

    Every prompt generates exactly max_new_tokens (min_new_tokens pins it), so a variant that hits
    EOS early is not mistaken for a faster one.
    """
    if not prompts:
        return {"latency_p50_s": None, "tokens_per_second": None}

    def generate(prompt: str) -> None:
        with quiet_int8_cast_warning():
            family.generate(
                model, tokenizer, [prompt], max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens
            )

    # The first call pays one-off costs (allocator growth, kernel selection); keep it out of the timings.
    generate(prompts[0])
    seconds = []
    for prompt in prompts:
        start = time.perf_counter()
        generate(prompt)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return {
        "latency_p50_s": round(statistics.median(seconds), 6),
        "tokens_per_second": round(max_new_tokens * len(seconds) / sum(seconds), 3),
    }


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 6)


def relative_to(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    """size_ratio and latency_ratio (variant / fp32) and perplexity_change (variant / fp32 - 1)."""
    ppl_ratio = _ratio(metrics.get("perplexity"), reference.get("perplexity"))
    return {
        "size_ratio": _ratio(metrics.get("size_bytes"), reference.get("size_bytes")),
        "latency_ratio": _ratio(metrics.get("latency_p50_s"), reference.get("latency_p50_s")),
        "perplexity_change": None if ppl_ratio is None else round(ppl_ratio - 1.0, 6),
    }


def measure_variant(
    model: Any,
    tokenizer: Any,
    family: ModelFamily,
    prompts: Sequence[str],
    eval_records: Sequence[Mapping[str, Any]],
    cfg: QuantizationConfig,
    *,
    model_dir: Path | None = None,
    load_seconds: float | None = None,
    reference: Mapping[str, Any] | None = None,
    max_length: int = 256,
) -> dict[str, Any]:
    """Size on disk, load time, p50 latency, tokens/s and perplexity; ratios against `reference`.

    `model_dir` defaults to where the model was loaded from; without `reference` the ratios are those
    of the reference itself (1.0, change 0.0).
    """
    model.eval()
    directory = Path(model_dir or model.name_or_path)
    ppl, tokens = perplexity(model, tokenizer, family, eval_records[: cfg.perplexity_samples], max_length)
    timing = generation_latency(model, tokenizer, family, prompts[: cfg.latency_prompts], cfg.max_new_tokens)
    metrics: dict[str, Any] = {
        "size_bytes": weight_bytes(directory),
        "load_seconds": None if load_seconds is None else round(load_seconds, 6),
        **timing,
        "perplexity": None if ppl is None else round(ppl, 6),
        "perplexity_tokens": tokens,
    }
    return {**metrics, **relative_to(metrics, reference or metrics)}
