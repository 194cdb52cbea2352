"""The OpenAI fields users rely on, through the official client against real uvicorn: logprobs,
echo, response_format, /tokenize and /detokenize, the OpenAPI document, and what a disconnect
and a short request during a long one do to the scheduler."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import jsonschema
import openai
import pytest

pytestmark = pytest.mark.slow

RunningServer = Any
MODEL = "tiny-phi"
PROMPT = "sort the list number 3"
SCHEMA = {
    "type": "object",
    "properties": {"done": {"type": "boolean"}, "colour": {"enum": ["red", "green"]}},
    "required": ["done", "colour"],
    "additionalProperties": False,
}


def _openai(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=60)


# --- logprobs and echo ------------------------------------------------------------------------------


def test_completion_logprobs_list_the_chosen_token_and_the_most_likely(causal_server: RunningServer) -> None:
    answer = _openai(causal_server).completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=3
    )
    logprobs = answer.choices[0].logprobs
    assert len(logprobs.tokens) == answer.usage.completion_tokens == len(logprobs.token_logprobs)
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert logprobs.text_offset[0] == 0
    for chosen, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        # Tokens that decode to the same text (partial UTF-8) share a key: up to 3 entries.
        assert chosen <= 0 and 1 <= len(top) <= 3
        assert chosen >= max(top.values()) - 1e-5  # greedy: nothing was more likely


def test_chat_logprobs_follow_openais_shape_and_are_greedy_consistent(causal_server: RunningServer) -> None:
    answer = _openai(causal_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count the words"}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert math.isclose(entry.logprob, entry.top_logprobs[0].logprob, abs_tol=1e-5)
        assert entry.bytes == list(entry.token.encode())
    plain = _openai(causal_server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "count the words"}], max_tokens=4, temperature=0
    )
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == answer.choices[0].message.content


def test_streamed_logprobs_add_up_to_the_unstreamed_ones(causal_server: RunningServer) -> None:
    client = _openai(causal_server)
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1)
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1, stream=True
        )
    )
    streamed = [
        lp
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for lp in c.choices[0].logprobs.token_logprobs
    ]
    assert streamed == pytest.approx(whole.choices[0].logprobs.token_logprobs, abs=1e-5)


def test_echo_returns_the_prompt_first_and_with_logprobs_scores_its_tokens(
    causal_server: RunningServer,
) -> None:
    client = _openai(causal_server)
    plain = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0)
    echoed = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, echo=True, logprobs=0
    )
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    logprobs = echoed.choices[0].logprobs
    prompt_tokens = echoed.usage.prompt_tokens
    assert len(logprobs.tokens) == prompt_tokens + echoed.usage.completion_tokens
    assert logprobs.token_logprobs[0] is None  # nothing precedes the first prompt token
    assert all(lp is not None and lp <= 0 for lp in logprobs.token_logprobs[1:])
    streamed = list(
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, echo=True, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == echoed.choices[0].text


# --- response_format ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_schema_output_validates_against_its_schema(causal_server: RunningServer, stream: bool) -> None:
    client = _openai(causal_server)
    response_format = {"type": "json_schema", "json_schema": {"name": "status", "schema": SCHEMA}}
    texts = []
    for adapter in (MODEL, f"{MODEL}:code", f"{MODEL}:creative"):
        kwargs: dict[str, Any] = (
            {"temperature": 1.0, "seed": 3} if adapter.endswith("creative") else {"temperature": 0}
        )
        answer = client.chat.completions.create(
            model=adapter,
            messages=[{"role": "user", "content": "report the status"}],
            max_tokens=40,
            response_format=response_format,
            stream=stream,
            **kwargs,
        )
        if stream:
            pieces = list(answer)
            text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
            finish = [p.choices[0].finish_reason for p in pieces if p.choices and p.choices[0].finish_reason]
        else:
            text, finish = answer.choices[0].message.content, [answer.choices[0].finish_reason]
        assert finish == ["stop"], text
        jsonschema.validate(json.loads(text), SCHEMA)
        texts.append(text)
    assert texts


def test_json_object_output_is_one_json_object(causal_server: RunningServer) -> None:
    answer = _openai(causal_server).completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=48,
        temperature=0,
        extra_body={"response_format": {"type": "json_object"}},
    )
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(answer.choices[0].text), dict)
    else:  # cut off by max_tokens: still the start of an object, never anything else
        assert answer.choices[0].finish_reason == "length" and answer.choices[0].text.startswith("{")


# --- tokenize, detokenize -----------------------------------------------------------------------------


def test_tokenize_gives_the_ids_the_model_sees_and_detokenize_inverts_them(
    causal_server: RunningServer,
) -> None:
    engine = causal_server.state.engine
    with causal_server.client() as http:
        tokens = http.post("/tokenize", json={"model": MODEL, "prompt": PROMPT}).json()
        assert tokens["tokens"] == engine.prompt_ids(PROMPT) and tokens["count"] == len(tokens["tokens"])
        assert tokens["max_model_len"] == engine.context_window
        text = http.post("/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}).json()["prompt"]
        assert text == PROMPT
        chat = http.post(
            "/tokenize",
            json={"model": f"{MODEL}:code", "messages": [{"role": "user", "content": "count the words"}]},
        ).json()
        completion = _openai(causal_server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "count the words"}], max_tokens=1
        )
    assert chat["count"] == completion.usage.prompt_tokens


# --- the OpenAPI document --------------------------------------------------------------------------------


def test_the_openapi_document_lists_the_responses_the_server_really_sends(
    causal_server: RunningServer,
) -> None:
    spec = httpx.get(causal_server.base_url + "/openapi.json").json()
    completions = spec["paths"]["/v1/completions"]["post"]["responses"]
    assert set(completions) == {"200", "400", "401", "403", "404", "413", "429", "500", "503", "504"}
    assert completions["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "text/event-stream" in completions["200"]["content"]
    adapters = spec["paths"]["/v1/load_lora_adapter"]["post"]["responses"]
    assert {"403", "409", "422"} <= set(adapters)
    assert (
        "text/plain; version=0.0.4; charset=utf-8"
        in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    )
    assert "HTTPValidationError" not in json.dumps(spec)
    for path in (
        "/v1/chat/completions",
        "/tokenize",
        "/detokenize",
        "/v1/unload_lora_adapter",
        "/v1/feedback",
    ):
        assert "400" in spec["paths"][path]["post"]["responses"], path


def test_every_response_carries_a_request_id_and_a_sane_client_id_is_kept(
    causal_server: RunningServer,
) -> None:
    with causal_server.client() as http:
        assert http.get("/healthz").headers["X-Request-ID"].startswith("req-")
        assert (
            http.get("/v1/models", headers={"X-Request-ID": "trace-42"}).headers["X-Request-ID"] == "trace-42"
        )
        assert (
            http.get("/v1/models", headers={"X-Request-ID": "bad id\\n"}).headers["X-Request-ID"]
            != "bad id\\n"
        )
        answer = http.post("/v1/completions", json={"model": MODEL, "prompt": PROMPT, "max_tokens": 1})
        assert answer.headers["X-Request-ID"] == answer.json()["id"]
        refused = http.post("/v1/completions", json={"model": "nope", "prompt": PROMPT})
        assert refused.status_code == 404 and refused.headers["X-Request-ID"].startswith("cmpl-")


# --- the scheduler seen from outside ------------------------------------------------------------------------


def test_a_short_request_sent_while_a_long_stream_runs_finishes_first(causal_server: RunningServer) -> None:
    async def scenario() -> tuple[float, float]:
        headers = {"Authorization": f"Bearer {causal_server.api_key}"}
        async with httpx.AsyncClient(base_url=causal_server.base_url, headers=headers, timeout=60) as http:
            long_body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 64, "stream": True}
            async with http.stream("POST", "/v1/completions", json=long_body) as long:
                lines = long.aiter_lines()
                await lines.__anext__()  # the long answer is being generated
                short = await http.post(
                    "/v1/completions", json={"model": MODEL, "prompt": PROMPT, "max_tokens": 1}
                )
                short_done = time.perf_counter()
                assert short.status_code == 200
                async for _ in lines:
                    pass
                return short_done, time.perf_counter()

    short_done, long_done = asyncio.run(scenario())
    assert short_done < long_done


def test_a_client_that_disconnects_mid_stream_frees_its_row_for_the_next_request(
    tiny_bundles: dict[str, Any], kit: Any
) -> None:
    settings = {"scheduler": {"max_rows": 1}, "generation": {"max_new_tokens": 480, "warmup": False}}
    with kit.run_server(tiny_bundles["causal"], settings) as server:
        scheduler = server.state.scheduler

        async def scenario() -> int:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:
                body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 480, "stream": True}
                async with http.stream("POST", "/v1/completions", json=body) as stream:
                    await stream.aiter_lines().__anext__()
                    steps = scheduler.steps
                # Gone after one chunk. With one row, the next request can only run in that row.
                after = await http.post(
                    "/v1/completions", json={"model": MODEL, "prompt": PROMPT, "max_tokens": 2}
                )
                assert after.status_code == 200
                return scheduler.steps - steps

        steps_until_reused = asyncio.run(scenario())
        assert steps_until_reused < 100  # the abandoned 480-token answer did not run to its end
        deadline = time.monotonic() + 10
        while scheduler.active_rows and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (scheduler.active_rows, scheduler.kv_tokens, scheduler.reserved_tokens) == (0, 0, 0)
        scrape = httpx.get(server.base_url + "/metrics").text
    assert 'aistudio_requests_total{adapter="base",model="tiny-phi",status="cancelled"} 1.0' in scrape
