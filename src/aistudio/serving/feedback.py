"""POST /v1/feedback: one verdict per answer, verified, counted for A/B and kept for retraining.

With a token (aistudio.feedback.tokens) any replica can take the verdict: the token names the
request, experiment and variant, its HMAC proves this deployment issued it, and the replay guard
makes it single-use. Without one, the request id must be an A/B request this replica served and
still remembers (aistudio.serving.ab.FeedbackStore). Every refusal happens before anything is
counted or written. An accepted verdict is counted per variant (positive/negative polarity,
aistudio_feedback_total) and, when feedback.record is on, appended to the feedback store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aistudio.feedback.tokens import TokenError
from aistudio.serving import errors
from aistudio.serving.ab import FeedbackAlreadyRecorded
from aistudio.serving.errors import APIError
from aistudio.serving.schemas import FeedbackRequest

if TYPE_CHECKING:
    from aistudio.serving.state import ServerState

# The store's outcome and the A/B polarity of each outcome a client may send; a correction
# counts against the variant: the served answer was not what the user wanted.
STORED_OUTCOME = {"positive": "accepted", "negative": "rejected"}
POLARITY = {
    "positive": "positive",
    "accepted": "positive",
    "negative": "negative",
    "rejected": "negative",
    "corrected": "negative",
}


def _check_shape(body: FeedbackRequest) -> None:
    if body.token is None and body.request_id is None:
        raise errors.bad_request(
            "Give the answer's feedback token (x-aistudio-feedback-token) or its request_id",
            "token",
            "missing_required_parameter",
        )
    if body.outcome == "corrected" and body.correction is None:
        raise errors.bad_request(
            "outcome 'corrected' needs 'correction': the answer that should have been given",
            "correction",
            "missing_required_parameter",
        )
    if body.outcome != "corrected" and body.correction is not None:
        raise errors.bad_request(
            f"'correction' is only for outcome 'corrected' (got outcome '{body.outcome}')", "correction"
        )


def submit_feedback(state: ServerState, body: FeedbackRequest, caller: str | None) -> dict[str, Any]:
    _check_shape(body)
    polarity = POLARITY[body.outcome]
    if body.token is not None:
        request_id, experiment, variant = _by_token(state, body, polarity)
    else:
        assert body.request_id is not None
        request_id = body.request_id
        try:
            experiment, variant = state.feedback.record_feedback(request_id, polarity)
        except KeyError:
            raise APIError(
                404,
                f"No A/B request with id '{request_id}' is awaiting feedback on this replica; "
                "send the answer's feedback token instead",
                errors.NOT_FOUND,
                "request_id",
            ) from None
        except FeedbackAlreadyRecorded:
            raise _already(request_id) from None
    if state.metrics is not None and experiment is not None and variant is not None:
        state.metrics.count_feedback(experiment, variant, polarity)
    if state.feedback_log is not None:
        state.feedback_log.record_feedback(
            request_id,
            STORED_OUTCOME.get(body.outcome, body.outcome),
            body.correction,
            experiment,
            variant,
            caller,
        )
    return {"status": "recorded", "request_id": request_id, "experiment": experiment, "variant": variant}


def _already(request_id: str) -> APIError:
    return errors.conflict(f"Request '{request_id}' already has feedback", "request_id", "feedback_exists")


def _by_token(state: ServerState, body: FeedbackRequest, polarity: str) -> tuple[str, str | None, str | None]:
    assert body.token is not None
    if state.tokens is None:
        raise errors.bad_request(
            "This server issues no feedback tokens (no feedback secret is configured); send request_id",
            "token",
            "feedback_tokens_disabled",
        )
    try:
        claims = state.tokens.verify(body.token)
    except TokenError as exc:
        raise errors.bad_request(str(exc), "token", exc.code) from None
    if body.request_id is not None and body.request_id != claims.request_id:
        raise errors.bad_request(
            f"request_id '{body.request_id}' is not the request this token was issued for",
            "request_id",
            "feedback_token_mismatch",
        )
    if not state.replay.consume(body.token, claims.expires_at):
        raise errors.conflict(
            f"This feedback token was already used (request '{claims.request_id}')",
            "token",
            "feedback_token_used",
        )
    if claims.experiment is not None and claims.variant is not None:
        try:
            state.feedback.record_signed(claims.request_id, claims.experiment, claims.variant, polarity)
        except FeedbackAlreadyRecorded:
            raise _already(claims.request_id) from None
    return claims.request_id, claims.experiment, claims.variant
