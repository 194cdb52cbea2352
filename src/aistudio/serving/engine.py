"""The engine: one loaded bundle (base model + adapters) and the batched generate that serves it.

`GenerationEngine.run_batch` runs in the batcher's single worker thread, never on the event loop.
One batch is ONE `generate` call, whatever mix of adapters and sampling settings it holds:

- adapters: the AdapterSet's per-row `adapter_names` (PEFT mixed-adapter batch; the base model
  is the row name `__base__`); a batch that needs only one adapter (or only the base) switches
  to it instead, which skips PEFT's per-row routing;
- sampling: every row keeps its own temperature / top_p / seed (`aistudio.serving.sampling`), so
  requests are not grouped by parameters and no request waits for a compatible batch;
- stopping: `_BatchTracker`, a stopping criterion that sees every new token of every row, ends a
  row at its own max_tokens, at EOS, at a stop string, or when its client went away. A finished
  row is answered at once (its future resolves from inside the step), so a short answer never
  waits for the longest one in its batch, and `generate` returns as soon as every row is done.
- streaming: the same tracker pushes each row's new text to the request's event queue, so
  streaming works token by token for batched requests too (no TextIteratorStreamer, which only
  handles a batch of one). Text that could be the start of a stop string, or half of a UTF-8
  character, is held back until it is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from aistudio.bundle import LoadedBundle
from aistudio.serving.sampling import RowSampler, SamplingParams, row_seed
from aistudio.training.adapters import BASE_ALIASES, PEFT_BASE_ROW

# The id separator between base model and adapter in /v1/models: "<base>:<adapter>".
ADAPTER_SEPARATOR = ":"
_REPLACEMENT = "\ufffd"  # what decode yields for an incomplete UTF-8 sequence


@dataclass(frozen=True)
class ChoiceResult:
    index: int
    text: str
    finish_reason: str  # stop | length
    completion_tokens: int


@dataclass(frozen=True)
class StreamEvent:
    index: int
    text: str
    finish_reason: str | None = None


@dataclass
class GenerationJob:
    """One prompt of one request (n choices): created on the event loop, filled by the worker thread."""

    prompt: str
    prompt_tokens: int
    adapter: str | None
    max_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()
    n: int = 1
    index_offset: int = 0  # where this prompt's choices start when a request has several prompts
    events: asyncio.Queue[StreamEvent] | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    future: asyncio.Future[list[ChoiceResult]] = field(init=False)
    arrived: float = field(default_factory=time.perf_counter)
    started: float | None = None  # when its batch began (queue wait ends)
    first_token_at: float | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()

    @property
    def rows(self) -> int:
        return self.n

    def cancel(self) -> None:
        """The client is gone or timed out: its rows stop at the next token, its future is dropped."""
        self._cancelled.set()
        if not self.future.done():
            self.future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    # --- called from the worker thread ------------------------------------------------------------

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(fn, *args)

    def emit(self, event: StreamEvent) -> None:
        if self.events is not None:
            self._call_soon(self.events.put_nowait, event)

    def complete(self, results: list[ChoiceResult], first_token_at: float | None) -> None:
        self._call_soon(self._complete, results, first_token_at)

    def _complete(self, results: list[ChoiceResult], first_token_at: float | None) -> None:
        self.first_token_at = first_token_at
        if not self.future.done():
            self.future.set_result(results)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` may still turn into a stop string (or a character)."""
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                hold = max(hold, size)
                break
    if text.endswith(_REPLACEMENT):
        hold = max(hold, len(text) - len(text.rstrip(_REPLACEMENT)))
    return hold


class _Row:
    __slots__ = ("choice", "done", "finish_reason", "first_token_at", "ids", "job", "sent", "text")

    def __init__(self, job: GenerationJob, choice: int) -> None:
        self.job = job
        self.choice = choice
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.done = False
        self.finish_reason = "length"
        self.first_token_at: float | None = None


