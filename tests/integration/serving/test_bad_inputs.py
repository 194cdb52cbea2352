"""Every bad request gets a 4xx in OpenAI's error shape, naming the field — never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

RunningServer = Any  # conftest.RunningServer (test modules cannot import conftest by name)
MODEL = "tiny-phi"
OK_COMPLETION = {"model": MODEL, "prompt": "sort the list", "max_tokens": 2}
OK_CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "sort the list"}], "max_tokens": 2}


def _assert_openai_error(
    response: httpx.Response, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {**base, **changes}
    return {k: v for k, v in body.items() if v is not ...}


# (path, body, status, param, code): `...` as a value removes the field.
CASES: list[tuple[str, str, dict[str, Any], int, str | None, str | None]] = [
    (
        "missing model",
        "/v1/completions",
        _with(OK_COMPLETION, model=...),
        400,
        "model",
        "missing_required_parameter",
    ),
    (
        "missing prompt",
        "/v1/completions",
        _with(OK_COMPLETION, prompt=...),
        400,
        "prompt",
        "missing_required_parameter",
    ),
    (
        "missing messages",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=...),
        400,
        "messages",
        "missing_required_parameter",
    ),
    ("model is a number", "/v1/completions", _with(OK_COMPLETION, model=7), 400, "model", None),
    ("prompt is a number", "/v1/completions", _with(OK_COMPLETION, prompt=5), 400, "prompt", None),
    (
        "max_tokens is a string",
        "/v1/completions",
        _with(OK_COMPLETION, max_tokens="5"),
        400,
        "max_tokens",
        None,
    ),
    (
        "temperature is a string",
        "/v1/completions",
        _with(OK_COMPLETION, temperature="hot"),
        400,
        "temperature",
        None,
    ),
    ("stream is a string", "/v1/completions", _with(OK_COMPLETION, stream="yes"), 400, "stream", None),
    ("messages is a string", "/v1/chat/completions", _with(OK_CHAT, messages="hi"), 400, "messages", None),
    (
        "unknown model",
        "/v1/completions",
        _with(OK_COMPLETION, model="gpt-4"),
        404,
        "model",
        "model_not_found",
    ),
    (
        "unknown adapter",
        "/v1/completions",
        _with(OK_COMPLETION, model=f"{MODEL}:nope"),
        404,
        "model",
        "model_not_found",
    ),
    (
        "unknown chat adapter",
        "/v1/chat/completions",
        _with(OK_CHAT, model="nope"),
        404,
        "model",
        "model_not_found",
    ),
    ("max_tokens 0", "/v1/completions", _with(OK_COMPLETION, max_tokens=0), 400, "max_tokens", None),
    ("max_tokens negative", "/v1/chat/completions", _with(OK_CHAT, max_tokens=-3), 400, "max_tokens", None),
    ("max_tokens over cap", "/v1/completions", _with(OK_COMPLETION, max_tokens=65), 400, "max_tokens", None),
    (
        "temperature below 0",
        "/v1/completions",
        _with(OK_COMPLETION, temperature=-0.1),
        400,
        "temperature",
        None,
    ),
    (
        "temperature above 2",
        "/v1/chat/completions",
        _with(OK_CHAT, temperature=2.5),
        400,
        "temperature",
        None,
    ),
    ("top_p 0", "/v1/completions", _with(OK_COMPLETION, top_p=0), 400, "top_p", None),
    ("n 0", "/v1/completions", _with(OK_COMPLETION, n=0), 400, "n", None),
    ("n over cap", "/v1/completions", _with(OK_COMPLETION, n=5), 400, "n", None),
    ("empty prompt", "/v1/completions", _with(OK_COMPLETION, prompt=""), 400, "prompt", "empty_prompt"),
    ("blank prompt", "/v1/completions", _with(OK_COMPLETION, prompt="   \n"), 400, "prompt", "empty_prompt"),
    ("empty prompt list", "/v1/completions", _with(OK_COMPLETION, prompt=[]), 400, "prompt", None),
    (
        "empty entry in prompt list",
        "/v1/completions",
        _with(OK_COMPLETION, prompt=["ok", ""]),
        400,
        "prompt[1]",
        "empty_prompt",
    ),
    (
        "prompt over token limit",
        "/v1/completions",
        _with(OK_COMPLETION, prompt="sort the list " * 200),
        400,
        "prompt",
        "context_length_exceeded",
    ),
    (
        "too many stop strings",
        "/v1/completions",
        _with(OK_COMPLETION, stop=["a", "b", "c", "d", "e"]),
        400,
        "stop",
        None,
    ),
    ("empty stop string", "/v1/completions", _with(OK_COMPLETION, stop=[""]), 400, "stop", None),
    (
        "logprobs above the cap",
        "/v1/completions",
        _with(OK_COMPLETION, logprobs=21),
        400,
        "logprobs",
        "top_logprobs_too_large",
    ),
    (
        "top_logprobs above the cap",
        "/v1/chat/completions",
        _with(OK_CHAT, logprobs=True, top_logprobs=21),
        400,
        "top_logprobs",
        "top_logprobs_too_large",
    ),
    (
        "top_logprobs without logprobs",
        "/v1/chat/completions",
        _with(OK_CHAT, top_logprobs=2),
        400,
        None,
        None,
    ),
    (
        "invalid JSON schema",
        "/v1/chat/completions",
        _with(
            OK_CHAT,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
            },
        ),
        400,
        "response_format",
        "invalid_json_schema",
    ),
    (
        "json_schema without a schema",
        "/v1/completions",
        _with(OK_COMPLETION, response_format={"type": "json_schema"}),
        400,
        "response_format",
        None,
    ),
    (
        "unknown response_format",
        "/v1/chat/completions",
        _with(OK_CHAT, response_format={"type": "xml"}),
        400,
        None,
        None,
    ),
    (
        "tokenize with prompt and messages",
        "/tokenize",
        {"model": MODEL, "prompt": "a", "messages": [{"role": "user", "content": "a"}]},
        400,
        None,
        None,
    ),
    (
        "tokenize an unknown model",
        "/tokenize",
        {"model": "gpt-4", "prompt": "a"},
        404,
        "model",
        "model_not_found",
    ),
    (
        "detokenize ids out of range",
        "/detokenize",
        {"model": MODEL, "tokens": [1, 10**6]},
        400,
        "tokens",
        None,
    ),
    (
        "unsupported penalty",
        "/v1/chat/completions",
        _with(OK_CHAT, presence_penalty=1.0),
        400,
        "presence_penalty",
        None,
    ),
    ("empty messages", "/v1/chat/completions", _with(OK_CHAT, messages=[]), 400, "messages", None),
    (
        "unknown role",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"role": "wizard", "content": "hi"}]),
        400,
        "messages[0].role",
        None,
    ),
    (
        "tool role",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]),
        400,
        "messages[1].role",
        None,
    ),
    (
        "message without role",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"content": "hi"}]),
        400,
        "messages[0].role",
        "missing_required_parameter",
    ),
    (
        "content is a number",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"role": "user", "content": 3}]),
        400,
        "messages[0].content",
        None,
    ),
    (
        "last message not from user",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
        400,
        "messages",
        None,
    ),
    (
        "only a system message",
        "/v1/chat/completions",
        _with(OK_CHAT, messages=[{"role": "system", "content": "a"}]),
        400,
        "messages",
        None,
    ),
    (
        "image content part",
        "/v1/chat/completions",
        _with(
            OK_CHAT,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        ),
        400,
        None,
        None,
    ),
    (
        "feedback with a bad outcome",
        "/v1/feedback",
        {"request_id": "x", "outcome": "meh"},
        400,
        "outcome",
        None,
    ),
    (
        "feedback for an unknown request",
        "/v1/feedback",
        {"request_id": "cmpl-nope", "outcome": "positive"},
        404,
        "request_id",
        None,
    ),
    (
        "unknown experiment",
        "/v1/completions",
        _with(OK_COMPLETION, model="ab:nope"),
        404,
        "model",
        "model_not_found",
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "status", "param", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_request_gets_an_openai_error(
    causal_server: RunningServer,
    case: str,
    path: str,
    body: dict[str, Any],
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    with causal_server.client() as http:
        _assert_openai_error(http.post(path, json=body), status, param, code)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[1, 2]", b'"a string"', b"null", b'{"model": "tiny-phi", "prompt": "x",}'],
    ids=["broken", "empty", "array", "string", "null", "trailing comma"],
)
def test_a_body_that_is_not_a_json_object_is_400(causal_server: RunningServer, raw: bytes) -> None:
    with causal_server.client() as http:
        response = http.post("/v1/completions", content=raw, headers={"Content-Type": "application/json"})
    _assert_openai_error(response, 400)


def test_a_body_over_the_size_limit_is_413_whether_announced_or_streamed(
    causal_server: RunningServer,
) -> None:
    big = b'{"model": "tiny-phi", "prompt": "' + b"a" * 1_100_000 + b'"}'
    with causal_server.client() as http:
        _assert_openai_error(
            http.post("/v1/completions", content=big, headers={"Content-Type": "application/json"}),
            413,
            code="payload_too_large",
        )
        chunked = http.post(
            "/v1/completions",
            content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
            headers={"Content-Type": "application/json"},
        )
        _assert_openai_error(chunked, 413, code="payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/feedback"),
        ("GET", "/v1/monitoring/drift"),
        ("GET", "/v1/ab/summary"),
    ],
)
@pytest.mark.parametrize(
    "key", [None, "wrong-key-0123456789abcdef", "Basic dXNlcjpwYXNz"], ids=["missing", "wrong", "basic"]
)
def test_every_v1_route_needs_a_valid_key(
    causal_server: RunningServer, method: str, path: str, key: str | None
) -> None:
    headers = {} if key is None else {"Authorization": key if key.startswith("Basic") else f"Bearer {key}"}
    body = OK_COMPLETION if path == "/v1/completions" else OK_CHAT
    response = httpx.request(
        method, causal_server.base_url + path, json=body if method == "POST" else None, headers=headers
    )
    error = _assert_openai_error(response, 401, code="invalid_api_key")
    assert error["type"] == "authentication_error"
    assert "wrong-key" not in response.text


def test_prompt_plus_max_tokens_beyond_the_context_window_is_400(tiny_bundles: Any, kit: Any) -> None:
    # The tiny causal model has 512 positions; the shared test server's caps never reach them.
    settings = {"generation": {"max_new_tokens": 512, "max_prompt_tokens": 512}}
    with kit.run_server(tiny_bundles["causal"], settings) as server, server.client() as http:
        body = {"model": MODEL, "prompt": "sort the list " * 80, "max_tokens": 400}
        error = _assert_openai_error(
            http.post("/v1/completions", json=body), 400, "max_tokens", "context_length_exceeded"
        )
        assert "maximum context length is 512 tokens" in error["message"]
        assert http.post("/v1/completions", json={**body, "max_tokens": 8}).status_code == 200


def test_probes_and_metrics_are_open_without_a_key(causal_server: RunningServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(causal_server.base_url + path).status_code == 200


def test_unknown_routes_and_methods_answer_in_the_openai_shape(causal_server: RunningServer) -> None:
    with causal_server.client() as http:
        _assert_openai_error(http.get("/v1/engines"), 404)
        _assert_openai_error(http.get("/v1/completions"), 405)


def test_no_bad_input_was_counted_as_a_server_error(causal_server: RunningServer) -> None:
    scrape = httpx.get(causal_server.base_url + "/metrics").text
    server_errors = [
        line
        for line in scrape.splitlines()
        if line.startswith("aistudio_requests_total") and 'status="5xx"' in line
    ]
    assert server_errors == []


def test_a_request_that_would_overflow_the_kv_budget_is_400_and_one_that_fits_is_served(
    tiny_bundles: Any, kit: Any
) -> None:
    with kit.run_server(tiny_bundles["causal"], {"scheduler": {"max_kv_tokens": 64}}) as server:
        with server.client() as http:
            prompt_tokens = len(server.state.engine.prompt_ids("sort the list"))
            too_long = {**OK_COMPLETION, "max_tokens": 64 - prompt_tokens + 1}
            error = _assert_openai_error(
                http.post("/v1/completions", json=too_long), 400, "max_tokens", "kv_budget_exceeded"
            )
            assert "KV budget is 64" in error["message"]
            too_many = {**OK_COMPLETION, "max_tokens": 20, "n": 3}
            _assert_openai_error(
                http.post("/v1/completions", json=too_many), 400, "max_tokens", "kv_budget_exceeded"
            )
            assert http.post("/v1/completions", json={**OK_COMPLETION, "max_tokens": 20}).status_code == 200


def test_after_the_battery_no_rows_reserved_kv_or_pinned_adapters_are_left(
    causal_server: RunningServer,
) -> None:
    state = causal_server.state
    scheduler = state.scheduler
    assert (scheduler.active_rows, scheduler.kv_tokens, scheduler.reserved_tokens, scheduler.depth) == (
        0,
        0,
        0,
        0,
    )
    assert all(state.engine.adapters.in_use(name) == 0 for name in state.engine.adapter_names)
    with causal_server.client() as http:
        assert http.post("/v1/completions", json=OK_COMPLETION).status_code == 200


ROUTES_BY_ROLE = [
    ("inference", "GET", "/v1/models", None),
    ("inference", "POST", "/v1/completions", OK_COMPLETION),
    ("inference", "POST", "/v1/chat/completions", OK_CHAT),
    ("inference", "POST", "/tokenize", {"model": MODEL, "prompt": "a"}),
    ("inference", "POST", "/detokenize", {"model": MODEL, "tokens": [1]}),
    ("feedback", "POST", "/v1/feedback", {"request_id": "cmpl-nope", "outcome": "positive"}),
    ("monitoring", "GET", "/v1/monitoring/drift", None),
    ("monitoring", "GET", "/v1/ab/summary", None),
    ("admin", "POST", "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/nowhere"}),
    ("admin", "POST", "/v1/unload_lora_adapter", {"lora_name": "x"}),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "body"), ROUTES_BY_ROLE, ids=[r[2] for r in ROUTES_BY_ROLE]
)
def test_each_route_requires_its_role_and_refuses_the_others_with_403(
    causal_server: RunningServer, kit: Any, role: str, method: str, path: str, body: Any
) -> None:
    for other, key in kit.role_keys.items():
        response = httpx.request(
            method, causal_server.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        if other == role:
            assert response.status_code != 403, response.text  # past the role check (200, 404, 400, ...)
        else:
            error = _assert_openai_error(response, 403, code="insufficient_role")
            assert error["type"] == "permission_error" and f"'{role}'" in error["message"]
            assert key not in response.text


def test_protected_probes_and_metrics_need_the_monitoring_role(tiny_bundles: Any, kit: Any) -> None:
    settings = {"auth": {"protect_health": True, "protect_metrics": True}, "generation": {"warmup": False}}
    with kit.run_server(tiny_bundles["causal"], settings) as server:
        for path in ("/healthz", "/metrics"):
            url = server.base_url + path
            _assert_openai_error(httpx.get(url), 401, code="invalid_api_key")
            inference = {"Authorization": f"Bearer {kit.role_keys['inference']}"}
            _assert_openai_error(httpx.get(url, headers=inference), 403, code="insufficient_role")
            monitoring = {"Authorization": f"Bearer {kit.role_keys['monitoring']}"}
            assert httpx.get(url, headers=monitoring).status_code == 200
