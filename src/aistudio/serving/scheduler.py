"""The iteration-level scheduler: one worker thread, one step at a time, every active row in each.

A step is: run whatever was asked between steps (adapter loads), drop rows whose client left,
admit waiting jobs while rows and KV budget allow, then ONE prefill forward (fresh prompts and the
next chunk of long ones, within the step's token budget) and ONE decode forward over every row
that is generating. A row whose prompt completes in this step gets its first token from the
prefill and joins the decode batch in the next step; a row that ends (EOS, stop string,
max_tokens, grammar complete, client gone) leaves at once and its slot is reused. So a short
request admitted while a long one runs finishes first, and no request waits for a batch.

Rows are kept in slots 0..R-1 of the KV cache (`model_runner`, `kv_cache`): a row that leaves is
replaced by the last one; a row that finishes its prefill moves into slot R.

Admission reserves each choice's prompt + max_tokens of the `max_kv_tokens` budget, so a running
row never runs out of cache and nothing is ever preempted; a job that could never fit is refused
when it arrives (the HTTP side checks `fits`). Backpressure as before: a full queue refuses at
once (503 + Retry-After), a job that waited `queue_timeout_s` is refused when it would be admitted.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from aistudio.serving.constrained import JsonGrammars
from aistudio.serving.jobs import GenerationJob
from aistudio.serving.model_runner import PrefillChunk
from aistudio.serving.sampling import choose_tokens, prompt_logprobs, token_logprobs
from aistudio.serving.sequence import GenerationSequence, mask_with_grammars

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.05


class QueueFullError(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class QueueTimeoutError(Exception):
    def __init__(self, waited_s: float) -> None:
        super().__init__(f"waited {waited_s:.1f} s in the queue")
        self.waited_s = waited_s


class ShuttingDownError(Exception):
    pass


class StepObserver(Protocol):
    def observe_queue_wait(self, seconds: float) -> None: ...
    def set_queue_depth(self, depth: int) -> None: ...
    def observe_step(self, phase: str, seconds: float, tokens: int) -> None: ...
    def set_scheduler_state(self, active_rows: int, kv_tokens: int, kv_reserved: int) -> None: ...


class _NoObserver:
    def observe_queue_wait(self, seconds: float) -> None: ...
    def set_queue_depth(self, depth: int) -> None: ...
    def observe_step(self, phase: str, seconds: float, tokens: int) -> None: ...
    def set_scheduler_state(self, active_rows: int, kv_tokens: int, kv_reserved: int) -> None: ...


@dataclass(frozen=True)
class SchedulerLimits:
    max_rows: int  # active rows (choices) at once: the decode batch's upper bound
    max_step_tokens: int  # tokens per step: decode rows count one each, prefill the rest
    max_kv_tokens: int  # KV budget: prompt + max_tokens reserved per admitted row
    prefill_chunk: int  # at most this many tokens of one prompt per step
    max_depth: int  # waiting jobs before the queue refuses
    queue_timeout_s: float


class Scheduler:
    def __init__(
        self,
        runner: Any,
        family: str,
        limits: SchedulerLimits,
        decode_text: Callable[[list[int]], str],
        eos_ids: Collection[int],
        grammars: JsonGrammars | None = None,
        score_prompt: Callable[[list[int], str | None], torch.Tensor] | None = None,
        observer: StepObserver | None = None,
    ) -> None:
        self.runner = runner
        self.seq2seq = family == "seq2seq"
        self.limits = limits
        self._decode_text = decode_text
        self._eos = frozenset(eos_ids)
        self._grammars = grammars
        self._score_prompt = score_prompt
        self._observer = observer or _NoObserver()
        self._inbox: deque[GenerationJob] = deque()  # appended on the event loop, taken by the worker
        self._waiting: deque[GenerationJob] = deque()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._decoding: list[GenerationSequence] = []  # index == slot
        self._prefilling: list[GenerationSequence] = []  # admission order
        self._free = list(range(limits.max_rows))
        self._reserved = 0
        self._siblings: dict[int, list[GenerationSequence]] = {}  # job → its finished choices
        self._closing = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._request_seconds = 1.0  # smoothed, for Retry-After
        self.steps = 0

    # --- state (any thread) ----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._inbox) + len(self._waiting)

    @property
    def full(self) -> bool:
        return self.depth >= self.limits.max_depth

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closing

    @property
    def active_rows(self) -> int:
        return len(self._decoding) + len(self._prefilling)

    @property
    def kv_tokens(self) -> int:
        return sum(s.kv_tokens for s in (*self._decoding, *self._prefilling))

    @property
    def reserved_tokens(self) -> int:
        return self._reserved

    def fits(self, job: GenerationJob) -> bool:
        """Whether `job` could ever be admitted (its rows and KV reservation within the limits)."""
        return job.n <= self.limits.max_rows and job.reserved_tokens <= self.limits.max_kv_tokens

    def retry_after_s(self) -> int:
        waves = math.ceil(max(1, self.depth) / self.limits.max_rows)
        return max(1, math.ceil(waves * self._request_seconds))

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aistudio-scheduler", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float) -> None:
        """Stop taking jobs; let queued and running ones finish for up to `timeout_s` (blocking)."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        while (self.depth or self.active_rows) and time.monotonic() < deadline and self._alive():
            time.sleep(0.02)
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for job in [*self._inbox, *self._waiting]:
            job.fail(ShuttingDownError())
            job.release()
        self._inbox.clear()
        self._waiting.clear()
        self._observer.set_queue_depth(0)

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the event loop's side -------------------------------------------------------------------------

    def submit(self, job: GenerationJob) -> None:
        """Queue `job` or refuse it at once; its future resolves when it is answered."""
        if self._closing or not self._alive():
            raise ShuttingDownError()
        if self.depth >= self.limits.max_depth:
            raise QueueFullError(self.retry_after_s())
        self._inbox.append(job)
        self._observer.set_queue_depth(self.depth)
        self._wake.set()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the worker thread between two steps (it may change the model)."""
        future: Future[Any] = Future()
        if not self._alive():
            future.set_exception(ShuttingDownError())
            return future
        self._calls.put((fn, future))
        self._wake.set()
        return future

    # --- the worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        # The whole loop in inference mode: the KV cache is made of inference tensors, which may
        # only be written inside it (row moves happen between forwards).
        with torch.inference_mode():
            self._loop()

    def _loop(self) -> None:
        while not self._stopped:
            try:
                with torch.inference_mode(False):  # loading an adapter creates real parameters
                    self._run_calls()
                self._take_new()
                self._drop_cancelled()
                self._admit()
                if not self.active_rows:
                    self._report()
                    self._wake.wait(_IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                self._step()
            except Exception as exc:  # a failing step must not take the server's only worker with it
                log.exception("scheduler step failed; failing its %d row(s)", self.active_rows)
                self._fail_all(exc)

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to whoever asked
                    future.set_exception(exc)

    def _take_new(self) -> None:
        while self._inbox:
            self._waiting.append(self._inbox.popleft())

    def _drop_cancelled(self) -> None:
        for sequence in [s for s in (*self._decoding, *self._prefilling) if s.job.cancelled]:
            sequence.cancel()
            self._leave(sequence)
        kept = deque(job for job in self._waiting if not job.cancelled)
        for job in self._waiting:
            if job.cancelled:
                job.release()
        self._waiting = kept

    def _admit(self) -> None:
        now = time.perf_counter()
        while self._waiting:
            job = self._waiting[0]
            waited = now - job.arrived
            if waited > self.limits.queue_timeout_s:
                self._waiting.popleft()
                job.fail(QueueTimeoutError(waited))
                job.release()
                continue
            if len(self._free) < job.n or self._reserved + job.reserved_tokens > self.limits.max_kv_tokens:
                break  # first come, first served: nothing overtakes the head of the queue
            self._waiting.popleft()
            try:
                grammar = self._grammars.matcher(job.grammar) if job.grammar and self._grammars else None
                if job.prompt_logprobs and self._score_prompt is not None:
                    scores = self._score_prompt(job.prompt_ids, job.adapter)
                    job.prompt_scores = prompt_logprobs(scores, job.prompt_ids, job.logprobs or 0)
            except Exception as exc:  # noqa: BLE001 - answered to this job only
                log.exception("admitting a job failed")
                job.fail(exc)
                job.release()
                continue
            job.started = now
            self._observer.observe_queue_wait(waited)
            self._reserved += job.reserved_tokens
            for choice in range(job.n):
                grammar_row = (
                    grammar if choice == 0 else (self._grammars.matcher(job.grammar) if grammar else None)
                )
                sequence = GenerationSequence(job, choice, grammar_row)
                self._free.sort()
                sequence.slot = self._free.pop()  # the highest free slot: decode rows grow from 0
                self._prefilling.append(sequence)
        self._observer.set_queue_depth(self.depth)

    # --- one step ------------------------------------------------------------------------------------

    def _plan_prefill(self) -> list[tuple[GenerationSequence, PrefillChunk]]:
        budget = max(self.limits.max_step_tokens - len(self._decoding), self.limits.prefill_chunk // 4, 1)
        planned = []
        for sequence in self._prefilling:
            remaining = len(sequence.prompt) - sequence.computed
            if self.seq2seq:
                take = remaining  # the encoder reads a prompt whole
            else:
                take = min(remaining, self.limits.prefill_chunk, budget)
            if take <= 0 or (planned and take > budget):
                break
            ids = sequence.prompt[sequence.computed : sequence.computed + take]
            planned.append(
                (sequence, PrefillChunk(sequence.slot, ids, sequence.computed, sequence.job.adapter))
            )
            budget -= take
            if budget <= 0:
                break
        return planned

    def _step(self) -> None:
        self.steps += 1
        planned = self._plan_prefill()
        joined: list[GenerationSequence] = []
        if planned:
            began = time.perf_counter()
            logits = self.runner.prefill([chunk for _, chunk in planned])
            self._observer.observe_step(
                "prefill", time.perf_counter() - began, sum(len(c.ids) for _, c in planned)
            )
            complete = []
            for row, (sequence, chunk) in enumerate(planned):
                sequence.computed += len(chunk.ids)
                if sequence.prefilled:
                    complete.append((row, sequence))
            if complete and logits is not None:  # causal: the prompt's last logits give token one
                rows = torch.tensor([row for row, _ in complete])
                self._advance([s for _, s in complete], logits.index_select(0, rows))
            for _, sequence in complete:
                if self.seq2seq:
                    sequence.pending = self.runner.start_token
                if sequence.done:
                    self._prefilling.remove(sequence)
                    self._finish(sequence, slot_held=True)
                else:
                    joined.append(sequence)  # stays in _prefilling (holding its slot) until it joins
        if self._decoding:
            began = time.perf_counter()
            rows = self._decoding
            tokens = [s.pending for s in rows]
            if self.seq2seq:
                logits = self.runner.decode(tokens, [s.start for s in rows], [s.job.adapter for s in rows])
            else:
                logits = self.runner.decode(
                    tokens, [s.kv_tokens - 1 for s in rows], [s.job.adapter for s in rows]
                )
            self._observer.observe_step("decode", time.perf_counter() - began, len(rows))
            self._advance(list(rows), logits)
            for sequence in [s for s in rows if s.done]:
                self._leave(sequence)
            if self.seq2seq:
                self._release_columns()
        for sequence in joined:
            self._join(sequence)
        self._report()

    def _advance(self, sequences: list[GenerationSequence], logits: torch.Tensor) -> None:
        """Choose and take the next token of every sequence, given its logits row."""
        now = time.perf_counter()
        scored = [i for i, s in enumerate(sequences) if s.job.logprobs is not None]
        raw = logits[scored].clone() if scored else None
        mask_with_grammars(logits, sequences)
        tokens = choose_tokens(logits, [s.sampler for s in sequences])
        for i, (sequence, token) in enumerate(zip(sequences, tokens, strict=True)):
            logprob = None
            if raw is not None and i in scored:
                logprob = token_logprobs(raw[scored.index(i)], token, sequence.job.logprobs or 0)
            sequence.advance(token, logprob, now, self._eos, self._decode_text)

    # --- rows joining and leaving ------------------------------------------------------------------------

    def _join(self, sequence: GenerationSequence) -> None:
        """A row whose prefill is done moves into slot R (the end of the decode batch)."""
        target = len(self._decoding)
        old = sequence.slot
        self._prefilling.remove(sequence)
        if old != target:
            occupant = next((s for s in self._prefilling if s.slot == target), None)
            if occupant is None:
                self._free.remove(target)
                self._free.append(old)
                self._move(sequence, target, decoding=False)
            else:  # swap through the spare slot: the prefilling row at `target` takes the old slot
                self._move(occupant, self.runner.spare_slot, decoding=False)
                self._move(sequence, target, decoding=False)
                self._move(occupant, old, decoding=False)
        if self.seq2seq:
            sequence.start = self.runner.cache.columns
        self._decoding.append(sequence)

    def _move(self, sequence: GenerationSequence, target: int, decoding: bool) -> None:
        if self.seq2seq:
            self.runner.move(sequence.slot, target, sequence.start if decoding else None)
        else:
            self.runner.move(sequence.slot, target, sequence.kv_tokens)
        sequence.slot = target

    def _leave(self, sequence: GenerationSequence) -> None:
        if sequence in self._decoding:
            index = sequence.slot
            last = self._decoding.pop()
            if last is not sequence:
                self._move(last, index, decoding=True)
                self._decoding[index] = last
            self._free.append(len(self._decoding))
        elif sequence in self._prefilling:
            self._prefilling.remove(sequence)
            self._free.append(sequence.slot)
        self._finish(sequence, slot_held=False)

    def _finish(self, sequence: GenerationSequence, slot_held: bool) -> None:
        """Answer the job once all its choices are done; give its reservation back."""
        if slot_held:
            self._free.append(sequence.slot)
        job = sequence.job
        self._reserved -= len(sequence.prompt) + job.max_tokens
        siblings = self._siblings.setdefault(id(job), [])
        siblings.append(sequence)
        if len(siblings) < job.n:
            return
        del self._siblings[id(job)]
        if not job.cancelled:
            results = sorted((s.result() for s in siblings), key=lambda r: r.index)
            firsts = [s.first_token_at for s in siblings if s.first_token_at is not None]
            job.complete(results, min(firsts) if firsts else None)
            if job.started is not None:
                spent = time.perf_counter() - job.started
                self._request_seconds = 0.9 * self._request_seconds + 0.1 * spent
        job.release()

    def _release_columns(self) -> None:
        dropped = self.runner.release_columns([s.start for s in self._decoding])
        if dropped:
            for sequence in self._decoding:
                sequence.start -= dropped

    def _fail_all(self, exc: BaseException) -> None:
        for sequence in [*self._decoding, *self._prefilling]:
            job = sequence.job
            if sequence in self._decoding:
                self._decoding.remove(sequence)
            else:
                self._prefilling.remove(sequence)
            if id(job) in self._siblings or not job.future.done():
                job.fail(exc)
            self._siblings.pop(id(job), None)
            job.release()
        self._free = list(range(self.limits.max_rows))
        self._reserved = 0
        self._report()

    def _report(self) -> None:
        self._observer.set_scheduler_state(self.active_rows, self.kv_tokens, self._reserved)
