"""The dynamic batcher with a plain synchronous batch function standing in for the model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from aistudio.serving.batcher import DynamicBatcher, QueueFullError, QueueTimeoutError, ShuttingDownError
from aistudio.serving.engine import ChoiceResult, GenerationJob
from aistudio.serving.sampling import SamplingParams


class Recorder:
    """Answers every job with its prompt; remembers each batch and the thread it ran on."""

    def __init__(self, seconds: float = 0.0, release: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.seconds = seconds
        self.release = release

    def __call__(self, jobs: Sequence[GenerationJob]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append([j.prompt for j in jobs])
        if self.release is not None:
            self.release.wait(5)
        time.sleep(self.seconds)
        for job in jobs:
            job.complete([ChoiceResult(i, job.prompt, "stop", 1) for i in range(job.n)], time.perf_counter())


def _job(prompt: str, n: int = 1) -> GenerationJob:
    return GenerationJob(prompt, 1, None, 4, SamplingParams(temperature=0.0), n=n)


def _batcher(run: Recorder, **kw: float) -> DynamicBatcher:
    options = {"max_batch_size": 4, "max_wait_s": 0.05, "max_depth": 16, "queue_timeout_s": 5.0, **kw}
    return DynamicBatcher(run, **options)  # type: ignore[arg-type]


def test_waiting_jobs_share_one_batch_up_to_max_batch_size() -> None:
    async def scenario() -> Recorder:
        run = Recorder()
        batcher = _batcher(run)
        await batcher.start()
        jobs = [_job(str(i)) for i in range(6)]
        for job in jobs:
            batcher.submit(job)
        results = await asyncio.gather(*(j.future for j in jobs))
        assert [r[0].text for r in results] == [str(i) for i in range(6)]
        await batcher.close(1)
        return run

    run = asyncio.run(scenario())
    assert run.batches == [["0", "1", "2", "3"], ["4", "5"]]


def test_the_model_runs_on_one_worker_thread_never_the_event_loop() -> None:
    async def scenario() -> Recorder:
        run = Recorder()
        batcher = _batcher(run, max_batch_size=1)
        await batcher.start()
        jobs = [_job(str(i)) for i in range(3)]
        for job in jobs:
            batcher.submit(job)
        await asyncio.gather(*(j.future for j in jobs))
        await batcher.close(1)
        return run

    run = asyncio.run(scenario())
    assert len(run.threads) == 1
    assert next(iter(run.threads)).startswith("aistudio-engine")


def test_a_lone_job_waits_at_most_max_wait_for_company() -> None:
    async def scenario() -> float:
        batcher = _batcher(Recorder(), max_wait_s=0.1)
        await batcher.start()
        job = _job("alone")
        began = time.perf_counter()
        batcher.submit(job)
        await job.future
        await batcher.close(1)
        return time.perf_counter() - began

    assert 0.09 < asyncio.run(scenario()) < 1.0


def test_choices_count_as_rows_and_an_oversized_job_runs_alone() -> None:
    async def scenario() -> Recorder:
        run = Recorder()
        batcher = _batcher(run)
        await batcher.start()
        jobs = [_job("a", n=3), _job("b", n=2), _job("huge", n=6), _job("c", n=1)]
        for job in jobs:
            batcher.submit(job)
        results = await asyncio.gather(*(j.future for j in jobs))
        assert [len(r) for r in results] == [3, 2, 6, 1]
        await batcher.close(1)
        return run

    assert asyncio.run(scenario()).batches == [["a"], ["b"], ["huge"], ["c"]]


def test_a_full_queue_refuses_at_once_with_a_retry_hint() -> None:
    async def scenario() -> None:
        release = threading.Event()
        batcher = _batcher(Recorder(release=release), max_batch_size=1, max_depth=2, max_wait_s=0)
        await batcher.start()
        running = _job("running")
        batcher.submit(running)
        await asyncio.sleep(0.05)  # taken by the worker, which now blocks
        queued = [_job("q1"), _job("q2")]
        for job in queued:
            batcher.submit(job)
        assert batcher.full
        with pytest.raises(QueueFullError) as refused:
            batcher.submit(_job("refused"))
        assert refused.value.retry_after_s >= 1
        release.set()
        await asyncio.gather(running.future, *(j.future for j in queued))
        await batcher.close(1)

    asyncio.run(scenario())


def test_a_job_that_waited_past_the_queue_timeout_is_refused() -> None:
    async def scenario() -> None:
        release = threading.Event()
        batcher = _batcher(Recorder(release=release), max_batch_size=1, max_wait_s=0, queue_timeout_s=0.05)
        await batcher.start()
        first, late = _job("first"), _job("late")
        batcher.submit(first)
        await asyncio.sleep(0.02)
        batcher.submit(late)
        await asyncio.sleep(0.1)
        release.set()
        await first.future
        with pytest.raises(QueueTimeoutError):
            await late.future
        await batcher.close(1)

    asyncio.run(scenario())


def test_cancelled_jobs_are_dropped_before_they_reach_the_model() -> None:
    async def scenario() -> Recorder:
        release = threading.Event()
        run = Recorder(release=release)
        batcher = _batcher(run, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        first, gone = _job("first"), _job("gone")
        batcher.submit(first)
        await asyncio.sleep(0.02)
        batcher.submit(gone)
        gone.cancel()
        release.set()
        await first.future
        await asyncio.sleep(0.05)
        await batcher.close(1)
        return run

    assert asyncio.run(scenario()).batches == [["first"]]


def test_a_failing_batch_fails_its_jobs_and_the_batcher_keeps_going() -> None:
    calls = []

    def flaky(jobs: Sequence[GenerationJob]) -> None:
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        Recorder()(jobs)

    async def scenario() -> None:
        batcher = DynamicBatcher(flaky, max_batch_size=1, max_wait_s=0, max_depth=4, queue_timeout_s=5)
        await batcher.start()
        bad, good = _job("bad"), _job("good")
        batcher.submit(bad)
        batcher.submit(good)
        with pytest.raises(RuntimeError, match="exploded"):
            await bad.future
        assert (await good.future)[0].text == "good"
        await batcher.close(1)

    asyncio.run(scenario())


def test_close_drains_queued_jobs_then_refuses_new_ones() -> None:
    async def scenario() -> None:
        batcher = _batcher(Recorder(seconds=0.02), max_batch_size=1, max_wait_s=0)
        await batcher.start()
        jobs = [_job(str(i)) for i in range(3)]
        for job in jobs:
            batcher.submit(job)
        await batcher.close(5)
        assert all(j.future.done() and not j.future.cancelled() for j in jobs)
        with pytest.raises(ShuttingDownError):
            batcher.submit(_job("late"))

    asyncio.run(scenario())
