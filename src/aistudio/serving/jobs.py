"""What the HTTP side hands the scheduler, and what comes back: jobs, stream events, results.

A `GenerationJob` is one prompt of one request, with its n choices: created on the event loop,
advanced by the scheduler's worker thread, answered through an asyncio future (and, when the
request streams, an event queue). Everything the worker thread does to a job reaches the event
loop through `call_soon_threadsafe`; the only state both threads touch is the cancel flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aistudio.serving.sampling import SamplingParams, TokenLogprob


@dataclass(frozen=True)
class ChoiceResult:
    index: int
    text: str
    finish_reason: str  # stop | length
    completion_tokens: int
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class StreamEvent:
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    failed: bool = False  # the job failed and will never finish; the stream reports the error


@dataclass
class GenerationJob:
    prompt_ids: list[int]
    adapter: str | None
    max_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()
    n: int = 1
    index_offset: int = 0  # where this prompt's choices start when a request has several prompts
    logprobs: int | None = None  # None: no logprobs; k: the chosen token's and the k most likely
    prompt_logprobs: bool = False  # echo with logprobs: score the prompt's own tokens too
    grammar: str | None = None  # llguidance grammar of response_format
    events: asyncio.Queue[StreamEvent] | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    future: asyncio.Future[list[ChoiceResult]] = field(init=False)
    arrived: float = field(default_factory=time.perf_counter)
    started: float | None = None  # admitted into the running batch (queue wait ends)
    first_token_at: float | None = None
    prompt_scores: list[TokenLogprob] | None = None
    on_release: Callable[[GenerationJob], None] | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _released: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def reserved_tokens(self) -> int:
        """KV-cache tokens the job may need at most: every choice's prompt plus max_tokens."""
        return self.n * (len(self.prompt_ids) + self.max_tokens)

    def cancel(self) -> None:
        """The client is gone or timed out: its rows leave at the next step, its future is dropped."""
        self._cancelled.set()
        if not self.future.done():
            self.future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def release(self) -> None:
        """Called once when the job leaves the scheduler for good (done, failed, cancelled, refused)."""
        if not self._released:
            self._released = True
            if self.on_release is not None:
                self.on_release(self)

    # --- called from the worker thread ------------------------------------------------------------

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(fn, *args)

    def emit(self, event: StreamEvent) -> None:
        if self.events is not None:
            self._call_soon(self.events.put_nowait, event)

    def complete(self, results: Sequence[ChoiceResult], first_token_at: float | None) -> None:
        self._call_soon(self._complete, list(results), first_token_at)

    def fail(self, exc: BaseException) -> None:
        """From any thread: the job will not be answered; a stream is woken to report it."""
        self._call_soon(self._fail, exc)

    def _complete(self, results: list[ChoiceResult], first_token_at: float | None) -> None:
        self.first_token_at = first_token_at
        if not self.future.done():
            self.future.set_result(results)

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
        if self.events is not None:
            self.events.put_nowait(StreamEvent(-1, "", failed=True))
