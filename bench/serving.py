"""Serving throughput: dynamic batching vs batch-1, four mixed adapters vs one, monitoring on vs off.

    python -m bench.serving            # writes metrics/bench/serving.json

Each configuration is a real server (`scripts/serve.py` in its own process, on 127.0.0.1) over
the same tiny causal bundle with four LoRA adapters. A loopback load generator (httpx
AsyncClient, 32 concurrent clients) sends a fixed number of completions with the same prompts,
greedy, max_tokens 32, and measures requests/s, generated tokens/s and latency percentiles
on the client side. Rounds alternate between configurations so that drift in machine load
affects all alike; req/s and tokens/s are the median round, percentiles pool every round, and
the mixed/single and monitoring ratios are medians of per-round ratios of configurations that
ran back to back.

    batched          max_batch_size 32, four adapters mixed per batch, metrics + drift on
    batch1           max_batch_size 1, otherwise the same
    single_adapter   the batched server, every request to one adapter
    no_monitoring    batched and mixed, metrics and drift off

The adapters are LoRA with random (non-zero) B matrices rather than trained: trained toy adapters
learn to stop after a few tokens, and answers of different lengths would measure the answers,
not the server. Every adapter changes the output, so a mixed batch really runs four adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch

from aistudio.bundle import REFERENCE_PROFILE, build_bundle
from aistudio.config import DOMAINS, LoraConfig, TinyArchitecture
from aistudio.environment import apply_offline_defaults
from aistudio.io import write_json
from aistudio.layout import BENCH_DIR
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.prompts import render_prompt
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.serving.drift import profile_from_prompts, save_profile
from aistudio.training.adapters import attach_lora, save_adapter

OUTPUT = BENCH_DIR / "serving.json"
REPO = Path(__file__).resolve().parents[1]
MODEL = "bench-phi"
# Big enough that generation, not HTTP, dominates a request (13M parameters), small enough for 2 cores.
ARCH = TinyArchitecture(hidden_size=512, intermediate_size=2048, num_layers=4, num_heads=8)
ADAPTERS = DOMAINS  # code, creative, analysis, summarization: what configs/monitoring_config.yaml routes to
API_KEY = "bench-key-0123456789abcdef"
CONCURRENCY = 32
REQUESTS = 128
MAX_TOKENS = 32
ROUNDS = 5
# batch1 takes ~25 s a round; two rounds already show a 5x gap clearly.
BATCH1_ROUNDS = 2
ROUND_TIMEOUT_S = 120.0
STARTUP_TIMEOUT_S = 120.0
FAMILY = CausalFamily()
# Instructions in the serving template, as /v1/chat/completions renders them (~15 tokens).
PROMPTS = [
    render_prompt(f"{verb} the {noun} and explain")
    for verb in ("sort", "count", "merge", "parse")
    for noun in ("list", "table", "file", "words")
]

# One torch thread: the other core runs the load generator (and two threads on a busy 2-core
# machine spend more time in OpenMP barriers than in matmuls).
BATCHED = {
    "AISTUDIO_BATCHING__MAX_BATCH_SIZE": "32",
    "AISTUDIO_BATCHING__MAX_WAIT_MS": "10",
    "AISTUDIO_ENGINE__TORCH_THREADS": "1",
}
SERVERS: dict[str, dict[str, str]] = {
    "batched": BATCHED,
    "batch1": {**BATCHED, "AISTUDIO_BATCHING__MAX_BATCH_SIZE": "1"},
    "no_monitoring": {
        **BATCHED,
        "AISTUDIO_MONITORING__METRICS": "false",
        "AISTUDIO_MONITORING__DRIFT": "false",
    },
}
# configuration → (server, models requests go to)
# Pairs that are compared run back to back in every round, so they see the same machine load.
CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "batched": ("batched", ADAPTERS),
    "no_monitoring": ("no_monitoring", ADAPTERS),
    "single_adapter": ("batched", ADAPTERS[:1]),
    "batch1": ("batch1", ADAPTERS),
}


# --- the bundle ------------------------------------------------------------------------------------------


def build_bench_bundle(root: Path) -> Path:
    texts = [f"{p}number {i}: the answer is {i * 7 % 13}" for i in range(12) for p in PROMPTS]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512, min_frequency=1, special=FAMILY.special_tokens)
    base = FAMILY.build_tiny(ARCH, tokenizer, seed=0).eval()
    save_model_dir(root / "base", base, tokenizer, ModelCard(model=MODEL, family=FAMILY.name, stage="base"))
    adapters = {}
    for i, name in enumerate(ADAPTERS):
        peft_model = attach_lora(
            copy.deepcopy(base), FAMILY, LoraConfig(r=8, alpha=16, dropout=0.0), adapter_name=name
        )
        generator = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for param_name, param in peft_model.named_parameters():
                if "lora_B" in param_name:  # B starts at zero (a no-op adapter); make it change outputs
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
        adapters[name] = save_adapter(peft_model, root / "adapters" / name, name)
    profile = profile_from_prompts(
        ((t, None) for t in texts),
        lambda text: FAMILY.token_ids(tokenizer, text),
        tokenizer.get_vocab(),
        tokenizer.unk_token_id,
    )
    save_profile(profile, root / REFERENCE_PROFILE)
    build_bundle(
        root / "bundle",
        root / "base",
        adapters,
        model=MODEL,
        family=FAMILY.name,
        variant="fp32",
        evaluation={},
        lineage={"git_commit": "bench", "data_hash": "bench", "params_hash": "bench"},
        extra_files={REFERENCE_PROFILE: root / REFERENCE_PROFILE},
    )
    return root / "bundle"


# --- servers ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    name: str
    env: Mapping[str, str]
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, bundle: Path, log_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AISTUDIO_")}
        env.update(
            self.env,
            AISTUDIO_API_KEYS=API_KEY,
            AISTUDIO_LIMITS__RATE_LIMIT__REQUESTS_PER_SECOND="0",
            AISTUDIO_QUEUE__MAX_DEPTH="512",
            AISTUDIO_GENERATION__MAX_NEW_TOKENS=str(MAX_TOKENS),
        )
        log = (log_dir / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "scripts" / "serve.py"),
                "--bundle",
                str(bundle),
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.process.returncode} (see its log)")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server {self.name} not ready within {STARTUP_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: drains, like a pod
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- load ------------------------------------------------------------------------------------------------


@dataclass
class Round:
    seconds: float
    latencies: list[float]
    completion_tokens: int
    errors: dict[str, int]


async def run_round(
    url: str, models: Sequence[str], requests: int = REQUESTS, concurrency: int = CONCURRENCY
) -> Round:
    """`requests` completions from `concurrency` clients, each sending its next as soon as one returns.

    Each client is its own AsyncClient holding one keep-alive connection: one shared pool of 32
    connections costs httpcore a scan of the whole pool per request, which made the load
    generator, not the server, the bottleneck on two cores.
    """
    latencies: list[float] = []
    errors: dict[str, int] = {}
    tokens = 0
    next_index = 0
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def client() -> None:
        nonlocal next_index, tokens
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, limits=limits, timeout=ROUND_TIMEOUT_S
        ) as http:
            while next_index < requests:
                i = next_index
                next_index += 1
                body = {
                    "model": models[i % len(models)],
                    "prompt": PROMPTS[i % len(PROMPTS)],
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0,
                }
                began = time.perf_counter()
                response = await http.post("/v1/completions", json=body)
                latencies.append(time.perf_counter() - began)
                if response.status_code == 200:
                    tokens += response.json()["usage"]["completion_tokens"]
                else:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

    began = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), ROUND_TIMEOUT_S)
    seconds = time.perf_counter() - began
    return Round(seconds, latencies, tokens, errors)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(rounds: Sequence[Round]) -> dict[str, Any]:
    latencies = [x for r in rounds for x in r.latencies]
    errors: dict[str, int] = {}
    for r in rounds:
        for code, count in r.errors.items():
            errors[code] = errors.get(code, 0) + count
    return {
        "requests_per_round": REQUESTS,
        "rounds": len(rounds),
        "req_per_s": round(statistics.median(REQUESTS / r.seconds for r in rounds), 2),
        "tokens_per_s": round(statistics.median(r.completion_tokens / r.seconds for r in rounds), 1),
        "mean_completion_tokens": round(
            sum(r.completion_tokens for r in rounds) / (REQUESTS * len(rounds)), 2
        ),
        "latency_s": {
            name: round(_percentile(latencies, q), 4)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "errors": errors,
    }


def run_bench(rounds: int = ROUNDS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        root = Path(scratch)
        bundle = build_bench_bundle(root)
        servers = {name: Server(name, env) for name, env in SERVERS.items()}
        try:
            for server in servers.values():  # start together: their imports overlap
                server.start(bundle, root)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            for server in servers.values():
                server.wait_ready(deadline)
            results: dict[str, list[Round]] = {name: [] for name in CONFIGS}
            for server, models in CONFIGS.values():  # one unmeasured round each: caches, allocator
                asyncio.run(run_round(servers[server].url, models, requests=CONCURRENCY))
            for i in range(rounds):
                for name, (server, models) in CONFIGS.items():
                    if name != "batch1" or i < BATCH1_ROUNDS:
                        results[name].append(asyncio.run(run_round(servers[server].url, models)))
        finally:
            for server in servers.values():
                server.stop()
    configs = {name: summarise(r) for name, r in results.items()}
    speed = {name: c["req_per_s"] for name, c in configs.items()}

    def paired(a: str, b: str) -> float:
        """Median over rounds of a's req/s over b's in the same round (load drift cancels out)."""
        return statistics.median(
            rb.seconds / ra.seconds for ra, rb in zip(results[a], results[b], strict=True)
        )

    summary = {
        "batched_vs_batch1_req_per_s": round(speed["batched"] / speed["batch1"], 3),
        "mixed_vs_single_adapter_req_per_s": round(paired("batched", "single_adapter"), 3),
        "monitoring_overhead": round(1.0 - paired("batched", "no_monitoring"), 4),
        "goals": {
            "batched_vs_batch1_req_per_s": ">= 5",
            "mixed_vs_single_adapter_req_per_s": ">= 0.85",
            "monitoring_overhead": "<= 0.03",
        },
        "errors": sum(sum(c["errors"].values()) for c in configs.values()),
    }
    return {
        "setup": {
            "model": f"causal {ARCH.model_dump()}, {len(ADAPTERS)} random-B LoRA adapters r=8",
            "concurrency": CONCURRENCY,
            "requests_per_round": REQUESTS,
            "max_tokens": MAX_TOKENS,
            "rounds": {name: len(r) for name, r in results.items()},
            "cpu_count": os.cpu_count(),
            "server_torch_threads": int(BATCHED["AISTUDIO_ENGINE__TORCH_THREADS"]),
        },
        "configs": configs,
        "summary": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    apply_offline_defaults()
    report = run_bench(args.rounds)
    write_json(args.output, report)
    print(json.dumps(report["summary"], indent=2))
    return 1 if report["summary"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
