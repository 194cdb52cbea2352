"""The HTTP surface: OpenAI-compatible /v1 routes, probes, metrics, drift and A/B endpoints.

Model ids: the base model is `<base>` (the bundle's model name, or settings.served_model_name);
each adapter is listed as `<base>:<adapter>`. A request may also name an adapter bare
(`"model": "code"`, as with vLLM's LoRA modules) or the base as `base`, and `ab:<experiment>`
(or an experiment alias) lets the A/B router pick the variant, sticky per `user`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from aistudio.serving import errors
from aistudio.serving.ab import Assignment, FeedbackAlreadyRecorded
from aistudio.serving.batcher import QueueFullError, QueueTimeoutError, ShuttingDownError
from aistudio.serving.chat import render_chat
from aistudio.serving.engine import ChoiceResult, GenerationJob, StreamEvent
from aistudio.serving.errors import APIError
from aistudio.serving.ratelimit import retry_after_header
from aistudio.serving.sampling import SamplingParams
from aistudio.serving.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    FeedbackRequest,
    ModelCard,
    ModelList,
    SamplingRequest,
    Usage,
)

if TYPE_CHECKING:
    from aistudio.serving.app import ServerState

router = APIRouter()


def server(request: Request) -> ServerState:
    return request.app.state.server


async def authorize(request: Request) -> str:
    """The one auth dependency: a valid bearer key (when keys are configured), then the rate limit."""
    state = server(request)
    caller = await state.auth(request)
    key = caller if state.auth.enabled else (request.client.host if request.client else "unknown")
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


async def authorize_probe(request: Request) -> None:
    state = server(request)
    if state.settings.auth.protect_health:
        await state.auth(request)


async def authorize_metrics(request: Request) -> None:
    state = server(request)
    if state.settings.auth.protect_metrics:
        await state.auth(request)


# --- probes and metrics ----------------------------------------------------------------------------


@router.get("/healthz", dependencies=[Depends(authorize_probe)])
async def healthz() -> dict[str, str]:
    """The process and its event loop are alive (nothing about the model)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(authorize_probe)])
async def readyz(request: Request) -> JSONResponse:
    """Model loaded, warm-up done, batcher running and queue not full: send traffic here."""
    state = server(request)
    if not state.ready:
        reason = "warming up"
    elif not state.batcher.running:
        reason = "batcher stopped"
    elif state.batcher.full:
        reason = "queue full"
    else:
        return JSONResponse({"status": "ready", "models": state.engine.model_ids})
    return JSONResponse({"status": "unready", "reason": reason}, status_code=503)


@router.get("/metrics", dependencies=[Depends(authorize_metrics)])
async def metrics(request: Request) -> Response:
    state = server(request)
    if state.metrics is None:
        raise APIError(404, "Metrics are switched off (monitoring.metrics: false)", errors.NOT_FOUND)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


# --- /v1: models, monitoring, feedback ----------------------------------------------------------------


@router.get("/v1/models", dependencies=[Depends(authorize)])
async def list_models(request: Request) -> ModelList:
    engine = server(request).engine
    cards = [ModelCard(id=engine.base_id, created=engine.created, root=engine.base_id)]
    cards += [
        ModelCard(id=engine.adapter_id(a), created=engine.created, root=engine.base_id, parent=engine.base_id)
        for a in engine.adapters
    ]
    return ModelList(data=cards)


@router.get("/v1/monitoring/drift", dependencies=[Depends(authorize)])
async def drift_report(request: Request) -> dict[str, Any]:
    drift = server(request).drift
    if drift is None:
        return {"enabled": False, "detected": False, "features": {}}
    return {"enabled": True, **drift.report()}


@router.post("/v1/feedback", dependencies=[Depends(authorize)])
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, str]:
    state = server(request)
    try:
        experiment, variant = state.feedback.record_feedback(body.request_id, body.outcome)
    except KeyError:
        raise APIError(
            404,
            f"No A/B request with id '{body.request_id}' is awaiting feedback",
            errors.NOT_FOUND,
            "request_id",
        ) from None
    except FeedbackAlreadyRecorded:
        raise APIError(409, f"Request '{body.request_id}' already has feedback", param="request_id") from None
    if state.metrics is not None:
        state.metrics.count_feedback(experiment, variant, body.outcome)
    return {"status": "recorded", "experiment": experiment, "variant": variant}


@router.get("/v1/ab/summary", dependencies=[Depends(authorize)])
async def ab_summary(request: Request) -> dict[str, Any]:
    return server(request).feedback.summary()


