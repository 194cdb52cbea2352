"""Training throughput with sequence packing vs padding, and the footprint of LoRA vs full fine-tuning.

    python -m bench.training               # writes metrics/bench/training.json
    python -m bench.training --threads 2   # on an idle machine, for absolute throughput

Both throughput runs use the standard HF Trainer, the same tiny Phi-style model (same seed), the
same encoded examples once each (one epoch, batch size 8, max_length 256), side by side in one
process. Only the collation differs: padding each batch to its longest example, or packed rows.
Tokens/s counts useful (non-pad) tokens, so padding does not inflate the baseline.

Peak memory is the peak RSS of a fresh subprocess per configuration: tracemalloc does not see
torch's allocations, and a shared process would report the larger run's peak for both.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Imported at the top, by both memory probes alike, so peft's import cost is not charged to LoRA alone.
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

from aistudio.config import TinyArchitecture
from aistudio.environment import apply_offline_defaults
from aistudio.io import read_jsonl, write_json
from aistudio.layout import BENCH_DIR, PARAMS_FILE, PROCESSED_DIR, split_path
from aistudio.modeling.architectures import LORA_TARGETS
from aistudio.modeling.family import CausalFamily, Encoded
from aistudio.modeling.prompts import Example, example_from_record
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.packing import PackedCollator, pack_examples, useful_tokens

OUTPUT = BENCH_DIR / "training.json"
TRAIN_SPLIT = split_path(PROCESSED_DIR, "train")

ARCH = TinyArchitecture(hidden_size=128, intermediate_size=512, num_layers=2, num_heads=4)
BATCH_SIZE = 8
MAX_LENGTH = 256
VOCAB_SIZE = 2048
SEED = 0
# Sized so the whole bench (two corpora x two runs + two memory probes) stays near 3 minutes on 2 cores.
SAMPLE_EXAMPLES = 384
SKEWED_EXAMPLES = 640
PROBE_STEPS = 15
# Each arm runs this often, interleaved with the other; the fastest run is reported.
REPEATS = 3
FAMILY = CausalFamily()

# --- corpora --------------------------------------------------------------------------------------

_WORDS = (
    "the a river rose slowly through night and fields were under water farmers moved cattle to ridge "
    "while volunteers filled sandbags outside school mayor said bridge would stay closed until engineers "
    "inspected supports which damaged last spring flood forecasters expect recede by friday but warned "
    "more rain in hills could bring second crest early next week residents asked boil drinking report"
).split()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=max(1, words)))


def synthetic_instruction_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Instruction records of moderate, varied length: the stand-in when no real corpus exists."""
    rng = random.Random(seed)
    return [
        {"instruction": _sentence(rng, rng.randint(5, 20)), "output": _sentence(rng, rng.randint(10, 90))}
        for _ in range(count)
    ]


def skewed_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Plain texts whose lengths are long-tailed: most short (10–40 tokens), a few 200+ tokens.

    The tail is what makes padding expensive: one long example sets the width of its whole batch.
    """
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        # Words run ~1.2 tokens each with the bench tokenizer; the prompt prefix adds ~6.
        words = rng.randint(180, 230) if rng.random() < 0.06 else rng.randint(4, 28)
        records.append({"text": _sentence(rng, words)})
    return records


def _records_from_sample_corpus(workdir: Path) -> list[dict[str, Any]] | None:
    """The project's sample corpus run through prepare_data's filters, when that generator exists."""
    try:
        sample_corpus = importlib.import_module("aistudio.data.sample_corpus")
    except ImportError:
        return None
    write_sample_corpus = getattr(sample_corpus, "write_sample_corpus", None)
    if write_sample_corpus is None:
        return None
    from aistudio.config import load_params
    from aistudio.data.prepare import prepare_records

    # params.yaml names sources as data/raw/<layout path>, relative to the project root.
    write_sample_corpus(workdir / "data" / "raw")
    result = prepare_records(load_params(PARAMS_FILE).data, workdir, seed=SEED, progress=False)
    return [r.to_json() for r in result.splits["train"]]


def sample_corpus_records(workdir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The project's training records: the processed split, else the generated sample corpus, else
    synthetic instruction records; the first item says which, for the report."""
    if TRAIN_SPLIT.exists():
        return str(TRAIN_SPLIT), read_jsonl(TRAIN_SPLIT)
    generated = _records_from_sample_corpus(workdir)
    if generated:
        return "aistudio.data.sample_corpus (prepared in a temp dir)", generated
    return "synthetic instruction records (no processed split or sample corpus generator)", (
        synthetic_instruction_records(SAMPLE_EXAMPLES, SEED)
    )


