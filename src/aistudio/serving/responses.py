"""How generated choices look on the wire: completions (with echo and legacy logprobs) and chat
(with OpenAI's per-token logprobs), whole or as stream chunks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aistudio.serving.jobs import ChoiceResult
from aistudio.serving.sampling import TokenLogprob
from aistudio.serving.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    TokenLogprobEntry,
    TopLogprob,
    Usage,
)

TokenText = Callable[[int], str]


def completion_logprobs(scored: Sequence[TokenLogprob], token_text: TokenText) -> CompletionLogprobs:
    """The legacy shape: parallel lists; an echoed prompt's first token has logprob null."""
    tokens, logprobs, tops, offsets = [], [], [], []
    position = 0
    for entry in scored:
        text = token_text(entry.token_id)
        tokens.append(text)
        offsets.append(position)
        position += len(text)
        logprobs.append(entry.logprob)
        tops.append({token_text(i): lp for i, lp in entry.top} if entry.top else None)
    return CompletionLogprobs(tokens=tokens, token_logprobs=logprobs, top_logprobs=tops, text_offset=offsets)


def chat_logprobs(scored: Sequence[TokenLogprob], token_text: TokenText) -> ChoiceLogprobs:
    def top(token_id: int, logprob: float) -> TopLogprob:
        text = token_text(token_id)
        return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode("utf-8")))

    content = []
    for entry in scored:
        head = top(entry.token_id, entry.logprob if entry.logprob is not None else 0.0)
        content.append(
            TokenLogprobEntry(
                token=head.token,
                logprob=head.logprob,
                bytes=head.bytes,
                top_logprobs=[top(i, lp) for i, lp in entry.top],
            )
        )
    return ChoiceLogprobs(content=content)


def _prompt_of(prompts: Sequence[str], n: int, index: int) -> str:
    return prompts[index // n]


def completion(
    request_id: str,
    model: str,
    results: Sequence[ChoiceResult],
    usage: Usage,
    token_text: TokenText,
    echo_prompts: Sequence[str] | None = None,
    prompt_scores: Sequence[Sequence[TokenLogprob] | None] = (),
    n: int = 1,
) -> Completion:
    choices = []
    for result in results:
        text = result.text
        logprobs = None
        if echo_prompts is not None:
            prompt = _prompt_of(echo_prompts, n, result.index)
            text = prompt + text
        if result.logprobs is not None:
            scored = list(result.logprobs)
            echoed = prompt_scores[result.index // n] if echo_prompts is not None and prompt_scores else None
            if echoed is not None:
                scored = [*echoed, *scored]
            logprobs = completion_logprobs(scored, token_text)
        choices.append(
            CompletionChoice(
                index=result.index, text=text, finish_reason=result.finish_reason, logprobs=logprobs
            )
        )
    return Completion(id=request_id, model=model, choices=choices, usage=usage)


def chat(
    request_id: str, model: str, results: Sequence[ChoiceResult], usage: Usage, token_text: TokenText
) -> ChatCompletion:
    choices = [
        ChatChoice(
            index=r.index,
            message=AssistantMessage(content=r.text),
            finish_reason=r.finish_reason,
            logprobs=chat_logprobs(r.logprobs, token_text) if r.logprobs is not None else None,
        )
        for r in results
    ]
    return ChatCompletion(id=request_id, model=model, choices=choices, usage=usage)


def completion_chunks(
    request_id: str,
    created: int,
    model: str,
    token_text: TokenText,
    logprobs: bool,
    echo_prompts: Sequence[str] | None = None,
    n: int = 1,
) -> tuple[Callable[..., Any], Callable[[Usage], Any]]:
    def chunk(
        index: int, text: str | None, finish: str | None, scored: Sequence[TokenLogprob], opening: bool
    ) -> Any:
        if opening:  # echo: the prompt comes first, as its own chunk
            if echo_prompts is None:
                return None
            text, finish, scored = _prompt_of(echo_prompts, n, index), None, ()
        pieces = completion_logprobs(list(scored), token_text) if logprobs else None
        return Completion(
            id=request_id,
            created=created,
            model=model,
            choices=[CompletionChoice(index=index, text=text or "", finish_reason=finish, logprobs=pieces)],
        )

    def usage_chunk(usage: Usage) -> Any:
        return Completion(id=request_id, created=created, model=model, choices=[], usage=usage)

    return chunk, usage_chunk


def chat_chunks(
    request_id: str, created: int, model: str, token_text: TokenText, logprobs: bool
) -> tuple[Callable[..., Any], Callable[[Usage], Any]]:
    def chunk(
        index: int, text: str | None, finish: str | None, scored: Sequence[TokenLogprob], opening: bool
    ) -> Any:
        delta = ChatDelta(role="assistant", content="") if opening else ChatDelta(content=text or None)
        pieces = chat_logprobs(list(scored), token_text) if logprobs and not opening else None
        return ChatCompletionChunk(
            id=request_id,
            created=created,
            model=model,
            choices=[ChatChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=pieces)],
        )

    def usage_chunk(usage: Usage) -> Any:
        return ChatCompletionChunk(id=request_id, created=created, model=model, choices=[], usage=usage)

    return chunk, usage_chunk
