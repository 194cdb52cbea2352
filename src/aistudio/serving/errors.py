"""Every failure answers in OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`.

Bad input is a 4xx naming the field (`param`), never a 500: FastAPI's RequestValidationError
handler is replaced so a wrong type, a missing field or invalid JSON reads like OpenAI's answer.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aistudio.serving.schemas import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
CONFLICT = "conflict_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
OVERLOADED = "overloaded_error"
TIMEOUT = "timeout_error"
SERVER_ERROR = "server_error"


class APIError(Exception):
    """An answer other than success: HTTP status, OpenAI error fields, and an optional metric reason."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        # What aistudio_requests_total counts instead of the status class (queue_full, timeout, ...).
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorDetail(message=message, type=type, param=param, code=code)).model_dump()


# What each status means on this server, for the OpenAPI document (every response it really sends).
_STATUS_DESCRIPTIONS = {
    400: "Invalid request: a field is missing, has the wrong type or is outside the server's limits",
    401: "No API key, or an unknown one",
    403: "The API key lacks the role the route requires",
    404: "Unknown model, adapter or request id",
    409: "Conflicts with the server's state (an adapter name in use, every adapter slot busy)",
    413: "The request body is larger than limits.max_body_bytes",
    422: "The adapter cannot be served: it fails its sha256 check or does not fit the base model",
    429: "Rate limit reached; retry after Retry-After seconds",
    500: "The model failed to generate an answer",
    503: "At capacity, shutting down, or waited too long in the queue; retry after Retry-After seconds",
    504: "Generation did not finish within generation.request_timeout_s",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these statuses, each with the OpenAI error body."""
    return {
        status: {"model": ErrorResponse, "description": _STATUS_DESCRIPTIONS[status]} for status in statuses
    }


GENERATION_ERRORS = (400, 401, 403, 404, 413, 429, 500, 503, 504)


def unprocessable(message: str, param: str | None, code: str) -> APIError:
    return APIError(422, message, INVALID_REQUEST, param, code)


def conflict(message: str, param: str | None, code: str) -> APIError:
    return APIError(409, message, CONFLICT, param, code)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, INVALID_REQUEST, param, code)


def model_not_found(model: str, available: list[str]) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist; this server serves {', '.join(available)}",
        NOT_FOUND,
        "model",
        "model_not_found",
    )


def queue_full(retry_after_s: int) -> APIError:
    return APIError(
        503,
        "The server is at capacity; retry after a short wait",
        OVERLOADED,
        code="queue_full",
        headers={"Retry-After": str(retry_after_s)},
        reason="queue_full",
    )


def queue_timeout(waited_s: float) -> APIError:
    return APIError(
        503,
        f"The request waited {waited_s:.1f} s in the queue without being served; retry later",
        OVERLOADED,
        code="queue_timeout",
        headers={"Retry-After": "1"},
        reason="queue_timeout",
    )


def request_timeout(limit_s: float) -> APIError:
    return APIError(
        504, f"Generation did not finish within {limit_s:g} s", TIMEOUT, code="timeout", reason="timeout"
    )


def shutting_down() -> APIError:
    return APIError(
        503,
        "The server is shutting down; retry on another replica",
        OVERLOADED,
        code="shutting_down",
        headers={"Retry-After": "1"},
        reason="shutting_down",
    )


def engine_error() -> APIError:
    return APIError(
        500,
        "The model failed to generate an answer",
        SERVER_ERROR,
        code="engine_error",
        reason="engine_error",
    )


# --- validation errors → param + message ------------------------------------------------------------

_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "list[str]", "list[TextPart]"}


def _param(loc: tuple[Any, ...]) -> str | None:
    """('body', 'messages', 0, 'role') → 'messages[0].role'; union branch tags are dropped."""
    param = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif (
            isinstance(part, str)
            and part not in _TYPE_TAGS
            and not part[:1].isupper()
            and "[" not in part
            and "-" not in part
        ):
            param += f".{part}" if param else part
    return param or None


def _message(err: dict[str, Any], param: str | None) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "We could not parse the JSON body of your request; send a valid JSON object"
    if kind == "missing":
        return f"'{param}' is a required property" if param else "The request body is missing"
    if param is None and kind in ("model_type", "dict_type", "model_attributes_type"):
        return "The request body must be a JSON object, sent with Content-Type: application/json"
    text = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    got = err.get("input")
    shown = ""
    if isinstance(got, (int, float, str, bool)) and len(repr(got)) <= 60 and "(got " not in text:
        shown = f" (got {got!r})"
    return f"'{param}': {text}{shown}" if param else f"{text}{shown}"


def validation_error(exc: RequestValidationError) -> APIError:
    errors = list(exc.errors())
    # A union (prompt: str | list[str]) fails once per branch; report the field once.
    first = errors[0] if errors else {"type": "invalid", "loc": (), "msg": "invalid request"}
    # json_invalid's loc ends in a character offset, not a field.
    param = None if first.get("type") == "json_invalid" else _param(tuple(first.get("loc", ())))
    same = [e for e in errors if _param(tuple(e.get("loc", ()))) == param]
    message = _message(first, param)
    if len(same) > 1 and first.get("type") in ("string_type", "list_type", "float_type", "int_type"):
        message = f"'{param}': has the wrong type (got {type(first.get('input')).__name__})"
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    if first.get("type") == "json_invalid":
        code = "invalid_json"
    return bad_request(message, param, code)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        request.state.error_reason = exc.reason
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = NOT_FOUND if exc.status_code == 404 else INVALID_REQUEST
        return JSONResponse(
            error_body(str(exc.detail), kind),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("The server had an error while processing your request", SERVER_ERROR), 500
        )