# --- /v1: generation -----------------------------------------------------------------------------------


class _Target:
    """Which adapter serves a request, and whether an A/B experiment chose it."""

    def __init__(self, adapter: str | None, assignment: Assignment | None) -> None:
        self.adapter = adapter
        self.assignment = assignment


def _route_model(state: ServerState, request: Request, body: SamplingRequest, request_id: str) -> _Target:
    """The adapter `body.model` names, directly or through an A/B experiment (sticky per user)."""
    try:
        experiment = state.ab.experiment_for(body.model)
    except KeyError as exc:
        raise errors.model_not_found(body.model, state.engine.model_ids) from exc
    assignment = None
    model = body.model
    if experiment is not None:
        header = state.ab.experiments[experiment].header
        assignment = state.ab.route(
            body.model, body.user, request.headers.get(header) if header else None, request_id
        )
        assert assignment is not None  # experiment_for found it
        model = assignment.model
    try:
        adapter = state.engine.resolve(model)
    except LookupError:
        raise errors.model_not_found(body.model, state.engine.model_ids) from None
    return _Target(adapter, assignment)


def _record_assignment(state: ServerState, request: Request, request_id: str, target: _Target) -> None:
    """Count an A/B assignment once its request is accepted (a 4xx was never served by a variant)."""
    assignment = target.assignment
    if assignment is None:
        return
    state.feedback.record_assignment(request_id, assignment)
    if state.metrics is not None:
        state.metrics.count_assignment(assignment.experiment, assignment.variant)
    request.state.experiment = assignment.experiment
    request.state.variant = assignment.variant


def _check_sampling(state: ServerState, body: SamplingRequest, prompts: int) -> int:
    """Server-side limits on the sampling fields; returns max_tokens."""
    gen = state.settings.generation
    max_tokens = body.max_tokens if body.max_tokens is not None else gen.default_max_tokens
    if max_tokens > gen.max_new_tokens:
        raise errors.bad_request(
            f"max_tokens is too large: {max_tokens}; this server allows at most {gen.max_new_tokens}",
            "max_tokens",
        )
    n = body.choices_per_prompt
    if n > gen.max_n:
        raise errors.bad_request(f"n is too large: {n}; this server allows at most {gen.max_n}", "n")
    if prompts > gen.max_prompts:
        raise errors.bad_request(f"At most {gen.max_prompts} prompts per request (got {prompts})", "prompt")
    return max_tokens


def _make_jobs(
    state: ServerState,
    request: Request,
    prompts: Sequence[str],
    param: str,
    body: SamplingRequest,
    adapter: str | None,
    max_tokens: int,
) -> list[GenerationJob]:
    gen, engine = state.settings.generation, state.engine
    n = body.choices_per_prompt
    events: asyncio.Queue[StreamEvent] | None = asyncio.Queue() if body.stream else None
    sampling = SamplingParams(body.sampling_temperature, body.sampling_top_p, body.seed)
    tokenized = []
    for i, prompt in enumerate(prompts):
        where = param if len(prompts) == 1 or param != "prompt" else f"prompt[{i}]"
        if not prompt.strip():
            raise errors.bad_request(f"'{where}' must not be empty", where, "empty_prompt")
        ids = engine.prompt_ids(prompt)
        if len(ids) > gen.max_prompt_tokens:
            raise errors.bad_request(
                f"The prompt is {len(ids)} tokens long; this server accepts at most {gen.max_prompt_tokens}",
                where,
                "context_length_exceeded",
            )
        window = engine.context_window
        if window is not None and len(ids) + max_tokens > window:
            raise errors.bad_request(
                f"This model's maximum context length is {window} tokens, but you requested "
                f"{len(ids) + max_tokens} ({len(ids)} in the prompt, {max_tokens} max_tokens); "
                "shorten either",
                "max_tokens",
                "context_length_exceeded",
            )
        tokenized.append((prompt, ids))
    jobs = []
    for i, (prompt, ids) in enumerate(tokenized):
        state.observe_prompt(prompt, ids, adapter)
        jobs.append(
            GenerationJob(
                prompt, len(ids), adapter, max_tokens, sampling, tuple(body.stop_sequences), n, i * n, events
            )
        )
    request.state.prompt_tokens = sum(j.prompt_tokens for j in jobs)
    if state.settings.logging.log_prompts:
        request.state.prompt = "\n---\n".join(prompts)
    return jobs