def _texts(examples: Iterable[Example]) -> list[str]:
    return [part for e in examples for part in (e.prompt, e.target)]


def encode_all(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase) -> list[Encoded]:
    encoded = (FAMILY.encode(e, tokenizer, MAX_LENGTH, loss_on_output_only=True) for e in examples)
    return [e for e in encoded if e is not None]


def length_profile(encoded: Sequence[Encoded]) -> dict[str, float]:
    # The shape that decides what packing can win: short examples share rows, long ones cannot.
    lengths = sorted(len(e.input_ids) for e in encoded)
    return {
        "mean": round(statistics.fmean(lengths), 1),
        "p50": lengths[len(lengths) // 2],
        "p95": lengths[int(len(lengths) * 0.95)],
        "max": lengths[-1],
        "share_up_to_40": round(sum(n <= 40 for n in lengths) / len(lengths), 3),
        "share_200_plus": round(sum(n >= 200 for n in lengths) / len(lengths), 3),
    }


# --- one training run -----------------------------------------------------------------------------


@dataclass
class TokenCounter:
    """Wraps a collator and counts what the Trainer actually fed the model."""

    collate: Callable[[list[Any]], dict[str, torch.Tensor]]
    pad_token_id: int
    useful: int = 0
    positions: int = 0
    batches: int = 0

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        self.useful += useful_tokens(batch, self.pad_token_id)
        self.positions += batch["input_ids"].numel()
        self.batches += 1
        return batch


@dataclass(frozen=True)
class RunResult:
    seconds: float
    cpu_seconds: float
    optimizer_steps: int
    useful_tokens: int
    positions: int


def summarise(runs: Sequence[RunResult]) -> dict[str, Any]:
    """The fastest run of one arm, every run's seconds kept so the spread is visible.

    Best-of rather than median: other processes can only slow a run down, never speed it up, so the
    fastest repeat is the closest to the arm's own cost on a shared machine.
    """
    seconds = min(r.seconds for r in runs)
    first = runs[0]
    return {
        "seconds": round(seconds, 3),
        "seconds_per_repeat": [round(r.seconds, 3) for r in runs],
        "cpu_seconds": round(min(r.cpu_seconds for r in runs), 3),
        "optimizer_steps": first.optimizer_steps,
        "useful_tokens": first.useful_tokens,
        "positions": first.positions,
        "pad_share": round(1 - first.useful_tokens / first.positions, 4),
        "tokens_per_s": round(first.useful_tokens / seconds, 1),
    }


def training_arguments(output_dir: str, max_steps: int = -1) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=BATCH_SIZE,
        num_train_epochs=1,
        max_steps=max_steps,
        learning_rate=1e-3,
        warmup_steps=0,
        lr_scheduler_type="constant",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        # Rows are dataclasses, not column dicts; the collators build the model inputs.
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=SEED,
    )


def timed_train(
    model: PreTrainedModel, dataset: Sequence[Any], counter: TokenCounter, max_steps: int = -1
) -> RunResult:
    with tempfile.TemporaryDirectory() as output_dir:
        args = training_arguments(output_dir, max_steps)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counter)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return RunResult(seconds, cpu_seconds, trainer.state.global_step, counter.useful, counter.positions)


