"""Quantized variants side by side: size, perplexity and CPU latency of 4-bit, 8-bit and dynamic int8 vs fp32.

    python -m bench.quantization            # writes metrics/bench/quantization.json

One process, one small Phi-style model (hidden 256, 4 layers), briefly trained on a structured
synthetic corpus so that perplexity is far from flat and quantization damage can show. Each
variant is produced by the stage's own code (quantize_variant → load_variant → measure_variant),
so the bench measures what the pipeline ships. Latency is measured in interleaved rounds, every
variant once per round, and the median round is reported: the CPU may be shared, and a burst of
load then slows every variant rather than one.

Goals: 4-bit at most 0.35x the fp32 size with at most +5% perplexity; dynamic int8 faster than
fp32 on CPU (median batch-1 generation latency).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from aistudio.config import QuantizationConfig, TinyArchitecture
from aistudio.environment import apply_offline_defaults
from aistudio.io import write_json
from aistudio.layout import BENCH_DIR
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.prompts import example_from_record
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.quantization.measurement import (
    generation_latency,
    latency_prompts,
    measure_variant,
    relative_to,
)
from aistudio.quantization.quantize import load_variant, quantize_variant
from aistudio.quantization.runtime import quiet_int8_cast_warning
from aistudio.quantization.variants import REFERENCE, VARIANT_NAMES

OUTPUT = BENCH_DIR / "quantization.json"
FAMILY = CausalFamily()
ARCH = TinyArchitecture(hidden_size=256, intermediate_size=1024, num_layers=4, num_heads=4)
# The BPE stops near 550 tokens on this corpus: the unquantized embeddings and LM head are then ~8% of
# the weights (Phi-2: ~10%), so the size ratios are not flattered or hidden by a huge vocabulary.
VOCAB_SIZE = 1024
SEED = 0
TRAIN_RECORDS, VALIDATION_RECORDS = 2000, 64
TRAIN_STEPS, BATCH_SIZE, LEARNING_RATE, MAX_LENGTH = 100, 16, 3e-3, 128
# One thread by default: on a shared CPU every OpenMP barrier of a 2-thread matmul waits for the other
# thread to be scheduled (measured here under load ~6: fp32 prefill 0.20 s on 1 thread, 0.93 s on 2),
# which would compare schedulers rather than kernels. --threads 2 measures the 2-core figure.
DEFAULT_THREADS = 1
# The quantization config's default latency settings (8 prompts x 16 new tokens; params.yaml runs
# 4 to fit the pipeline budget), repeated in interleaved rounds.
CFG = QuantizationConfig(latency_prompts=8, max_new_tokens=16, perplexity_samples=VALIDATION_RECORDS)
ROUNDS = 5
PREFILL_BATCH, PREFILL_TOKENS = 8, 128
GOAL_4BIT_SIZE, GOAL_4BIT_PERPLEXITY = 0.35, 0.05

# --- a corpus with structure worth learning -------------------------------------------------------

_NAMES = "ana ben cleo dev eli fay gus hana ivo jun kai lena milo nora otto pia".split()
_THINGS = "apples books coins pens cups maps keys shells stamps cards".split()
_PLACES = "river hill market harbor school garden station library".split()


def synthetic_records(count: int, seed: int) -> list[dict[str, str]]:
    """Arithmetic, counting and templated facts: deterministic answers, so a model can learn them."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        kind = rng.random()
        a, b = rng.randint(1, 30), rng.randint(1, 30)
        name, thing, place = rng.choice(_NAMES), rng.choice(_THINGS), rng.choice(_PLACES)
        if kind < 0.4:
            records.append({"instruction": f"Add {a} and {b}.", "output": f"{a} plus {b} is {a + b}."})
        elif kind < 0.7:
            records.append(
                {
                    "instruction": f"{name} has {a} {thing} and finds {b} more. How many now?",
                    "output": f"{name} now has {a + b} {thing}.",
                }
            )
        else:
            records.append(
                {
                    "text": f"every morning {name} walks to the {place} with {a} {thing} and comes "
                    f"back from the {place} with {b} {thing} for the {place} keeper."
                }
            )
    return records


# --- train the fp32 model ---------------------------------------------------------------------------


def train_fp32(records: Sequence[Mapping[str, Any]], tokenizer: Any) -> tuple[Any, list[float]]:
    examples = [example_from_record(r, tokenizer) for r in records]
    encoded = [
        e for e in (FAMILY.encode(x, tokenizer, MAX_LENGTH, loss_on_output_only=False) for x in examples) if e
    ]
    model = FAMILY.build_tiny(ARCH, tokenizer, seed=SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    warmup = 10
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    rng = random.Random(SEED)
    losses = []
    model.train()
    for _ in range(TRAIN_STEPS):
        batch = FAMILY.collate(rng.sample(encoded, BATCH_SIZE), tokenizer)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.eval(), losses


# --- latency, interleaved -----------------------------------------------------------------------------


@torch.no_grad()
def prefill_seconds(model: Any, vocab_size: int, repeats: int = 3) -> float:
    """Median seconds of one forward pass over PREFILL_BATCH x PREFILL_TOKENS tokens: matmul-bound work."""
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(4, vocab_size, (PREFILL_BATCH, PREFILL_TOKENS), generator=generator)
    times = []
    with quiet_int8_cast_warning():
        model(input_ids=ids[:1, :8])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_latency(
    loaded: Mapping[str, tuple[Any, Any]], prompts: Sequence[str]
) -> dict[str, dict[str, float]]:
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in loaded}
    for _ in range(ROUNDS):
        for name, (model, tokenizer) in loaded.items():
            timing = generation_latency(model, tokenizer, FAMILY, prompts, CFG.max_new_tokens)
            timing["prefill_s"] = prefill_seconds(model, len(tokenizer))
            rounds[name].append(timing)
    return {
        name: {key: round(statistics.median(r[key] for r in runs), 6) for key in runs[0]}
        for name, runs in rounds.items()
    }


