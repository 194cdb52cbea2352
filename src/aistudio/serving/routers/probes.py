"""Kubernetes probes: /healthz (the process is alive) and /readyz (send traffic here)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from aistudio.serving.dependencies import require_when_protected, server
from aistudio.serving.errors import documented

router = APIRouter(tags=["probes"], dependencies=[Depends(require_when_protected("protect_health"))])
_PROBE_ERRORS = documented(401, 403)


@router.get("/healthz", responses=_PROBE_ERRORS)
async def healthz() -> dict[str, str]:
    """The process and its event loop are alive (nothing about the model)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        **_PROBE_ERRORS,
        503: {"description": "Warming up, scheduler stopped, or queue full: {status: unready, reason}"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Model loaded, warm-up done, scheduler running and queue not full: send traffic here."""
    state = server(request)
    if not state.ready:
        reason = "warming up"
    elif not state.scheduler.running:
        reason = "scheduler stopped"
    elif state.scheduler.full:
        reason = "queue full"
    else:
        return JSONResponse({"status": "ready", "models": state.engine.model_ids})
    return JSONResponse({"status": "unready", "reason": reason}, status_code=503)
