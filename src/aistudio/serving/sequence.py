"""One choice of one request while it generates: its tokens, its text, and when it must stop.

A sequence ends at EOS, at a stop string (cut before it), at max_tokens, when its grammar is
complete, or when its client went away. Text that could still become the start of a stop string,
or half of a UTF-8 character, is held back from a stream until it is known; the final text is the
tokenizer's decode of every generated token, so streamed and unstreamed answers agree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch

from aistudio.serving.constrained import RowGrammar
from aistudio.serving.jobs import ChoiceResult, GenerationJob, StreamEvent
from aistudio.serving.sampling import RowSampler, TokenLogprob, row_seed

_REPLACEMENT = "\ufffd"  # what decode yields for an incomplete UTF-8 sequence


def held_back(text: str, stops: Sequence[str]) -> int:
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


class GenerationSequence:
    """The scheduler's row: where it is in the cache, what it generated, whether it is done."""

    def __init__(self, job: GenerationJob, choice: int, grammar: RowGrammar | None) -> None:
        self.job = job
        self.choice = choice
        self.sampler = RowSampler(job.sampling, row_seed(job.sampling.seed, choice))
        self.grammar = grammar
        self.slot = -1
        self.computed = 0  # prompt tokens whose KV is cached (causal) / encoder done (seq2seq)
        self.start = 0  # seq2seq: the cache column of its first decoder token
        self.pending: int | None = None  # the token the next decode step feeds
        self.output: list[int] = []
        self.logprobs: list[TokenLogprob] = []
        self.text = ""
        self.sent = 0
        self.sent_logprobs = 0
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None

    @property
    def prompt(self) -> list[int]:
        return self.job.prompt_ids

    @property
    def prefilled(self) -> bool:
        return self.computed >= len(self.job.prompt_ids)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def index(self) -> int:
        return self.job.index_offset + self.choice

    @property
    def kv_tokens(self) -> int:
        return self.computed + len(self.output)

    @property
    def wants_text(self) -> bool:
        return bool(self.job.stop) or self.job.events is not None

    def advance(
        self,
        token: int,
        logprob: TokenLogprob | None,
        now: float,
        eos_ids: Collection[int],
        decode: Callable[[list[int]], str],
    ) -> None:
        """Take one generated token; sets finish_reason when the sequence is done."""
        if self.first_token_at is None:
            self.first_token_at = now
        if token in eos_ids:
            self._finish("stop", decode)
            return
        self.output.append(token)
        if logprob is not None:
            self.logprobs.append(logprob)
        if self.grammar is not None:
            self.grammar.accept(token)
        self.pending = token
        if self.wants_text:
            self.text = decode(self.output)
            cut = min((i for i in (self.text.find(s) for s in self.job.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
                self._finish("stop", decode, decoded=True)
                return
        if len(self.output) >= self.job.max_tokens:
            self._finish("length", decode, decoded=self.wants_text)
        elif self.grammar is not None and self.grammar.finished:
            self._finish("stop", decode, decoded=self.wants_text)
        elif self.job.events is not None:
            ready = len(self.text) - held_back(self.text, self.job.stop)
            if ready > self.sent:
                self._stream(self.text[self.sent : ready], None)
                self.sent = ready

    def cancel(self) -> None:
        self.finish_reason = "cancelled"

    def _finish(self, reason: str, decode: Callable[[list[int]], str], decoded: bool = False) -> None:
        self.finish_reason = reason
        if not decoded:
            self.text = decode(self.output)
        if self.job.events is not None:
            self._stream(self.text[self.sent :], reason)
            self.sent = len(self.text)

    def _stream(self, text: str, finish: str | None) -> None:
        pieces = tuple(self.logprobs[self.sent_logprobs :])
        self.sent_logprobs = len(self.logprobs)
        self.job.emit(StreamEvent(self.index, text, finish, pieces))

    def result(self) -> ChoiceResult:
        assert self.finish_reason is not None and self.finish_reason != "cancelled"
        logprobs = tuple(self.logprobs) if self.job.logprobs is not None else None
        return ChoiceResult(
            self.index, self.text, self.finish_reason, len(self.output), tuple(self.output), logprobs
        )


def mask_with_grammars(logits: torch.Tensor, sequences: Sequence[GenerationSequence]) -> None:
    for row, sequence in enumerate(sequences):
        if sequence.grammar is not None:
            sequence.grammar.mask(logits[row])
