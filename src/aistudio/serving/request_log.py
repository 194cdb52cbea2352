"""Structured request logs: one JSON object per line, and nothing in it that must not be there.

What a request log line never holds: the API key (no parameter takes one, and the formatter
replaces any credential-named field and any `Bearer <token>` text, wherever a caller put it),
and the prompt, unless prompt logging was switched on, and then only after PII scrubbing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aistudio.config import PII_TYPES
from aistudio.data.pii import PiiScrubber

REQUEST_LOGGER = "aistudio.serving.requests"
REDACTED = "[REDACTED]"
# Whole field names, compared case-insensitively: "prompt_tokens" is not a token.
_CREDENTIAL_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "proxy_authorization",
        "x-api-key",
        "x_api_key",
        "api-key",
        "api_key",
        "apikey",
        "access_token",
        "token",
        "cookie",
        "set-cookie",
        "password",
        "secret",
    }
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Every attribute a bare LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
DEFAULT_MAX_PROMPT_CHARS = 2000


def _redact(key: str, value: Any) -> Any:
    if key.lower() in _CREDENTIAL_FIELDS:
        return REDACTED
    if isinstance(value, str):
        return (
            _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
            if "earer" in value or "asic" in value
            else value
        )
    if isinstance(value, Mapping):
        return {str(k): _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact("", v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON line: time, level, logger, message and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact("", record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = _redact(key, value)
        if record.exc_info:
            entry["exc_info"] = _redact("", self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


@lru_cache(maxsize=1)
def _secret_scrubber() -> PiiScrubber:
    return PiiScrubber(["secret"])


@lru_cache(maxsize=1)
def default_scrubber() -> PiiScrubber:
    """Every PII type the project knows; built once, it is reused for every request."""
    return PiiScrubber(PII_TYPES)


def loggable_prompt(prompt: str, scrubber: PiiScrubber, max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> str:
    """The prompt with its PII replaced, then cut to `max_chars` (scrubbed first, so the cut can
    never leave half an address that no pattern recognises)."""
    text, _ = scrubber.scrub(prompt)
    if "secret" not in scrubber.types:
        # Keys pasted into a prompt are credentials whatever the PII settings say.
        text, _ = _secret_scrubber().scrub(text)
    return text if len(text) <= max_chars else text[:max_chars] + "…"


def log_request(
    logger: logging.Logger,
    request_id: str,
    model: str,
    adapter: str | None,
    status: int | str,
    latency_s: float,
    prompt_tokens: int,
    completion_tokens: int,
    prompt: str | None = None,
    log_prompts: bool = False,
    scrubber: PiiScrubber | None = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    **context: str | int | float | bool | None,
) -> None:
    """One line per finished request. `context` adds fields (experiment, variant, ...).

    The prompt is left out unless `log_prompts`; then it is PII-scrubbed with `scrubber`
    (default: every PII type) and secrets are scrubbed regardless.
    """
    clashes = sorted(k for k in context if k in _RECORD_ATTRS)
    if clashes:
        raise ValueError(f"context field(s) {clashes} would overwrite LogRecord attributes; rename them")
    fields: dict[str, Any] = {
        "event": "request",
        "request_id": request_id,
        "model": model,
        "adapter": adapter,
        "status": status,
        "latency_s": round(latency_s, 4),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        **context,
    }
    if log_prompts and prompt is not None:
        fields["prompt"] = loggable_prompt(prompt, scrubber or default_scrubber(), max_prompt_chars)
    failed = not isinstance(status, int) or status >= 500
    logger.log(logging.WARNING if failed else logging.INFO, "request", extra=fields)