def _progress(message: str) -> None:
    print(f"[bench.quantization] {message}", file=sys.stderr, flush=True)


# --- the whole bench ------------------------------------------------------------------------------------


def run_bench() -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    train = synthetic_records(TRAIN_RECORDS, SEED)
    validation = synthetic_records(VALIDATION_RECORDS, SEED + 1)
    texts = [part for r in train for e in [example_from_record(r)] for part in (e.prompt, e.target)]
    tokenizer = train_bpe_tokenizer(texts, VOCAB_SIZE, 2, FAMILY.special_tokens)
    _progress(f"training the fp32 model for {TRAIN_STEPS} steps")
    model, losses = train_fp32(train, tokenizer)
    total = sum(p.numel() for p in model.parameters())
    embedded = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    train_seconds = time.perf_counter() - started
    prompts = latency_prompts(validation, CFG.latency_prompts, tokenizer)

    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir) / REFERENCE
        save_model_dir(source, model, tokenizer, ModelCard("bench", FAMILY.name, "base"))
        del model
        dirs: dict[str, Path] = {REFERENCE: source}
        variants: dict[str, dict[str, Any]] = {}
        for variant in VARIANT_NAMES:
            _progress(f"quantizing {variant}")
            outcome = quantize_variant(source, variant, CFG, Path(workdir) / variant)
            variants[variant] = outcome.to_json()
            variants[variant].pop("directory")
            if outcome.ok:
                dirs[variant] = outcome.directory
        loaded: dict[str, tuple[Any, Any]] = {}
        measured: dict[str, dict[str, Any]] = {}
        for name, directory in dirs.items():
            start = time.perf_counter()
            variant_model, variant_tokenizer, _, _ = load_variant(directory)
            load_seconds = time.perf_counter() - start
            loaded[name] = (variant_model, variant_tokenizer)
            # No prompts: latency is measured below, interleaved across the variants.
            measured[name] = measure_variant(
                variant_model,
                variant_tokenizer,
                FAMILY,
                [],
                validation,
                CFG,
                model_dir=directory,
                load_seconds=load_seconds,
                max_length=MAX_LENGTH,
            )
        _progress(f"latency: {ROUNDS} interleaved rounds over {list(loaded)}")
        latency = interleaved_latency(loaded, prompts)

    reference = {**measured[REFERENCE], **latency[REFERENCE]}
    results: dict[str, dict[str, Any]] = {
        REFERENCE: {
            "status": "ok",
            "method": "unquantized fp32",
            **reference,
            **relative_to(reference, reference),
        }
    }
    for variant, entry in variants.items():
        if entry["status"] == "ok":
            metrics = {**measured[variant], **latency[variant]}
            entry.update(metrics)
            entry.update(relative_to(metrics, reference))
            entry["prefill_ratio"] = round(metrics["prefill_s"] / reference["prefill_s"], 6)
        results[variant] = entry

    return {
        "setup": {
            "model": {
                **ARCH.model_dump(),
                "parameters": total,
                "embedding_share": round(embedded / total, 4),
            },
            "vocab_size": len(tokenizer),
            "training": {
                "steps": TRAIN_STEPS,
                "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE,
                "first_loss": round(losses[0], 4),
                "last_loss": round(statistics.fmean(losses[-10:]), 4),
                "seconds": round(train_seconds, 1),
            },
            "perplexity": f"{VALIDATION_RECORDS} held-out synthetic records, target tokens only",
            "latency": (
                f"batch 1, greedy, exactly {CFG.max_new_tokens} new tokens per prompt, "
                f"{CFG.latency_prompts} prompts, median over {ROUNDS} interleaved rounds"
            ),
            "prefill": f"one forward over {PREFILL_BATCH}x{PREFILL_TOKENS} tokens, median over {ROUNDS} "
            "rounds",
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
            "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
            "seconds": round(time.perf_counter() - started, 1),
        },
        "variants": results,
        "summary": summarise(results),
    }


def _pick(results: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, Any]:
    return {v: results[v].get(key) for v in VARIANT_NAMES if results.get(v, {}).get("status") == "ok"}


def summarise(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    four, dynamic = results.get("4bit", {}), results.get("dynamic", {})
    goals = {
        f"4bit_size_at_most_{GOAL_4BIT_SIZE}x": four.get("status") == "ok"
        and four["size_ratio"] <= GOAL_4BIT_SIZE,
        f"4bit_perplexity_increase_at_most_{GOAL_4BIT_PERPLEXITY:.0%}": (
            four.get("status") == "ok" and four["perplexity_change"] <= GOAL_4BIT_PERPLEXITY
        ),
        "dynamic_faster_than_fp32_on_cpu": dynamic.get("status") == "ok" and dynamic["latency_ratio"] < 1.0,
    }
    return {
        "size_ratio": _pick(results, "size_ratio"),
        "perplexity_change": _pick(results, "perplexity_change"),
        "latency_ratio": _pick(results, "latency_ratio"),
        "prefill_ratio": _pick(results, "prefill_ratio"),
        "unavailable": {v: r.get("reason") for v, r in results.items() if r.get("status") != "ok"},
        "fp32_perplexity": results[REFERENCE]["perplexity"],
        "goals": goals,
        "goals_met": all(goals.values()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="torch CPU threads for the whole run"
    )
    args = parser.parse_args(argv)
    apply_offline_defaults()
    torch.set_num_threads(args.threads)
    report = run_bench()
    write_json(args.output, report)
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
