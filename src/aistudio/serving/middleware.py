"""Two plain ASGI middlewares (no BaseHTTPMiddleware: it buffers streams and breaks disconnects).

- `BodySizeLimit`: a body over the limit is answered 413 before any JSON parsing, whether the
  client announced its length or streamed it chunked.
- `RequestObserver`: every response carries `X-Request-ID` (the client's, when it sent a sane
  one, else a new id; generation routes answer with their completion id); after the last byte
  of every inference response, one metrics observation (status class, or the error reason the
  route recorded) and one structured log line.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aistudio.serving.errors import INVALID_REQUEST, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

INFERENCE_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Send) -> None:
        message = f"Request body is larger than the {self.max_bytes}-byte limit"
        await _send_json(send, 413, error_body(message, INVALID_REQUEST, None, "payload_too_large"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        # Read the whole (bounded) body first, then replay it: the app never sees a byte over the limit.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestObserver:
    """Calls `on_finish(scope_state, status, seconds)` once per inference request, after its last byte."""

    def __init__(self, app: ASGIApp, on_finish: Callable[[dict[str, Any], int, float], None]) -> None:
        self.app = app
        self.on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"")
        incoming = given.decode() if _SANE_REQUEST_ID.match(given) else f"req-{uuid.uuid4().hex}"
        scope.setdefault("state", {}).setdefault("request_id", incoming)

        async def with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == REQUEST_ID_HEADER for name, _ in headers):
                    headers.append((REQUEST_ID_HEADER, scope["state"]["request_id"].encode()))
                    message["headers"] = headers
            await send(message)

        if scope["path"] not in INFERENCE_PATHS:
            await self.app(scope, receive, with_request_id)
            return
        began = time.perf_counter()
        status = 500
        reported = False

        def report() -> None:
            nonlocal reported
            if not reported:
                reported = True
                try:
                    self.on_finish(scope["state"], status, time.perf_counter() - began)
                except Exception:
                    log.exception("observing %s failed", scope["path"])

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await with_request_id(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                report()

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            # Answered 500 by Starlette's outermost error middleware, after this one.
            status = 500
            report()
            raise
        finally:
            # A client that went away mid-stream never gets a last body message.
            if not reported:
                scope["state"].setdefault("error_reason", "cancelled")
                report()
