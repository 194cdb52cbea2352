"""Serving throughput and latency: our server vs `transformers serve` (with and without continuous
batching) on the same SmolLM2-135M-Instruct weights, plus four mixed LoRA adapters vs base-only.

    python -m bench.serving                   # the full bench → metrics/bench/serving.json
    python -m bench.serving --quick           # reduced size for a check on a busy machine
    AISTUDIO_BENCH_QUICK=1 make bench         # the same through make

Every server is a real process on 127.0.0.1 serving the same fp32 weights with the same number of
torch threads: ours through `scripts/serve.py --bundle`, the peers through `transformers serve
<base dir>`. The load generator streams `/v1/completions` (temperature 0, max_tokens 128) with
chat-rendered prompts whose answers are naturally of different lengths (one word to a story), at
concurrency 1, 8 and 32; each client sends its next request as soon as one returns. Output tokens
are counted by tokenizing the returned text with the model's tokenizer, the same way for every
server; time to first token is the first chunk carrying text.

Rounds are interleaved (round r runs every server at every concurrency before round r+1), so a
change of machine load hits every server alike; each figure is the median over rounds, ratios are
medians of per-round ratios, and `os.getloadavg()` is recorded before and after each round.
Mixed adapters: the same server, requests cycling over four adapters (random-B LoRA, so each
adapter changes the output) vs every request to the base model, back to back.

The previous dynamic batcher (a batch ran until its longest row finished) was measured with this
bench before it was removed (commit b8b1b66, --quick, 3 rounds, 1-minute load 9 falling to 1):
47.2 output tok/s at concurrency 8, 0.85x `transformers serve --continuous-batching` (55.0) in
the same run; 20.1 tok/s at concurrency 1; four mixed adapters 0.75x base-only at concurrency 8.
"""

from __future__ import annotations

import argparse
import asyncio
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

from aistudio.environment import apply_offline_defaults
from aistudio.io import write_json
from aistudio.layout import BENCH_DIR
from bench._serving_bundle import ADAPTERS, MODEL, build_smollm2_bundle

OUTPUT = BENCH_DIR / "serving.json"
REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
API_KEY = "bench-key-0123456789abcdef"
MAX_TOKENS = 128
CONCURRENCY = (1, 8, 32)
# Requests per round at each concurrency: enough that every client sends several.
REQUESTS = {1: 8, 8: 32, 32: 96}
ROUNDS = 3
QUICK = {"concurrency": (1, 8), "requests": {1: 4, 8: 16}, "rounds": 3, "max_tokens": 64}
ROUND_TIMEOUT_S = 1800.0
STARTUP_TIMEOUT_S = 600.0
PROMPTS = (
    "What is the capital of France? Answer in one word.",
    "Write a haiku about autumn leaves.",
    "Explain in a few sentences why the sky is blue.",
    "Write a Python function that reverses a string.",
    "List five fruits, one per line.",
    "Is 17 a prime number? Answer yes or no.",
    "Summarize the plot of Romeo and Juliet in two sentences.",
    "Describe how a bicycle works.",
    "Translate 'good morning' into Spanish.",
    "Give three tips for staying focused while studying.",
    "What is 12 times 12?",
    "Write a short story about a robot learning to paint.",
    "Explain what a hash table is to a beginner.",
    "Say hello.",
    "Write a limerick about a cat.",
    "What are the three states of matter?",
)
# Our scheduler's settings for the bench (AISTUDIO_* overrides of configs/serving.yaml).
KV_TOKENS = 32768
OURS_ENV = {
    "AISTUDIO_SCHEDULER__MAX_ROWS": "32",
    "AISTUDIO_SCHEDULER__MAX_KV_TOKENS": str(KV_TOKENS),
    "AISTUDIO_SCHEDULER__MAX_STEP_TOKENS": "512",
    "AISTUDIO_LIMITS__RATE_LIMIT__REQUESTS_PER_SECOND": "0",
    "AISTUDIO_QUEUE__MAX_DEPTH": "1024",
    "AISTUDIO_QUEUE__TIMEOUT_S": "1800",
    "AISTUDIO_GENERATION__REQUEST_TIMEOUT_S": "1800",
    "AISTUDIO_MONITORING__DRIFT": "false",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One server process; `model_for(i)` is the model id request i names."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    ready_path: str
    models: Sequence[str]
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AISTUDIO_")}
        env.update(self.env)
        log = (log_dir / f"{self.name}.log").open("wb")
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.process.returncode} (see its log)")
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server {self.name} not ready within {STARTUP_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Sample:
    latency_s: float
    ttft_s: float | None
    text: str
    prompt: int
    ok: bool


@dataclass
class Round:
    seconds: float
    samples: list[Sample]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


async def _one(
    http: httpx.AsyncClient, model: str, prompt: str, max_tokens: int
) -> tuple[float | None, str, bool]:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    began = time.perf_counter()
    first: float | None = None
    text = []
    async with http.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return None, "", False
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if choice.get("text"):
                    first = first if first is not None else time.perf_counter() - began
                    text.append(choice["text"])
    return first, "".join(text), True


async def run_round(
    server: Server, prompts: Sequence[str], requests: int, concurrency: int, max_tokens: int
) -> Round:
    samples: list[Sample] = []
    next_index = 0
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def client() -> None:
        nonlocal next_index
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers, limits=limits, timeout=ROUND_TIMEOUT_S
        ) as http:
            while next_index < requests:
                i = next_index
                next_index += 1
                model = server.models[i % len(server.models)]
                began = time.perf_counter()
                ttft, text, ok = await _one(http, model, prompts[i % len(prompts)], max_tokens)
                samples.append(Sample(time.perf_counter() - began, ttft, text, i % len(prompts), ok))

    load_before = os.getloadavg()
    began = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), ROUND_TIMEOUT_S)
    return Round(time.perf_counter() - began, samples, load_before, os.getloadavg())


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 4)


