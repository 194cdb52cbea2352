"""The server through the official `openai` client: real uvicorn on loopback, tiny real models.

Both families serve their base model and three adapters; every answer is checked against the
library generating the same thing directly, and the operational behaviour (shared decode steps
under concurrency, backpressure, rate limits, metrics, drift, A/B, shutdown, refusing a tampered
bundle) is checked from the outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from aistudio.bundle import load_bundle
from aistudio.serving.chat import render_chat
from aistudio.serving.schemas import ChatMessage
from aistudio.training.adapters import PEFT_BASE_ROW

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
RunningServer = Any  # conftest.RunningServer (test modules cannot import conftest by name)
TinyBundle = Any
PROMPT = "sort the list number 3"
MAX_TOKENS = 10


def _openai(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=30)


def _ids(server: RunningServer) -> list[str]:
    bundle = server.bundle
    return [bundle.model, *(f"{bundle.model}:{a}" for a in bundle.adapters)]


@pytest.fixture(scope="module")
def library(family_server: RunningServer) -> Any:
    """The same bundle loaded separately: what the server must agree with, generated directly."""
    return load_bundle(family_server.bundle.path)


def _direct(library: Any, prompt: str, adapter: str | None, max_tokens: int = MAX_TOKENS) -> str:
    return library.model.generate(
        library.tokenizer,
        [prompt],
        adapter_names=[adapter or PEFT_BASE_ROW],
        max_new_tokens=max_tokens,
        max_prompt_length=256,
    )[0]


# --- answers -------------------------------------------------------------------------------------------


def test_models_lists_the_base_and_each_adapter_as_base_colon_adapter(family_server: RunningServer) -> None:
    models = _openai(family_server).models.list()
    assert [m.id for m in models.data] == _ids(family_server)
    assert all(m.owned_by == "aistudio" for m in models.data)


def test_greedy_completion_equals_direct_library_generation_for_base_and_every_adapter(
    family_server: RunningServer, library: Any
) -> None:
    client = _openai(family_server)
    answers = {}
    for model_id, adapter in zip(_ids(family_server), (None, *family_server.bundle.adapters), strict=True):
        answer = client.completions.create(
            model=model_id, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
        )
        assert answer.model == model_id
        assert answer.choices[0].text == _direct(library, PROMPT, adapter), model_id
        assert answer.usage.prompt_tokens == len(family_server.state.engine.prompt_ids(PROMPT))
        answers[model_id] = answer.choices[0].text
    # The adapters were trained towards different answers: routing really selects them.
    assert len(set(answers.values())) >= 3


def test_bare_adapter_name_selects_the_same_adapter(family_server: RunningServer) -> None:
    client = _openai(family_server)
    adapter = family_server.bundle.adapters[0]
    bare = client.completions.create(model=adapter, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0)
    full = client.completions.create(
        model=f"{family_server.bundle.model}:{adapter}", prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )
    assert bare.choices[0].text == full.choices[0].text


def test_chat_renders_the_training_template_and_matches_the_library(
    family_server: RunningServer, library: Any
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "count the words"}]
    prompt = render_chat([ChatMessage.model_validate(m) for m in messages], library.tokenizer)
    assert "### Instruction:\ncount the words" in prompt and prompt.endswith("### Response:\n")
    client = _openai(family_server)
    for model_id, adapter in zip(_ids(family_server), (None, *family_server.bundle.adapters), strict=True):
        answer = client.chat.completions.create(
            model=model_id, messages=messages, max_tokens=MAX_TOKENS, temperature=0
        )
        assert answer.choices[0].message.role == "assistant"
        assert answer.choices[0].message.content == _direct(library, prompt, adapter), model_id
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streamed_text_equals_the_unstreamed_answer_for_every_model(family_server: RunningServer) -> None:
    client = _openai(family_server)
    messages = [{"role": "user", "content": "merge the table"}]
    for model_id in _ids(family_server):
        whole = client.completions.create(model=model_id, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0)
        chunks = list(
            client.completions.create(
                model=model_id, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True
            )
        )
        assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
        assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason

        chat = client.chat.completions.create(
            model=model_id, messages=messages, max_tokens=MAX_TOKENS, temperature=0
        )
        stream = client.chat.completions.create(
            model=model_id,
            messages=messages,
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = list(stream)
        assert pieces[0].choices[0].delta.role == "assistant"
        text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
        assert text == chat.choices[0].message.content
        assert (
            pieces[-1].usage is not None
            and pieces[-1].usage.completion_tokens == chat.usage.completion_tokens
        )


def test_stream_is_server_sent_events_ending_with_done(family_server: RunningServer) -> None:
    body = {"model": family_server.bundle.model, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    with family_server.client() as http:
        response = http.post("/v1/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_max_tokens_stop_n_and_seed_are_honoured(family_server: RunningServer) -> None:
    client = _openai(family_server)
    model = family_server.bundle.adapters[1]  # trained to answer "YES YES ..."
    long = client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0)
    assert long.usage.completion_tokens == 12 and long.choices[0].finish_reason == "length"
    text = long.choices[0].text
    stop = text.strip()[2:5]
    stopped = client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop])
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"

    many = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=1.5, n=3, seed=11)
    again = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=1.5, n=3, seed=11)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert [c.text for c in many.choices] == [c.text for c in again.choices]
    other = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=1.5, n=3, seed=12)
    assert [c.text for c in other.choices] != [c.text for c in many.choices]


def test_a_list_prompt_gets_choices_in_prompt_order(family_server: RunningServer, library: Any) -> None:
    prompts = [PROMPT, "count the words"]
    answer = _openai(family_server).completions.create(
        model=family_server.bundle.model, prompt=prompts, max_tokens=6, temperature=0
    )
    assert [c.index for c in answer.choices] == [0, 1]
    # Batched with another row, a left-padded prompt may differ in the last float bits; greedy
    # answers of this tiny model are stable, so compare texts.
    assert [c.text for c in answer.choices] == [_direct(library, p, None, 6) for p in prompts]


# --- load ----------------------------------------------------------------------------------------------


async def _load(server: RunningServer, prompts: tuple[str, ...], total: int, concurrency: int) -> list[int]:
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    models = _ids(server)

    async def one(i: int, http: httpx.AsyncClient) -> int:
        async with limit:
            body: dict[str, Any] = {
                "model": models[i % len(models)],
                "max_tokens": 8,
                "temperature": 0 if i % 2 else 0.8,
            }
            if i % 5 == 0:
                body["messages"] = [{"role": "user", "content": prompts[i % len(prompts)]}]
                body["stream"] = i % 10 == 0
                response = await http.post("/v1/chat/completions", json=body)
            else:
                body["prompt"] = prompts[i % len(prompts)]
                response = await http.post("/v1/completions", json=body)
            return response.status_code

    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:
        return await asyncio.wait_for(asyncio.gather(*(one(i, http) for i in range(total))), timeout=90)


def test_200_concurrent_mixed_adapter_requests_all_succeed_in_shared_decode_steps(
    causal_server: RunningServer, kit: Any
) -> None:
    statuses = asyncio.run(_load(causal_server, kit.normal_prompts, total=200, concurrency=32))
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) == {200}
    scrape = causal_server.client().get("/metrics").text
    steps = _sample(scrape, "aistudio_scheduler_step_tokens_count", phase="decode")
    rows = _sample(scrape, "aistudio_scheduler_step_tokens_sum", phase="decode")
    assert rows / steps > 2, "concurrent requests should share decode steps"
    assert _sample(scrape, "aistudio_scheduler_active_rows") == 0
    assert _sample(scrape, "aistudio_kv_cache_tokens") == 0


def test_full_queue_answers_503_with_retry_after_at_once(
    tiny_bundles: dict[str, TinyBundle], kit: Any
) -> None:
    settings = {"scheduler": {"max_rows": 1}, "queue": {"max_depth": 1}}
    with kit.run_server(tiny_bundles["causal"], settings) as server:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=60
            ) as http:
                body = {"model": "tiny-phi", "prompt": PROMPT, "max_tokens": 64, "temperature": 0}
                return await asyncio.gather(*(http.post("/v1/completions", json=body) for _ in range(16)))

        responses = asyncio.run(burst())
        refused = [r for r in responses if r.status_code == 503]
        assert refused, "a queue of one must refuse most of a burst of 16"
        assert {r.status_code for r in responses} <= {200, 503}
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        assert refused[0].json()["error"]["code"] == "queue_full"
        scrape = server.client().get("/metrics").text
        assert re.search(
            r'aistudio_requests_total\{adapter="base",model="tiny-phi",status="queue_full"\} [1-9]', scrape
        )


def test_requests_past_the_timeout_get_504_and_streams_an_error_event(
    tiny_bundles: dict[str, TinyBundle], kit: Any
) -> None:
    settings = {"scheduler": {"max_rows": 1}, "generation": {"request_timeout_s": 0.3}}
    body = {"model": "tiny-phi", "prompt": PROMPT, "max_tokens": 64, "temperature": 0}
    with kit.run_server(tiny_bundles["causal"], settings) as server:

        async def crowd() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
                crowd = [asyncio.ensure_future(http.post("/v1/completions", json=body)) for _ in range(12)]
                # The stream joins once the crowd is queued (gather alone gives no arrival order, and a
                # stream served first would finish in time): it waits behind twelve 64-token answers.
                await asyncio.sleep(0.05)
                stream = await http.post("/v1/completions", json={**body, "stream": True})
                return [*(await asyncio.gather(*crowd)), stream]

        *responses, stream = asyncio.run(crowd())
        with server.client() as http:
            while server.state.scheduler.depth or server.state.scheduler.active_rows:  # let the crowd drain
                time.sleep(0.01)
            scrape = http.get("/metrics").text
    timed_out = [r for r in responses if r.status_code == 504]
    assert timed_out, "twelve 64-token answers one at a time cannot all finish within 0.3 s"
    assert {r.status_code for r in responses} <= {200, 504}
    assert timed_out[0].json()["error"]["code"] == "timeout"
    assert _sample(scrape, "aistudio_requests_total", model="tiny-phi", adapter="base", status="timeout") >= 2
    # A stream has already answered 200 when its time runs out: the error arrives as an event.
    assert stream.status_code == 200
    events = [e.removeprefix("data: ") for e in stream.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "timeout"


def test_rate_limit_answers_429_per_key(tiny_bundles: dict[str, TinyBundle], kit: Any) -> None:
    settings = {"limits": {"rate_limit": {"requests_per_second": 0.5, "burst": 2}}}
    with kit.run_server(tiny_bundles["seq2seq"], settings) as server:
        body = {"model": "tiny-t5", "prompt": PROMPT, "max_tokens": 2}
        with server.client() as http, server.client(server.other_key) as other:
            statuses = [http.post("/v1/completions", json=body).status_code for _ in range(2)]
            limited = http.post("/v1/completions", json=body)
            assert statuses == [200, 200]
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            assert other.post("/v1/completions", json=body).status_code == 200


def test_shutdown_lets_the_request_in_flight_finish(tiny_bundles: dict[str, TinyBundle], kit: Any) -> None:
    result: dict[str, Any] = {}
    with kit.run_server(tiny_bundles["causal"]) as server:

        def call() -> None:
            with server.client() as http:
                result["response"] = http.post(
                    "/v1/completions", json={"model": "tiny-phi", "prompt": PROMPT, "max_tokens": 64}
                )

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while not server.state.scheduler.active_rows and time.monotonic() < deadline:
            time.sleep(0.001)
    caller.join(timeout=30)  # leaving run_server asked uvicorn to exit while the request ran
    assert result["response"].status_code == 200
    assert result["response"].json()["choices"][0]["text"]


# --- monitoring ----------------------------------------------------------------------------------------


def _sample(scrape: str, name: str, **labels: str) -> float | None:
    for line in scrape.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_carry_model_adapter_and_status_labels_and_pass_promtool(
    family_server: RunningServer,
) -> None:
    client = _openai(family_server)
    model, adapter = family_server.bundle.model, family_server.bundle.adapters[0]
    client.completions.create(model=f"{model}:{adapter}", prompt=PROMPT, max_tokens=3)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=f"{model}:missing", prompt=PROMPT, max_tokens=3)
    scrape = httpx.get(f"{family_server.base_url}/metrics").text  # open without a key by default
    assert _sample(scrape, "aistudio_requests_total", model=model, adapter=adapter, status="2xx") >= 1
    # An id the server does not serve is not minted as a label value.
    assert _sample(scrape, "aistudio_requests_total", model="unknown", adapter="base", status="4xx") >= 1
    assert _sample(scrape, "aistudio_model_info", model=model, version="7", variant="fp32") == 1
    assert _sample(scrape, "aistudio_generation_tokens_total", model=model, adapter=adapter) >= 3
    assert _sample(scrape, "aistudio_prompt_tokens_total", model=model, adapter=adapter) >= 1
    assert _sample(scrape, "aistudio_time_to_first_token_seconds_count", model=model, adapter=adapter) >= 1
    assert _sample(scrape, "aistudio_queue_duration_seconds_count") >= 1
    assert _sample(scrape, "aistudio_queue_depth") == 0
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_drift_gauges_move_when_prompts_shift(tiny_bundles: dict[str, TinyBundle], kit: Any) -> None:
    with (
        kit.run_server(tiny_bundles["causal"], {"generation": {"warmup": False}}) as server,
        server.client() as http,
    ):

        def send(prompts: list[str]) -> None:
            for prompt in prompts:
                assert (
                    http.post(
                        "/v1/completions", json={"model": "tiny-phi", "prompt": prompt, "max_tokens": 1}
                    ).status_code
                    == 200
                )

        send(list(kit.normal_prompts[:40]))
        normal = http.get("/v1/monitoring/drift").json()
        shifted = [
            f"ÜBERPRÜFUNG {i} ✓✓ 1234567890 ¿¡ 0x{i:08x} ∑∫ {'#' * (i % 7)} Ωmega" * 3 for i in range(40)
        ]
        send(shifted)
        drifted = http.get("/v1/monitoring/drift").json()
        scrape = http.get("/metrics").text
    assert normal["enabled"] and normal["evaluations"] >= 1
    assert drifted["detected"] is True
    assert drifted["features"]["non_ascii_ratio"]["psi"] > normal["features"]["non_ascii_ratio"]["psi"] + 1
    assert _sample(scrape, "aistudio_drift_detected") == 1
    assert _sample(scrape, "aistudio_drift_score", feature="non_ascii_ratio") > 0.2


def test_ab_assignment_is_sticky_per_user_and_feedback_is_counted(family_server: RunningServer) -> None:
    def ask(http: httpx.Client, user: str) -> httpx.Response:
        response = http.post(
            "/v1/completions",
            json={"model": "ab:code-adapter", "prompt": PROMPT, "max_tokens": 2, "user": user},
        )
        assert response.status_code == 200
        return response

    with family_server.client() as http:
        variants = {
            user: {ask(http, user).headers["X-AIStudio-Variant"] for _ in range(4)}
            for user in ("alice", "bob", *map(str, range(12)))
        }
        assert all(len(v) == 1 for v in variants.values()), variants
        assert {v for (v,) in variants.values()} == {"control", "lora"}
        alias = http.post(
            "/v1/completions",
            json={"model": "code-assistant", "prompt": PROMPT, "max_tokens": 2, "user": "alice"},
        )
        assert alias.headers["X-AIStudio-Variant"] == next(iter(variants["alice"]))

        request_id = ask(http, "alice").json()["id"]
        assert (
            http.post("/v1/feedback", json={"request_id": request_id, "outcome": "positive"}).status_code
            == 200
        )
        assert (
            http.post("/v1/feedback", json={"request_id": request_id, "outcome": "negative"}).status_code
            == 409
        )
        summary = http.get("/v1/ab/summary").json()["experiments"]["code-adapter"]
        scrape = http.get("/metrics").text
        assert http.post("/v1/completions", json={"model": "ab:nope", "prompt": PROMPT}).status_code == 404
    variant = next(iter(variants["alice"]))
    assert summary[variant]["positive"] >= 1
    assert sum(v["assignments"] for v in summary.values()) >= 4 * 14 + 2
    assert _sample(scrape, "aistudio_ab_assignments_total", experiment="code-adapter", variant=variant) >= 1
    assert (
        _sample(
            scrape, "aistudio_feedback_total", experiment="code-adapter", variant=variant, outcome="positive"
        )
        >= 1
    )


# --- start-up refusals ---------------------------------------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AISTUDIO_")}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "serve.py"), *args],
        cwd=REPO,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_tampered_bundle_file_refuses_to_start_with_exit_2(
    tiny_bundles: dict[str, TinyBundle], tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(tiny_bundles["causal"].path, tampered)
    weights = tampered / "adapters" / "code" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    done = _serve("--bundle", str(tampered), "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "sha256 mismatch for adapters/code/adapter_model.safetensors" in done.stderr


def test_a_public_bind_without_api_keys_refuses_in_one_line(tiny_bundles: dict[str, TinyBundle]) -> None:
    done = _serve("--bundle", str(tiny_bundles["causal"].path), "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0 without API keys" in lines[0]
