"""The iteration-level scheduler on real tiny models of both families, without HTTP in between.

Every greedy answer is compared with the reference `generate` of the same bundle loaded
separately, while the scheduler mixes adapters within steps, chunks prompts, admits rows at
different steps and moves them between slots; and every test ends with no rows, no reserved KV
budget and no pinned adapter left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from aistudio.bundle import load_bundle
from aistudio.serving.engine import GenerationEngine
from aistudio.serving.jobs import GenerationJob
from aistudio.serving.sampling import SamplingParams
from aistudio.serving.scheduler import QueueFullError, SchedulerLimits
from aistudio.training.adapters import PEFT_BASE_ROW

pytestmark = pytest.mark.slow

PROMPTS = (
    "sort the list number 3",
    "count the words",
    "merge the table number 12 and return",
    "print the file",
)
# Small on purpose: rows must wait for a slot, prompts span several prefill chunks.
LIMITS = SchedulerLimits(
    max_rows=3, max_step_tokens=12, max_kv_tokens=4096, prefill_chunk=4, max_depth=64, queue_timeout_s=60
)


@pytest.fixture(scope="module", params=("causal", "seq2seq"))
def served(
    request: pytest.FixtureRequest, tiny_bundles: dict[str, Any], single_torch_thread: None
) -> Iterator[Any]:
    bundle = tiny_bundles[request.param]
    engine = GenerationEngine(load_bundle(bundle.path), LIMITS, max_loras=4)
    engine.scheduler.start()
    yield engine, load_bundle(bundle.path), bundle
    engine.scheduler.close(10)


def _direct(reference: Any, prompt: str, adapter: str | None, max_tokens: int) -> str:
    return reference.model.generate(
        reference.tokenizer,
        [prompt],
        adapter_names=[adapter or PEFT_BASE_ROW],
        max_new_tokens=max_tokens,
        max_prompt_length=256,
    )[0]


def _assert_drained(engine: GenerationEngine) -> None:
    scheduler = engine.scheduler
    assert (scheduler.active_rows, scheduler.kv_tokens, scheduler.reserved_tokens, scheduler.depth) == (
        0,
        0,
        0,
        0,
    )
    assert all(engine.adapters.in_use(name) == 0 for name in engine.adapter_names)


async def _run(engine: GenerationEngine, jobs: list[GenerationJob]) -> list[Any]:
    for job in jobs:
        engine.adapters.pin(job.adapter)
        job.on_release = lambda j: engine.adapters.unpin(j.adapter)
        engine.scheduler.submit(job)
    return await asyncio.wait_for(asyncio.gather(*(j.future for j in jobs)), 120)


def test_greedy_answers_equal_reference_generate_while_rows_of_mixed_adapters_share_steps(
    served: Any,
) -> None:
    engine, reference, bundle = served
    specs = [(p, a, t) for p in PROMPTS for a in (None, *bundle.adapters) for t in (3, 11)]

    async def scenario() -> list[Any]:
        jobs = [GenerationJob(engine.prompt_ids(p), a, t, SamplingParams(0.0)) for p, a, t in specs]
        return await _run(engine, jobs)

    steps = engine.scheduler.steps
    results = asyncio.run(scenario())
    # 32 answers of up to 11 tokens through 3 rows: far fewer steps than one answer at a time.
    assert engine.scheduler.steps - steps < sum(t for _, _, t in specs)
    for (prompt, adapter, tokens), (choice,) in zip(specs, results, strict=True):
        assert choice.text == _direct(reference, prompt, adapter, tokens), (prompt, adapter, tokens)
        assert choice.completion_tokens <= tokens
    _assert_drained(engine)


def test_a_short_job_admitted_while_a_long_one_runs_finishes_first(served: Any) -> None:
    engine, _, bundle = served
    finished: list[str] = []

    async def scenario() -> None:
        long = GenerationJob(engine.prompt_ids(PROMPTS[0]), bundle.adapters[1], 60, SamplingParams(0.0))
        long.future.add_done_callback(lambda _: finished.append("long"))
        engine.scheduler.submit(long)
        while engine.scheduler.steps < 3 or not engine.scheduler.active_rows:
            await asyncio.sleep(0.001)
        short = GenerationJob(engine.prompt_ids(PROMPTS[1]), None, 2, SamplingParams(0.0))
        short.future.add_done_callback(lambda _: finished.append("short"))
        engine.scheduler.submit(short)
        long_result, short_result = await asyncio.wait_for(asyncio.gather(long.future, short.future), 120)
        assert long_result[0].completion_tokens > short_result[0].completion_tokens

    asyncio.run(scenario())
    assert finished == ["short", "long"]
    _assert_drained(engine)


def test_n_choices_with_a_seed_are_reproducible_whatever_shares_the_step(served: Any) -> None:
    engine, _, _ = served

    async def sample(company: int) -> list[str]:
        seeded = GenerationJob(engine.prompt_ids(PROMPTS[2]), None, 6, SamplingParams(1.2, 0.9, seed=7), n=3)
        others = [
            GenerationJob(engine.prompt_ids(p), None, 6, SamplingParams(1.0)) for p in PROMPTS[:company]
        ]
        done = await _run(engine, [*others, seeded])
        return [c.text for c in done[-1]]

    alone, crowded = asyncio.run(sample(0)), asyncio.run(sample(3))
    assert alone == crowded
    assert len(set(alone)) > 1  # seed + choice: three different draws
    _assert_drained(engine)


def test_a_cancelled_job_leaves_at_the_next_step_and_frees_its_rows(served: Any) -> None:
    engine, _, _ = served

    async def scenario() -> None:
        doomed = GenerationJob(engine.prompt_ids(PROMPTS[0]), None, 60, SamplingParams(0.0), n=3)
        engine.scheduler.submit(doomed)
        while engine.scheduler.active_rows < 3:
            await asyncio.sleep(0.001)
        steps = engine.scheduler.steps
        doomed.cancel()
        after = GenerationJob(engine.prompt_ids(PROMPTS[1]), None, 2, SamplingParams(0.0))
        engine.scheduler.submit(after)
        await asyncio.wait_for(after.future, 60)
        # The three rows of the cancelled job held every slot; the next job ran within a few steps.
        assert engine.scheduler.steps - steps < 20

    asyncio.run(scenario())
    _assert_drained(engine)


def test_the_queue_refuses_past_its_depth_and_a_job_that_can_never_fit_is_not_admissible(served: Any) -> None:
    engine, _, _ = served
    scheduler = engine.scheduler
    assert not scheduler.fits(_job_sync(engine, max_tokens=LIMITS.max_kv_tokens))

    async def scenario() -> None:
        jobs = [
            GenerationJob(engine.prompt_ids(PROMPTS[0]), None, 30, SamplingParams(0.0)) for _ in range(70)
        ]
        accepted, refused = [], 0
        for job in jobs:
            try:
                scheduler.submit(job)
                accepted.append(job)
            except QueueFullError as exc:
                refused += 1
                assert exc.retry_after_s >= 1
        assert refused >= 1
        for job in accepted:
            job.cancel()
        while scheduler.depth or scheduler.active_rows:
            await asyncio.sleep(0.005)

    asyncio.run(scenario())
    _assert_drained(engine)


def _job_sync(engine: GenerationEngine, max_tokens: int) -> GenerationJob:
    async def make() -> GenerationJob:
        return GenerationJob(engine.prompt_ids(PROMPTS[0]), None, max_tokens, SamplingParams(0.0))

    return asyncio.run(make())