def summarise(rounds: Sequence[Round], count_tokens: Any) -> dict[str, Any]:
    def tokens(r: Round) -> int:
        return sum(count_tokens(s.text) for s in r.samples if s.ok)

    latencies = [s.latency_s for r in rounds for s in r.samples if s.ok]
    ttfts = [s.ttft_s for r in rounds for s in r.samples if s.ok and s.ttft_s is not None]
    return {
        "rounds": len(rounds),
        "requests_per_round": len(rounds[0].samples),
        "req_per_s": round(statistics.median(len(r.samples) / r.seconds for r in rounds), 3),
        "output_tokens_per_s": round(statistics.median(tokens(r) / r.seconds for r in rounds), 2),
        "mean_output_tokens": round(statistics.mean(tokens(r) / max(1, len(r.samples)) for r in rounds), 1),
        "latency_s": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
        "ttft_s": {"p50": _percentile(ttfts, 0.5), "p95": _percentile(ttfts, 0.95)},
        "errors": sum(1 for r in rounds for s in r.samples if not s.ok),
        "loadavg_1m": [round(r.load_before[0], 2) for r in rounds],
    }


def step_seconds(server: Server) -> dict[str, tuple[float, float]]:
    """(sum, count) of our scheduler's step durations per phase, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"prefill": [0.0, 0.0], "decode": [0.0, 0.0]}
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name != "aistudio_scheduler_step_duration_seconds":
            continue
        for sample in family.samples:
            phase = sample.labels.get("phase")
            if phase in totals and sample.name.endswith("_sum"):
                totals[phase][0] = sample.value
            elif phase in totals and sample.name.endswith("_count"):
                totals[phase][1] = sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def paired_ratio(a: Sequence[Round], b: Sequence[Round], count_tokens: Any) -> float:
    """Median over rounds of a's output tokens/s over b's in the same round."""

    def rate(r: Round) -> float:
        return sum(count_tokens(s.text) for s in r.samples if s.ok) / r.seconds

    return round(statistics.median(rate(x) / rate(y) for x, y in zip(a, b, strict=True) if rate(y) > 0), 3)


def build_servers(
    bundle: Path, threads: int, ours_env: Mapping[str, str], max_tokens: int
) -> dict[str, Server]:
    common = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    ours = {
        **common,
        **OURS_ENV,
        "AISTUDIO_API_KEYS": API_KEY,
        "AISTUDIO_ENGINE__TORCH_THREADS": str(threads),
        "AISTUDIO_GENERATION__MAX_NEW_TOKENS": str(max_tokens),
        **ours_env,
    }
    serve = [sys.executable, str(REPO / "scripts" / "serve.py"), "--bundle", str(bundle), "--port", "{port}"]
    base_dir = str(bundle / "base")
    peer = [
        str(Path(sys.executable).with_name("transformers")),
        "serve",
        base_dir,
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    # The peer's paged KV pool and per-step token budget sized like ours (scheduler.max_kv_tokens
    # and max_step_tokens): by default it takes 60-90 % of the free memory, which on a shared
    # 24 GB machine made the whole machine swap.
    paged = ["--cb-block-size", "32", "--cb-num-blocks", str(KV_TOKENS // 32), "--cb-max-batch-tokens", "512"]
    return {
        "ours": Server("ours", serve, ours, "/readyz", [MODEL]),
        "transformers_cb": Server(
            "transformers_cb", [*peer, "--continuous-batching", *paged], common, "/health", [base_dir]
        ),
        "transformers": Server(
            "transformers", [*peer, "--no-continuous-batching"], common, "/health", [base_dir]
        ),
    }


def run_bench(
    concurrency: Sequence[int],
    requests: Mapping[int, int],
    rounds: int,
    max_tokens: int,
    threads: int,
    ours_env: Mapping[str, str],
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="bench-serving-", dir=CACHE.parent) as scratch:
        root = Path(scratch)
        CACHE.mkdir(parents=True, exist_ok=True)
        bundle = build_smollm2_bundle(CACHE, root)
        tokenizer = AutoTokenizer.from_pretrained(bundle / "base")
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in PROMPTS
        ]

        def count_tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

        servers = build_servers(bundle, threads, ours_env, max_tokens)
        if only:
            servers = {k: v for k, v in servers.items() if k in only}
        ours = servers.get("ours")
        # configuration → (server, model ids its requests cycle over)
        configs: dict[str, tuple[Server, Sequence[str]]] = {}
        if ours is not None:
            configs["ours_base"] = (ours, [MODEL])
            configs["ours_mixed_4_adapters"] = (ours, [f"{MODEL}:{a}" for a in ADAPTERS])
        configs.update({name: (s, s.models) for name, s in servers.items() if name != "ours"})
        results: dict[str, dict[int, list[Round]]] = {name: {c: [] for c in concurrency} for name in configs}
        # Our step times in the base-model rounds: [prefill s, prefill steps, decode s, decode steps]
        steps: dict[int, list[float]] = {c: [0.0, 0.0, 0.0, 0.0] for c in concurrency}
        try:
            for server in servers.values():
                server.start(root)
                # One at a time: parallel start-ups of several 135M-parameter models thrash two cores.
                server.wait_ready(time.monotonic() + STARTUP_TIMEOUT_S)
                asyncio.run(run_round(server, prompts, 2, 1, 8))  # warm-up, unmeasured
            for _ in range(rounds):
                for c in concurrency:
                    for name, (server, models) in configs.items():
                        server.models = models
                        before = step_seconds(server) if name == "ours_base" else None
                        results[name][c].append(
                            asyncio.run(run_round(server, prompts, requests[c], c, max_tokens))
                        )
                        if before is not None:
                            after = step_seconds(server)
                            for i, phase in enumerate(("prefill", "decode")):
                                steps[c][2 * i] += after[phase][0] - before[phase][0]
                                steps[c][2 * i + 1] += after[phase][1] - before[phase][1]
                        print(f"{name} c={c}: {len(results[name][c])} round(s)", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    report: dict[str, Any] = {
        "setup": {
            "model": f"{MODEL} (SmolLM2-135M-Instruct, fp32), {len(ADAPTERS)} random-B LoRA adapters r=8",
            "max_tokens": max_tokens,
            "temperature": 0,
            "concurrency": list(concurrency),
            "requests_per_round": {str(c): requests[c] for c in concurrency},
            "rounds": rounds,
            "torch_threads_per_server": threads,
            "cpu_count": os.cpu_count(),
            "ours_env": {**OURS_ENV, **ours_env},
        },
        "configs": {
            name: {str(c): summarise(rs, count_tokens) for c, rs in per_c.items()}
            for name, per_c in results.items()
        },
    }
    summary: dict[str, Any] = {}
    for c in concurrency:
        if "ours_base" in results and "transformers_cb" in results:
            summary[f"ours_vs_transformers_cb_tokens_per_s_c{c}"] = paired_ratio(
                results["ours_base"][c], results["transformers_cb"][c], count_tokens
            )
        if "ours_base" in results and "transformers" in results:
            summary[f"ours_vs_transformers_tokens_per_s_c{c}"] = paired_ratio(
                results["ours_base"][c], results["transformers"][c], count_tokens
            )
        if "ours_mixed_4_adapters" in results:
            summary[f"mixed_vs_base_tokens_per_s_c{c}"] = paired_ratio(
                results["ours_mixed_4_adapters"][c], results["ours_base"][c], count_tokens
            )
    if "ours_base" in results:
        for c in concurrency:
            prefill_s, prefills, decode_s, decodes = steps[c]
            if decodes and prefills:
                prefill, decode = prefill_s / prefills, decode_s / decodes
                p95 = report["configs"]["ours_base"][str(c)]["ttft_s"]["p95"]
                summary[f"ours_step_s_c{c}"] = {
                    "prefill_mean": round(prefill, 4),
                    "decode_mean": round(decode, 4),
                }
                summary[f"ours_ttft_p95_over_budget_c{c}"] = round(p95 / (2 * decode + prefill), 3)
    if "ours_base" in results and "transformers_cb" in results:
        same = [
            a.text == b.text
            for a, b in zip(
                sorted(results["ours_base"][concurrency[0]][0].samples, key=lambda s: s.prompt),
                sorted(results["transformers_cb"][concurrency[0]][0].samples, key=lambda s: s.prompt),
                strict=False,
            )
        ]
        summary["greedy_answers_equal_to_transformers_cb"] = f"{sum(same)}/{len(same)}"
    summary["goals"] = {
        "ours_vs_transformers_cb_tokens_per_s_c8_and_c32": ">= 1.2",
        "mixed_vs_base_tokens_per_s": ">= 0.85",
        # p95 time to first token at c=8 within two decode steps plus a prefill step.
        "ours_ttft_p95_over_budget_c8": "<= 1.0",
    }
    summary["errors"] = sum(v["errors"] for per_c in report["configs"].values() for v in per_c.values())
    report["summary"] = summary
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON report goes")
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("AISTUDIO_BENCH_QUICK") == "1",
        help="reduced size (concurrency 1 and 8, fewer requests, max_tokens 64) for a busy machine",
    )
    parser.add_argument("--rounds", type=int, help=f"rounds (default {ROUNDS}, at least 3 for a report)")
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="torch threads of every server (default: cores - 1, one core is left to the load generator)",
    )
    parser.add_argument("--only", nargs="*", help="servers to run: ours transformers_cb transformers")
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra AISTUDIO_* setting for ours",
    )
    args = parser.parse_args(argv)
    apply_offline_defaults()
    concurrency = QUICK["concurrency"] if args.quick else CONCURRENCY
    requests = QUICK["requests"] if args.quick else REQUESTS
    max_tokens = QUICK["max_tokens"] if args.quick else MAX_TOKENS
    rounds = args.rounds or (QUICK["rounds"] if args.quick else ROUNDS)
    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    report = run_bench(concurrency, requests, rounds, max_tokens, args.threads, ours_env, args.only)
    report["setup"]["quick"] = args.quick
    write_json(args.output, report)
    print(json.dumps(report["summary"], indent=2))
    return 1 if report["summary"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
