"""Request log lines are JSON, carry no prompt unless asked to, never PII or credentials."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from aistudio.data.pii import PiiScrubber
from aistudio.serving.request_log import REDACTED, JsonFormatter, log_request

API_KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
PROMPT = f"Email jane.doe@example.com the report; my key is {API_KEY}"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.request_log.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def log(logger: logging.Logger, **overrides) -> None:
    args = {
        "request_id": "req-1",
        "model": "phi2",
        "adapter": "code",
        "status": 200,
        "latency_s": 0.123456,
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "prompt": PROMPT,
        "log_prompts": False,
        "scrubber": PiiScrubber(["email"]),
        **overrides,
    }
    log_request(logger, **args)


def test_a_request_is_one_json_line_with_its_facts_and_no_prompt(captured) -> None:
    logger, stream = captured
    log(logger)
    (entry,) = lines(stream)
    assert entry["event"] == "request" and entry["level"] == "INFO"
    assert entry["request_id"] == "req-1" and entry["adapter"] == "code" and entry["status"] == 200
    assert entry["latency_s"] == 0.1235 and entry["prompt_tokens"] == 12 and entry["completion_tokens"] == 30
    assert "prompt" not in entry
    assert "jane.doe" not in stream.getvalue()


def test_an_enabled_prompt_is_logged_scrubbed(captured) -> None:
    logger, stream = captured
    log(logger, log_prompts=True)
    (entry,) = lines(stream)
    assert entry["prompt"].startswith("Email [EMAIL] the report")
    assert "jane.doe@example.com" not in stream.getvalue()
    # The scrubber was built without the secret type; keys are scrubbed anyway.
    assert API_KEY not in stream.getvalue() and "[SECRET]" in entry["prompt"]


def test_long_prompts_are_cut_after_scrubbing(captured) -> None:
    logger, stream = captured
    log(logger, log_prompts=True, prompt="x" * 95 + " jane.doe@example.com", max_prompt_chars=100)
    (entry,) = lines(stream)
    assert "jane" not in entry["prompt"] and len(entry["prompt"]) == 101


def test_server_failures_log_as_warnings(captured) -> None:
    logger, stream = captured
    log(logger, status=503)
    log(logger, status="timeout")
    log(logger, status=404)
    assert [e["level"] for e in lines(stream)] == ["WARNING", "WARNING", "INFO"]


def test_authorization_values_never_reach_the_log(captured) -> None:
    logger, stream = captured
    log(logger, authorization=f"Bearer {API_KEY}", user="u-1")
    logger.info(
        "auth attempt with Bearer %s",
        API_KEY,
        extra={"headers": {"Authorization": f"Bearer {API_KEY}", "X-API-Key": API_KEY, "Accept": "*/*"}},
    )
    text = stream.getvalue()
    assert API_KEY not in text
    first, second = lines(stream)
    assert first["authorization"] == REDACTED and first["user"] == "u-1"
    assert second["headers"] == {"Authorization": REDACTED, "X-API-Key": REDACTED, "Accept": "*/*"}
    assert second["message"] == f"auth attempt with Bearer {REDACTED}"


def test_token_counts_are_not_mistaken_for_tokens(captured) -> None:
    logger, stream = captured
    log(logger)
    assert lines(stream)[0]["prompt_tokens"] == 12


def test_context_cannot_overwrite_record_attributes(captured) -> None:
    logger, _ = captured
    with pytest.raises(ValueError, match="msg"):
        log(logger, msg="x")
