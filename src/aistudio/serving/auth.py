"""Bearer API keys: the one auth dependency every /v1 route (and optionally probes/metrics) uses.

Keys are held only as sha256 digests and compared with `hmac.compare_digest`, against every key,
so neither the comparison time nor an early exit tells a caller how close a guess was. A caller
is identified downstream (rate limiting, logs) by a short digest prefix, never by the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from fastapi import Request

from aistudio.serving.errors import AUTHENTICATION, APIError

ANONYMOUS = "anonymous"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_id(key: str) -> str:
    """A loggable name for a key: 'key-' + 8 hex of its sha256 (the key itself is never logged)."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _unauthorized(message: str) -> APIError:
    return APIError(
        401, message, AUTHENTICATION, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


class ApiKeyAuth:
    """FastAPI dependency: returns the caller's identity, or raises 401 in OpenAI's error shape."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys: list[tuple[bytes, str]] = [(_digest(k), key_id(k)) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None) -> str:
        if not self._keys:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "You didn't provide an API key; send it as an 'Authorization: Bearer <key>' header"
            )
        given = _digest(token.strip())
        match = None
        for digest, name in self._keys:
            if hmac.compare_digest(given, digest):
                match = name
        if match is None:
            raise _unauthorized("Incorrect API key provided")
        return match

    async def __call__(self, request: Request) -> str:
        identity = self.identify(request.headers.get("authorization"))
        request.state.caller = identity
        return identity