class _BatchTracker(StoppingCriteria):
    """Sees each new token of every row; decides per row when it is finished and answers it."""

    def __init__(self, rows: list[_Row], decode: Callable[[list[int]], str], eos_id: int | None) -> None:
        self.rows = rows
        self.decode = decode
        self.eos_id = eos_id

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        new_tokens = input_ids[:, -1].tolist()
        now = time.perf_counter()
        for row, token in zip(self.rows, new_tokens, strict=True):
            if row.done:
                continue
            if row.job.cancelled:
                self._finish(row, "cancelled")
                continue
            if row.first_token_at is None:
                row.first_token_at = now
            if token == self.eos_id:
                self._finish(row, "stop")
                continue
            row.ids.append(token)
            job = row.job
            if job.stop or job.events is not None:
                row.text = self.decode(row.ids)
                cut = min((i for i in (row.text.find(s) for s in job.stop) if i >= 0), default=-1)
                if cut >= 0:
                    row.text = row.text[:cut]
                    self._finish(row, "stop")
                    continue
            if len(row.ids) >= job.max_tokens:
                self._finish(row, "length")
                continue
            if job.events is not None:
                ready = len(row.text) - _held_back(row.text, job.stop)
                if ready > row.sent:
                    job.emit(StreamEvent(job.index_offset + row.choice, row.text[row.sent : ready]))
                    row.sent = ready
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)

    def _finish(self, row: _Row, reason: str) -> None:
        row.done = True
        row.finish_reason = reason
        job = row.job
        if reason == "cancelled":
            return
        if not (job.stop or job.events is not None):
            row.text = self.decode(row.ids)
        if job.events is not None:
            job.emit(StreamEvent(job.index_offset + row.choice, row.text[row.sent :], reason))
            row.sent = len(row.text)
        siblings = [r for r in self.rows if r.job is job]
        if all(r.done for r in siblings) and not job.cancelled:
            results = [
                ChoiceResult(job.index_offset + r.choice, r.text, r.finish_reason, len(r.ids))
                for r in siblings
            ]
            firsts = [r.first_token_at for r in siblings if r.first_token_at is not None]
            job.complete(results, min(firsts) if firsts else None)

    def finish_remaining(self) -> None:
        """Rows still open when generate returned ran into max_new_tokens (or the model's length)."""
        for row in self.rows:
            if not row.done:
                self._finish(row, "length")


class GenerationEngine:
    """One base model and its adapters, addressed by OpenAI model ids."""

    def __init__(
        self, bundle: LoadedBundle, served_model_name: str | None = None, max_prompt_tokens: int = 1024
    ) -> None:
        self.bundle = bundle
        self.tokenizer = bundle.tokenizer
        self.family = bundle.family
        self.adapters: tuple[str, ...] = tuple(bundle.adapter_names)
        self.base_id = served_model_name or bundle.manifest.model
        self.max_prompt_tokens = max_prompt_tokens
        self.created = int(time.time())
        config = self._hf_model().config
        # Decoder-only models have a hard position limit; T5's relative positions have none.
        self.context_window: int | None = (
            None if config.is_encoder_decoder else getattr(config, "max_position_embeddings", None)
        )

    def _hf_model(self) -> Any:
        return getattr(self.bundle.model, "model", self.bundle.model)

    # --- model ids -------------------------------------------------------------------------------

    def adapter_id(self, adapter: str) -> str:
        return f"{self.base_id}{ADAPTER_SEPARATOR}{adapter}"

    @property
    def model_ids(self) -> list[str]:
        return [self.base_id, *(self.adapter_id(a) for a in self.adapters)]

    def resolve(self, model: str) -> str | None:
        """An id → the adapter it selects (None for the base model); unknown ids → LookupError.

        Accepted: the base id, '<base>:<adapter>' (what /v1/models lists), the bare adapter name
        (vLLM's convention) and 'base' (how the A/B config names the base model).
        """
        if model == self.base_id or model in BASE_ALIASES:
            return None
        base, sep, adapter = model.partition(ADAPTER_SEPARATOR)
        if sep and base == self.base_id and adapter in self.adapters:
            return adapter
        if not sep and model in self.adapters:
            return model
        raise LookupError(model)

    def model_label(self, adapter: str | None) -> str:
        return self.adapter_id(adapter) if adapter else self.base_id

    # --- prompts ---------------------------------------------------------------------------------

    def prompt_ids(self, prompt: str) -> list[int]:
        """Exactly the ids the model will see for `prompt` (the family adds its special tokens)."""
        batch = self.family.prompt_batch(self.tokenizer, [prompt], 1 << 30)
        return batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # --- generation (worker thread) ------------------------------------------------------------------

    def run_batch(self, jobs: Sequence[GenerationJob]) -> None:
        """Generate every choice of every job in one call; each job's future resolves when it is done."""
        rows = [_Row(job, c) for job in jobs for c in range(job.n)]
        tracker = _BatchTracker(rows, self.decode, self.tokenizer.eos_token_id)
        sampler = RowSampler(
            [r.job.sampling for r in rows], [row_seed(r.job.sampling.seed, r.choice) for r in rows]
        )
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(job.max_tokens for job in jobs),
            "max_prompt_length": self.max_prompt_tokens,
            "stopping_criteria": StoppingCriteriaList([tracker]),
        }
        if sampler.samples_any:
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        prompts = [r.job.prompt for r in rows]
        if self.adapters:
            names = [r.job.adapter or PEFT_BASE_ROW for r in rows]
            if len(set(names)) == 1:
                # One adapter (or the base) for the whole batch: switch to it instead of PEFT's
                # per-row routing, which indexes every LoRA layer's input by row. Only this
                # worker thread touches the model, so the switch needs no lock.
                self.bundle.model.use(rows[0].job.adapter)
                self.bundle.model.generate(self.tokenizer, prompts, **kwargs)
            else:
                self.bundle.model.generate(self.tokenizer, prompts, adapter_names=names, **kwargs)
        else:
            self.family.generate(self.bundle.model, self.tokenizer, prompts, **kwargs)
        tracker.finish_remaining()