def _submit(state: ServerState, jobs: list[GenerationJob]) -> None:
    try:
        for job in jobs:
            state.batcher.submit(job)
    except QueueFullError as exc:
        for job in jobs:
            job.cancel()
        raise errors.queue_full(exc.retry_after_s) from None
    except ShuttingDownError:
        for job in jobs:
            job.cancel()
        raise errors.shutting_down() from None


def _failure(exc: BaseException, limit_s: float) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, TimeoutError):
        return errors.request_timeout(limit_s)
    if isinstance(exc, QueueTimeoutError):
        return errors.queue_timeout(exc.waited_s)
    if isinstance(exc, ShuttingDownError):
        return errors.shutting_down()
    return errors.engine_error()


async def _results(state: ServerState, jobs: list[GenerationJob], deadline: float) -> list[ChoiceResult]:
    limit = state.settings.generation.request_timeout_s
    try:
        done = await asyncio.wait_for(
            asyncio.gather(*(j.future for j in jobs)), max(0.0, deadline - time.monotonic())
        )
    except BaseException as exc:
        for job in jobs:
            job.cancel()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise _failure(exc, limit) from None
    return [choice for per_job in done for choice in per_job]


def _record_usage(
    state: ServerState, request: Request, jobs: list[GenerationJob], completion_tokens: int
) -> Usage:
    prompt_tokens = sum(j.prompt_tokens for j in jobs)
    request.state.completion_tokens = completion_tokens
    adapter = jobs[0].adapter
    if state.metrics is not None:
        state.metrics.observe_tokens(state.engine.base_id, adapter, prompt_tokens, completion_tokens)
        firsts = [j.first_token_at for j in jobs if j.first_token_at is not None]
        if firsts:
            state.metrics.observe_ttft(
                state.engine.base_id, adapter, min(firsts) - min(j.arrived for j in jobs)
            )
    return Usage.of(prompt_tokens, completion_tokens)


def _start(request: Request, body: SamplingRequest, prefix: str) -> tuple[ServerState, str, _Target, float]:
    state = server(request)
    request_id = f"{prefix}-{uuid.uuid4().hex}"
    request.state.request_id = request_id
    deadline = time.monotonic() + state.settings.generation.request_timeout_s
    target = _route_model(state, request, body, request_id)
    request.state.adapter = target.adapter
    request.state.model_label = state.engine.model_label(target.adapter)
    return state, request_id, target, deadline


def _headers(request_id: str, target: _Target) -> dict[str, str]:
    headers = {"X-Request-ID": request_id}
    if target.assignment is not None:
        headers["X-AIStudio-Experiment"] = target.assignment.experiment
        headers["X-AIStudio-Variant"] = target.assignment.variant
    return headers


def _sse(payload: Any) -> str:
    data = (
        payload.model_dump_json(exclude_none=False)
        if hasattr(payload, "model_dump_json")
        else json.dumps(payload)
    )
    return f"data: {data}\n\n"