def fresh_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    return FAMILY.build_tiny(ARCH, tokenizer, seed=SEED)


def padded_counter(tokenizer: PreTrainedTokenizerBase) -> TokenCounter:
    return TokenCounter(lambda features: FAMILY.collate(features, tokenizer), tokenizer.pad_token_id)


def packed_counter(tokenizer: PreTrainedTokenizerBase) -> TokenCounter:
    return TokenCounter(PackedCollator(tokenizer.pad_token_id), tokenizer.pad_token_id)


def compare_packing(encoded: Sequence[Encoded], tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Padded baseline vs packed rows over the same examples, one epoch each, same initial weights."""
    rows = pack_examples(encoded, MAX_LENGTH)
    padded: list[RunResult] = []
    packed: list[RunResult] = []
    for _ in range(REPEATS):
        # Interleaved, so a burst of load from another process slows both arms, not just one.
        padded.append(timed_train(fresh_model(tokenizer), list(encoded), padded_counter(tokenizer)))
        packed.append(timed_train(fresh_model(tokenizer), rows, packed_counter(tokenizer)))
    if packed[0].useful_tokens != padded[0].useful_tokens:
        raise RuntimeError(
            f"the arms saw different data: {packed[0].useful_tokens} useful tokens packed, "
            f"{padded[0].useful_tokens} padded"
        )
    padded_summary, packed_summary = summarise(padded), summarise(packed)
    return {
        "padded": padded_summary,
        "packed": {**packed_summary, "rows": len(rows)},
        "padded_tokens_per_s": padded_summary["tokens_per_s"],
        "packed_tokens_per_s": packed_summary["tokens_per_s"],
        # Both arms process the same useful tokens, so this is also the wall-time ratio.
        "speedup": round(packed_summary["tokens_per_s"] / padded_summary["tokens_per_s"], 3),
        # The same ratio in CPU seconds (all threads): a cross-check that load from other processes
        # distorts far less than wall time.
        "speedup_cpu_time": round(padded_summary["cpu_seconds"] / packed_summary["cpu_seconds"], 3),
    }


# --- LoRA vs full: parameters and peak memory, one fresh process each -------------------------------


def with_lora(model: PreTrainedModel) -> PreTrainedModel:
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS["phi"]),
        task_type=FAMILY.peft_task_type,
    )
    return get_peft_model(model, config)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _proc_status_mib(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def memory_probe(method: str, tokenizer_dir: Path) -> dict[str, Any]:
    """Train `method` ("full" | "lora") for a few packed steps; report parameters and peak memory.

    Peak RSS is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a
    probe started by a large parent would report the parent's peak. The tokenizer comes from the
    parent, ready-made, so nothing but imports, data and model precede training.
    """
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = [example_from_record(r, tokenizer) for r in skewed_records(SKEWED_EXAMPLES, SEED)]
    rows = pack_examples(encode_all(examples, tokenizer), MAX_LENGTH)
    model = fresh_model(tokenizer)
    if method == "lora":
        model = with_lora(model)
    trainable, total = parameter_counts(model)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    setup_peak = _proc_status_mib("VmHWM")
    rss_before = _proc_status_mib("VmRSS")
    _reset_peak_rss()
    timed_train(model, rows, packed_counter(tokenizer), max_steps=PROBE_STEPS)
    training_peak = _proc_status_mib("VmHWM")
    result = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 5),
        "peak_rss_mib": round(max(setup_peak, training_peak), 1),
        # What training added on top of the imports, data and model.
        "train_rss_delta_mib": round(training_peak - rss_before, 1),
    }
    if torch.cuda.is_available():
        result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def run_probe_subprocess(method: str, tokenizer_dir: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.training", "--probe", method, "--tokenizer", str(tokenizer_dir)]
    command += ["--threads", str(torch.get_num_threads())]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    # The probe's JSON is its last stdout line; libraries may print before it.
    return json.loads(completed.stdout.strip().splitlines()[-1])


def compare_adapters(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer.save_pretrained(tokenizer_dir)
        full = run_probe_subprocess("full", Path(tokenizer_dir))
        lora = run_probe_subprocess("lora", Path(tokenizer_dir))
    return {
        "full": full,
        "lora": lora,
        "lora_trainable_share_of_full": round(lora["trainable_params"] / full["trainable_params"], 5),
        "memory_probe": f"{PROBE_STEPS} packed optimizer steps on the skewed corpus, one fresh process each",
    }


# --- the whole bench ----------------------------------------------------------------------------------


def warm_up(encoded: Sequence[Encoded], tokenizer: PreTrainedTokenizerBase) -> None:
    # The first Trainer run in a process pays one-off costs (kernel selection, thread pools, allocator
    # growth); spend them here so neither measured run carries them.
    warm_up_examples = list(encoded[: 4 * BATCH_SIZE])
    timed_train(fresh_model(tokenizer), warm_up_examples, padded_counter(tokenizer), max_steps=4)


def run_bench() -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as workdir:
        sample_source, records = sample_corpus_records(Path(workdir))
    # A seeded draw, not the first N: a split file may be ordered by domain or source.
    sample = random.Random(SEED).sample(records, min(SAMPLE_EXAMPLES, len(records)))
    corpora: dict[str, tuple[str, list[Example]]] = {
        "sample": (sample_source, [example_from_record(r) for r in sample]),
        "skewed": (
            "synthetic, long-tailed lengths",
            [example_from_record(r) for r in skewed_records(SKEWED_EXAMPLES, SEED)],
        ),
    }
    all_examples = [e for _, examples in corpora.values() for e in examples]
    tokenizer = train_bpe_tokenizer(_texts(all_examples), VOCAB_SIZE, 2, FAMILY.special_tokens)
    encoded = {name: encode_all(examples, tokenizer) for name, (_, examples) in corpora.items()}
    warm_up(encoded["sample"], tokenizer)
    report: dict[str, Any] = {
        "setup": {
            "model": ARCH.model_dump(),
            "vocab_size": len(tokenizer),
            "batch_size": BATCH_SIZE,
            "max_length": MAX_LENGTH,
            "epochs": 1,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
            "tokens_per_s": f"useful (non-pad) tokens / wall seconds of trainer.train(), best of {REPEATS}",
        },
        "corpora": {},
    }
    for name, (source, _) in corpora.items():
        report["corpora"][name] = {
            "source": source,
            "examples": len(encoded[name]),
            "tokens_per_example": length_profile(encoded[name]),
            **compare_packing(encoded[name], tokenizer),
        }
    report.update(compare_adapters(tokenizer))
    # Other processes on the machine slow both arms; the load says how far to trust the absolute figures.
    report["setup"]["load_average_1m"] = {"start": load_at_start, "end": round(os.getloadavg()[0], 2)}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1). One thread keeps the packed/padded ratio stable on a "
        "shared machine: a multi-threaded step stalls whenever one of its threads is descheduled, "
        "which slowed steps up to tenfold on a busy 2-core runner.",
    )
    # Internal: one memory probe, run by the bench itself in a fresh process.
    parser.add_argument("--probe", choices=("full", "lora"), help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_offline_defaults()
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(memory_probe(args.probe, args.tokenizer)))
        return 0
    report = run_bench()
    report["summary"] = _headline(report)
    write_json(args.output, report)
    print(json.dumps(_headline(report), indent=2))
    return 0


def _headline(report: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("padded_tokens_per_s", "packed_tokens_per_s", "speedup")
    return {
        **{name: {k: corpus[k] for k in keys} for name, corpus in report["corpora"].items()},
        "lora_trainable_share_of_full": report["lora_trainable_share_of_full"],
        "peak_rss_mib": {m: report[m]["peak_rss_mib"] for m in ("full", "lora")},
    }


if __name__ == "__main__":
    sys.exit(main())
