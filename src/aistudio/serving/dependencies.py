"""FastAPI dependencies: the server state, and the one role check every protected route declares.

    @router.post("/v1/completions")
    async def completions(..., caller: Caller = Depends(require("inference"))) -> ...

`require(role)` authenticates the bearer key (401), checks the role (403, OpenAI error shape,
naming the key id and the role), then takes a token from the caller's rate-limit bucket (429 +
Retry-After). Probes and /metrics use `require_when_protected`: open unless the settings protect
them (kubelets and Prometheus usually cannot send a key), and then they need `monitoring`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Request

from aistudio.serving import errors
from aistudio.serving.auth import ROLES, Caller, forbidden
from aistudio.serving.errors import APIError
from aistudio.serving.ratelimit import retry_after_header

if TYPE_CHECKING:
    from aistudio.serving.state import ServerState


def server(request: Request) -> ServerState:
    return request.app.state.server


def _authenticate(request: Request, role: str) -> Caller:
    state = server(request)
    caller = state.auth.identify(request.headers.get("authorization"))
    request.state.caller = caller.id
    if role not in caller.roles:
        raise forbidden(caller, role, f"{request.method} {request.url.path}")
    return caller


def require(role: str) -> Callable[[Request], Awaitable[Caller]]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")

    async def dependency(request: Request) -> Caller:
        caller = _authenticate(request, role)
        state = server(request)
        key = caller.id if state.auth.enabled else (request.client.host if request.client else "unknown")
        wait = state.limiter.acquire(key)
        if wait > 0:
            raise APIError(
                429,
                "Rate limit reached for requests; retry after the time in the Retry-After header",
                errors.RATE_LIMIT,
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after_header(wait)},
                reason="rate_limited",
            )
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency


def require_when_protected(setting: str) -> Callable[[Request], Awaitable[None]]:
    """`monitoring` role when settings.auth.<setting> is on, else open."""

    async def dependency(request: Request) -> None:
        if getattr(server(request).settings.auth, setting):
            _authenticate(request, "monitoring")

    dependency.__name__ = f"require_monitoring_when_{setting}"
    return dependency