async def _stream(
    state: ServerState,
    request: Request,
    jobs: list[GenerationJob],
    deadline: float,
    chunk: Any,
    usage_chunk: Any | None,
) -> AsyncIterator[str]:
    """SSE: one chunk per new piece of text as the batch generates it, then `data: [DONE]`."""
    events = jobs[0].events
    assert events is not None
    total = sum(j.n for j in jobs)
    finished = 0
    for job in jobs:
        job.future.add_done_callback(_wake_on_failure(events))
    try:
        for index in range(total):
            opening = chunk(index, None, None, True)
            if opening is not None:
                yield _sse(opening)
        while finished < total:
            try:
                event = await asyncio.wait_for(events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                event = None
            if event is None or event.index < 0:
                # Past the deadline, or a job failed (queue timeout, engine error) and will never stream.
                failed = [j.future.exception() for j in jobs if j.future.done() and not j.future.cancelled()]
                cause = (
                    next((e for e in failed if e is not None), None) if event is not None else TimeoutError()
                )
                error = _failure(cause or TimeoutError(), state.settings.generation.request_timeout_s)
                request.state.error_reason = error.reason
                yield _sse(error.body())
                break
            if event.text or event.finish_reason:
                yield _sse(chunk(event.index, event.text, event.finish_reason, False))
            if event.finish_reason is not None:
                finished += 1
        else:
            results = await _results(state, jobs, deadline)
            usage = _record_usage(state, request, jobs, sum(r.completion_tokens for r in results))
            if usage_chunk is not None:
                yield _sse(usage_chunk(usage))
        yield "data: [DONE]\n\n"
    finally:
        for job in jobs:
            if not job.future.done():
                job.cancel()


def _wake_on_failure(events: asyncio.Queue[StreamEvent]) -> Any:
    """A job that fails (queue timeout, engine error) never streams; wake the stream to report it."""

    def callback(future: asyncio.Future[list[ChoiceResult]]) -> None:
        if not future.cancelled() and future.exception() is not None:
            events.put_nowait(StreamEvent(-1, ""))

    return callback


@dataclass(frozen=True)
class _Accepted:
    state: ServerState
    request_id: str
    jobs: list[GenerationJob]
    deadline: float
    headers: dict[str, str]


def _accept(
    request: Request, body: SamplingRequest, prefix: str, prompts: Sequence[str], param: str
) -> _Accepted:
    """Shared by both generation routes: check limits, queue one job per prompt × n, count the A/B arm."""
    state, request_id, target, deadline = _start(request, body, prefix)
    max_tokens = _check_sampling(state, body, len(prompts))
    jobs = _make_jobs(state, request, prompts, param, body, target.adapter, max_tokens)
    _submit(state, jobs)
    _record_assignment(state, request, request_id, target)
    return _Accepted(state, request_id, jobs, deadline, _headers(request_id, target))


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, caller: str = Depends(authorize)) -> Any:
    accepted = _accept(request, body, "cmpl", body.prompts, "prompt")
    state, request_id, jobs, deadline, headers = (
        accepted.state,
        accepted.request_id,
        accepted.jobs,
        accepted.deadline,
        accepted.headers,
    )
    model = body.model
    if body.stream:
        created = int(time.time())

        def chunk(index: int, text: str | None, finish: str | None, opening: bool) -> Any:
            if opening:
                return None
            return Completion(
                id=request_id,
                created=created,
                model=model,
                choices=[CompletionChoice(index=index, text=text or "", finish_reason=finish)],
            )

        def usage_chunk(usage: Usage) -> Any:
            return Completion(id=request_id, created=created, model=model, choices=[], usage=usage)

        return _streaming_response(
            state, request, jobs, deadline, chunk, usage_chunk if body.include_usage_chunk else None, headers
        )
    results = await _results(state, jobs, deadline)
    usage = _record_usage(state, request, jobs, sum(r.completion_tokens for r in results))
    choices = [CompletionChoice(index=r.index, text=r.text, finish_reason=r.finish_reason) for r in results]
    return JSONResponse(
        Completion(id=request_id, model=model, choices=choices, usage=usage).model_dump(), headers=headers
    )


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, caller: str = Depends(authorize)
) -> Any:
    prompt = render_chat(body.messages, server(request).engine.tokenizer)
    accepted = _accept(request, body, "chatcmpl", [prompt], "messages")
    state, request_id, jobs, deadline, headers = (
        accepted.state,
        accepted.request_id,
        accepted.jobs,
        accepted.deadline,
        accepted.headers,
    )
    model = body.model
    if body.stream:
        created = int(time.time())

        def chunk(index: int, text: str | None, finish: str | None, opening: bool) -> Any:
            delta = ChatDelta(role="assistant", content="") if opening else ChatDelta(content=text or None)
            return ChatCompletionChunk(
                id=request_id,
                created=created,
                model=model,
                choices=[ChatChunkChoice(index=index, delta=delta, finish_reason=finish)],
            )

        def usage_chunk(usage: Usage) -> Any:
            return ChatCompletionChunk(id=request_id, created=created, model=model, choices=[], usage=usage)

        return _streaming_response(
            state, request, jobs, deadline, chunk, usage_chunk if body.include_usage_chunk else None, headers
        )
    results = await _results(state, jobs, deadline)
    usage = _record_usage(state, request, jobs, sum(r.completion_tokens for r in results))
    choices = [
        ChatChoice(index=r.index, message=AssistantMessage(content=r.text), finish_reason=r.finish_reason)
        for r in results
    ]
    return JSONResponse(
        ChatCompletion(id=request_id, model=model, choices=choices, usage=usage).model_dump(), headers=headers
    )


def _streaming_response(
    state: ServerState,
    request: Request,
    jobs: list[GenerationJob],
    deadline: float,
    chunk: Any,
    usage_chunk: Any | None,
    headers: dict[str, str],
) -> StreamingResponse:
    return StreamingResponse(
        _stream(state, request, jobs, deadline, chunk, usage_chunk),
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
