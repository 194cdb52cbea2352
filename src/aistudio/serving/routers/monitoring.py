"""What operators and the A/B loop read: /metrics, drift, A/B summary, and user feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from aistudio.serving import errors
from aistudio.serving.dependencies import require, require_when_protected, server
from aistudio.serving.errors import APIError, documented
from aistudio.serving.feedback import submit_feedback
from aistudio.serving.schemas import FeedbackRequest

router = APIRouter(tags=["monitoring"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    dependencies=[Depends(require_when_protected("protect_metrics"))],
    response_class=Response,
    responses={
        200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}, "description": "Prometheus text"},
        **documented(401, 403, 404),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition; names in aistudio.deploy.contract."""
    state = server(request)
    if state.metrics is None:
        raise APIError(404, "Metrics are switched off (monitoring.metrics: false)", errors.NOT_FOUND)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get(
    "/v1/monitoring/drift", dependencies=[Depends(require("monitoring"))], responses=documented(401, 403, 429)
)
async def drift_report(request: Request) -> dict[str, Any]:
    drift = server(request).drift
    if drift is None:
        return {"enabled": False, "detected": False, "features": {}}
    return {"enabled": True, **drift.report()}


@router.get(
    "/v1/ab/summary", dependencies=[Depends(require("monitoring"))], responses=documented(401, 403, 429)
)
async def ab_summary(request: Request) -> dict[str, Any]:
    return server(request).feedback.summary()


@router.post(
    "/v1/feedback",
    dependencies=[Depends(require("feedback"))],
    responses=documented(400, 401, 403, 404, 409, 413, 429),
)
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, str | None]:
    """A verdict on one answer, by its x-aistudio-feedback-token (any replica) or A/B request id."""
    return submit_feedback(server(request), body, getattr(request.state, "caller", None))
