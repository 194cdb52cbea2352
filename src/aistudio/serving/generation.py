"""The one generation service behind /v1/completions and /v1/chat/completions: accept, complete, stream.

`accept` does everything that can refuse a request before it costs the model anything: route the
model id (directly or through an A/B experiment), check the sampling fields against the server's
limits, tokenize each prompt and check it against the context window and the KV budget, compile
the response_format grammar, pin the adapter, queue one job per prompt. `complete` waits for the
answers; `stream` turns the jobs' events into server-sent events. The routes only say how a
result looks as a completion or as a chat message (aistudio.serving.responses).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from aistudio.feedback.tokens import TOKEN_HEADER
from aistudio.serving import errors
from aistudio.serving.ab import Assignment
from aistudio.serving.constrained import GrammarError
from aistudio.serving.errors import APIError
from aistudio.serving.jobs import ChoiceResult, GenerationJob, StreamEvent
from aistudio.serving.sampling import SamplingParams
from aistudio.serving.scheduler import QueueFullError, QueueTimeoutError, ShuttingDownError
from aistudio.serving.schemas import SamplingRequest, Usage

if TYPE_CHECKING:
    from aistudio.serving.state import ServerState

# (choice index, text, finish reason, logprobs of the piece, opening chunk?) → a chunk, or None
ChunkBuilder = Callable[[int, str | None, str | None, Sequence[Any], bool], Any]
UsageBuilder = Callable[[Usage], Any]


@dataclass
class Accepted:
    """A request the server took on: its jobs are queued."""

    request_id: str
    jobs: list[GenerationJob]
    deadline: float
    headers: dict[str, str]
    prompts: list[str]
    adapter: str | None
    assignment: Assignment | None = None
    # What the feedback store keeps as the prompt: the user's own text (a chat's last user
    # message, not the template around it), or None when the request is not one answer to rate.
    instruction: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


class GenerationService:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    # --- accept ------------------------------------------------------------------------------------

    async def accept(
        self,
        request: Request,
        body: SamplingRequest,
        prefix: str,
        prompts: Sequence[str],
        param: str,
        instruction: str | None = None,
    ) -> Accepted:
        state = self.state
        request_id = f"{prefix}-{uuid.uuid4().hex}"
        request.state.request_id = request_id
        deadline = time.monotonic() + state.settings.generation.request_timeout_s
        adapter, assignment = self._route_model(request, body, request_id)
        request.state.adapter = adapter
        request.state.model_label = state.engine.model_label(adapter)
        max_tokens = self._check_sampling(body, len(prompts))
        grammar = await self._grammar(body)
        jobs = self._make_jobs(request, prompts, param, body, adapter, max_tokens, grammar)
        self._submit(jobs, adapter)
        self._record_assignment(request, request_id, assignment)
        headers = {"X-Request-ID": request_id}
        if assignment is not None:
            headers["X-AIStudio-Experiment"] = assignment.experiment
            headers["X-AIStudio-Variant"] = assignment.variant
        if state.tokens is not None:
            # A header, not a body field: a streamed answer's headers are sent before its first token.
            experiment, variant = (assignment.experiment, assignment.variant) if assignment else (None, None)
            headers[TOKEN_HEADER] = state.tokens.sign(request_id, experiment, variant)
        one_answer = len(prompts) == 1 and body.choices_per_prompt == 1
        return Accepted(
            request_id,
            jobs,
            deadline,
            headers,
            list(prompts),
            adapter,
            assignment,
            (instruction or prompts[0]) if one_answer else None,
        )

    def _route_model(
        self, request: Request, body: SamplingRequest, request_id: str
    ) -> tuple[str | None, Assignment | None]:
        """The adapter `body.model` names, directly or through an A/B experiment (sticky per user)."""
        state = self.state
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
            return state.engine.resolve(model), assignment
        except LookupError:
            raise errors.model_not_found(body.model, state.engine.model_ids) from None

    def _check_sampling(self, body: SamplingRequest, prompts: int) -> int:
        """Server-side limits on the sampling fields; returns max_tokens."""
        gen = self.state.settings.generation
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
            raise errors.bad_request(
                f"At most {gen.max_prompts} prompts per request (got {prompts})", "prompt"
            )
        top = body.top_logprobs_wanted
        if top is not None and top > gen.max_top_logprobs:
            # Completions name the count `logprobs`; chat has `logprobs: true` and `top_logprobs`.
            field_name = "top_logprobs" if isinstance(getattr(body, "logprobs", None), bool) else "logprobs"
            raise errors.bad_request(
                f"{field_name} is too large: {top}; this server lists at most {gen.max_top_logprobs} "
                "most likely tokens",
                field_name,
                "top_logprobs_too_large",
            )
        return max_tokens

    async def _grammar(self, body: SamplingRequest) -> str | None:
        fmt = body.response_format
        if fmt is None or not fmt.constrained:
            return None
        try:
            # Off the event loop: the first compile also builds the tokenizer's trie (~1 s).
            return await asyncio.to_thread(self.state.engine.grammars.compile, fmt.schema_body)
        except GrammarError as exc:
            raise errors.bad_request(str(exc), "response_format", "invalid_json_schema") from None

    def _make_jobs(
        self,
        request: Request,
        prompts: Sequence[str],
        param: str,
        body: SamplingRequest,
        adapter: str | None,
        max_tokens: int,
        grammar: str | None,
    ) -> list[GenerationJob]:
        state = self.state
        gen, engine = state.settings.generation, state.engine
        n = body.choices_per_prompt
        events: asyncio.Queue[StreamEvent] | None = asyncio.Queue() if body.stream else None
        sampling = SamplingParams(body.sampling_temperature, body.sampling_top_p, body.seed)
        top = body.top_logprobs_wanted
        echo = bool(getattr(body, "echo", False))
        tokenized = []
        for i, prompt in enumerate(prompts):
            where = param if len(prompts) == 1 or param != "prompt" else f"prompt[{i}]"
            if not prompt.strip():
                raise errors.bad_request(f"'{where}' must not be empty", where, "empty_prompt")
            ids = engine.prompt_ids(prompt)
            if len(ids) > gen.max_prompt_tokens:
                raise errors.bad_request(
                    f"The prompt is {len(ids)} tokens long; "
                    f"this server accepts at most {gen.max_prompt_tokens}",
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
        for i, (_, ids) in enumerate(tokenized):
            job = GenerationJob(
                ids,
                adapter,
                max_tokens,
                sampling,
                tuple(body.stop_sequences),
                n,
                i * n,
                logprobs=top,
                prompt_logprobs=echo and top is not None,
                grammar=grammar,
                events=events,
            )
            if not state.scheduler.fits(job):
                limit = state.settings.scheduler.max_kv_tokens
                raise errors.bad_request(
                    f"This request needs {job.reserved_tokens} KV-cache tokens ({n} x ({len(ids)} prompt + "
                    f"{max_tokens} max_tokens)); the server's KV budget is {limit}; lower max_tokens or n",
                    "max_tokens",
                    "kv_budget_exceeded",
                )
            jobs.append(job)
        for text, ids in tokenized:
            state.observe_prompt(text, ids, adapter)
        request.state.prompt_tokens = sum(j.prompt_tokens for j in jobs)
        if state.settings.logging.log_prompts:
            request.state.prompt = "\n---\n".join(prompts)
        return jobs

    def _submit(self, jobs: list[GenerationJob], adapter: str | None) -> None:
        pool = self.state.engine.adapters
        submitted: list[GenerationJob] = []
        try:
            for job in jobs:
                pool.pin(adapter)
                job.on_release = lambda _job: pool.unpin(adapter)
                self.state.scheduler.submit(job)
                submitted.append(job)
        except (QueueFullError, ShuttingDownError) as exc:
            for job in jobs:
                job.cancel()
                if job not in submitted:
                    job.release()
            if isinstance(exc, QueueFullError):
                raise errors.queue_full(exc.retry_after_s) from None
            raise errors.shutting_down() from None

    def _record_assignment(self, request: Request, request_id: str, assignment: Assignment | None) -> None:
        """Count an A/B assignment once its request is accepted (a 4xx was never served by a variant)."""
        if assignment is None:
            return
        state = self.state
        state.feedback.record_assignment(request_id, assignment)
        if state.metrics is not None:
            state.metrics.count_assignment(assignment.experiment, assignment.variant)
        request.state.experiment = assignment.experiment
        request.state.variant = assignment.variant

    # --- complete ------------------------------------------------------------------------------------

    def _failure(self, exc: BaseException) -> APIError:
        limit = self.state.settings.generation.request_timeout_s
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, TimeoutError):
            return errors.request_timeout(limit)
        if isinstance(exc, QueueTimeoutError):
            return errors.queue_timeout(exc.waited_s)
        if isinstance(exc, ShuttingDownError):
            return errors.shutting_down()
        return errors.engine_error()

    async def complete(self, accepted: Accepted) -> list[ChoiceResult]:
        jobs = accepted.jobs
        try:
            done = await asyncio.wait_for(
                asyncio.gather(*(j.future for j in jobs)), max(0.0, accepted.deadline - time.monotonic())
            )
        except BaseException as exc:
            for job in jobs:
                job.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._failure(exc) from None
        return [choice for per_job in done for choice in per_job]

    def usage(self, request: Request, accepted: Accepted, completion_tokens: int) -> Usage:
        state, jobs = self.state, accepted.jobs
        prompt_tokens = sum(j.prompt_tokens for j in jobs)
        request.state.completion_tokens = completion_tokens
        if state.metrics is not None:
            state.metrics.observe_tokens(
                state.engine.base_id, accepted.adapter, prompt_tokens, completion_tokens
            )
            firsts = [j.first_token_at for j in jobs if j.first_token_at is not None]
            if firsts:
                state.metrics.observe_ttft(
                    state.engine.base_id, accepted.adapter, min(firsts) - min(j.arrived for j in jobs)
                )
        return Usage.of(prompt_tokens, completion_tokens)

    def record_answer(self, accepted: Accepted, results: Sequence[ChoiceResult]) -> None:
        """Keep a served answer in the feedback store (when feedback.record is on)."""
        log = self.state.feedback_log
        if log is None or accepted.instruction is None or not results:
            return
        assignment = accepted.assignment
        log.record_response(
            accepted.request_id,
            self.state.engine.model_label(accepted.adapter),
            self.state.model_version,
            accepted.adapter,
            accepted.instruction,
            results[0].text,
            assignment.experiment if assignment else None,
            assignment.variant if assignment else None,
        )

    # --- stream --------------------------------------------------------------------------------------

    def stream(
        self, request: Request, accepted: Accepted, chunk: ChunkBuilder, usage_chunk: UsageBuilder | None
    ) -> StreamingResponse:
        return StreamingResponse(
            self._events(request, accepted, chunk, usage_chunk),
            media_type="text/event-stream",
            headers={**accepted.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(
        self, request: Request, accepted: Accepted, chunk: ChunkBuilder, usage_chunk: UsageBuilder | None
    ) -> AsyncIterator[str]:
        """SSE: one chunk per new piece of text as the scheduler generates it, then `data: [DONE]`."""
        jobs = accepted.jobs
        events = jobs[0].events
        assert events is not None
        total = sum(j.n for j in jobs)
        finished = 0
        try:
            for index in range(total):
                opening = chunk(index, None, None, (), True)
                if opening is not None:
                    yield _sse(opening)
            while finished < total:
                try:
                    event = await asyncio.wait_for(
                        events.get(), max(0.0, accepted.deadline - time.monotonic())
                    )
                except TimeoutError:
                    event = None
                if event is None or event.failed:
                    # Past the deadline, or a job failed (queue timeout, engine error) and will never stream.
                    failed = [
                        j.future.exception() for j in jobs if j.future.done() and not j.future.cancelled()
                    ]
                    cause = next((e for e in failed if e is not None), None) if event is not None else None
                    error = self._failure(cause or TimeoutError())
                    request.state.error_reason = error.reason
                    yield _sse(error.body())
                    break
                if event.text or event.finish_reason:
                    yield _sse(chunk(event.index, event.text, event.finish_reason, event.logprobs, False))
                if event.finish_reason is not None:
                    finished += 1
            else:
                results = await self.complete(accepted)
                usage = self.usage(request, accepted, sum(r.completion_tokens for r in results))
                self.record_answer(accepted, results)
                if usage_chunk is not None:
                    yield _sse(usage_chunk(usage))
            yield "data: [DONE]\n\n"
        finally:
            for job in jobs:
                if not job.future.done():
                    job.cancel()


def _sse(payload: Any) -> str:
    data = payload.model_dump_json() if hasattr(payload, "model_dump_json") else json.dumps(payload)
    return f"data: {data}\n\n"
