"""The dynamic batcher: a bounded queue in front of one worker thread that runs the model.

Requests (jobs) wait in a bounded FIFO. The batcher task takes the oldest, then keeps taking
until the batch holds `max_batch_size` rows (a job with n choices counts n) or `max_wait_ms` has
passed since it started collecting, and hands the whole batch to ONE `run_batch` call in a
single-thread executor. The model therefore never runs on the event loop, runs one batch at a
time (no lock needed: only that thread touches it), and while a batch runs the next one is
already filling up. Batching is per batch, not per token (no continuous batching): a job that
arrives mid-batch starts with the next one; the engine answers each job as soon as its own rows
finish, and `generate` returns once every row has.

Backpressure is explicit: a full queue refuses at once (`QueueFullError`, HTTP 503 with
Retry-After) instead of letting latency grow without bound, and a job that waited longer than
`queue_timeout_s` is refused when it reaches the front (`QueueTimeoutError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from aistudio.serving.engine import GenerationJob

log = logging.getLogger(__name__)


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


class BatchObserver(Protocol):
    def observe_queue_wait(self, seconds: float) -> None: ...
    def observe_batch(self, size: int) -> None: ...
    def set_queue_depth(self, depth: int) -> None: ...


class _NoObserver:
    def observe_queue_wait(self, seconds: float) -> None: ...
    def observe_batch(self, size: int) -> None: ...
    def set_queue_depth(self, depth: int) -> None: ...


class DynamicBatcher:
    def __init__(
        self,
        run_batch: Callable[[Sequence[GenerationJob]], None],
        max_batch_size: int,
        max_wait_s: float,
        max_depth: int,
        queue_timeout_s: float,
        observer: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_depth = max_depth
        self.queue_timeout_s = queue_timeout_s
        self._observer = observer or _NoObserver()
        self._jobs: deque[GenerationJob] = deque()
        self._arrived = asyncio.Event()
        self._in_flight: list[GenerationJob] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        # Smoothed seconds per batch, to tell refused clients how long to back off.
        self._batch_seconds = 0.5

    # --- state -----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._jobs)

    @property
    def full(self) -> bool:
        return len(self._jobs) >= self.max_depth

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    def retry_after_s(self) -> int:
        batches_ahead = math.ceil(max(1, len(self._jobs)) / self.max_batch_size)
        return max(1, math.ceil(batches_ahead * self._batch_seconds))

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aistudio-engine")
        self._task = asyncio.create_task(self._loop(), name="aistudio-batcher")

    async def close(self, timeout_s: float) -> None:
        """Stop taking new jobs; let queued and in-flight ones finish for up to `timeout_s`."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        while (self._jobs or self._in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        while self._jobs:
            self._jobs.popleft().fail(ShuttingDownError())
        self._observer.set_queue_depth(0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- submitting --------------------------------------------------------------------------------

    def submit(self, job: GenerationJob) -> None:
        """Queue `job` or refuse it at once; its future resolves when it is answered."""
        if self._closing or self._task is None:
            raise ShuttingDownError()
        if len(self._jobs) >= self.max_depth:
            raise QueueFullError(self.retry_after_s())
        self._jobs.append(job)
        self._arrived.set()
        self._observer.set_queue_depth(len(self._jobs))

    # --- the batch loop ------------------------------------------------------------------------------

    async def _wait_for_job(self, timeout_s: float | None) -> bool:
        if self._jobs:
            return True
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout_s)
        return bool(self._jobs)

    async def _collect(self) -> list[GenerationJob]:
        """Up to max_batch_size rows, waiting at most max_wait_s after the first job for more."""
        await self._wait_for_job(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        batch: list[GenerationJob] = []
        rows = 0
        while True:
            # A job with more choices than max_batch_size rows runs as a batch of its own.
            while self._jobs and (rows + self._jobs[0].rows <= self.max_batch_size or not batch):
                job = self._jobs.popleft()
                batch.append(job)
                rows += job.rows
            if rows >= self.max_batch_size or (self._jobs and batch):  # full, or the next job does not fit
                break
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_for_job(remaining):
                break
        self._observer.set_queue_depth(len(self._jobs))
        return batch

    def _admit(self, batch: list[GenerationJob]) -> list[GenerationJob]:
        """Drop jobs whose client is gone; refuse those that waited past the queue timeout."""
        now = time.perf_counter()
        admitted = []
        for job in batch:
            waited = now - job.arrived
            if job.cancelled or job.future.done():
                continue
            if waited > self.queue_timeout_s:
                job.fail(QueueTimeoutError(waited))
                continue
            job.started = now
            self._observer.observe_queue_wait(waited)
            admitted.append(job)
        return admitted

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._admit(await self._collect())
            if not batch:
                continue
            self._in_flight = batch
            self._observer.observe_batch(len(batch))
            began = time.perf_counter()
            try:
                await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception as exc:
                log.exception("batch of %d request(s) failed", len(batch))
                for job in batch:
                    job.fail(exc)
            finally:
                self._in_flight = []
                self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.perf_counter() - began)
