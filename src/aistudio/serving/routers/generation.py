"""OpenAI-compatible generation: /v1/completions, /v1/chat/completions, /v1/models, /tokenize, /detokenize.

Each handler validates its own shape and hands over to the one GenerationService; the prompt of a
chat is `prompt_format(tokenizer).chat(messages)`, the same rendering training used, and
/v1/completions passes its prompt raw, as OpenAI and vLLM do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from aistudio.serving import responses
from aistudio.serving.chat import render_chat
from aistudio.serving.dependencies import require, server
from aistudio.serving.errors import GENERATION_ERRORS, bad_request, documented, model_not_found
from aistudio.serving.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)

router = APIRouter(tags=["generation"], dependencies=[Depends(require("inference"))])
_STREAM = {"content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _token_text(request: Request) -> Any:
    engine = server(request).engine
    return lambda token_id: engine.tokenizer.decode([token_id])


@router.post(
    "/v1/completions",
    response_model=Completion,
    responses={200: _STREAM, **documented(*GENERATION_ERRORS)},
)
async def completions(body: CompletionRequest, request: Request) -> Any:
    state = server(request)
    service = state.generation
    accepted = await service.accept(request, body, "cmpl", body.prompts, "prompt")
    echo = accepted.prompts if body.echo else None
    logprobs = body.top_logprobs_wanted is not None
    n = body.choices_per_prompt
    if body.stream:
        chunk, usage = responses.completion_chunks(
            accepted.request_id, accepted.created, body.model, _token_text(request), logprobs, echo, n
        )
        return service.stream(request, accepted, chunk, usage if body.include_usage_chunk else None)
    results = await service.complete(accepted)
    usage = service.usage(request, accepted, sum(r.completion_tokens for r in results))
    service.record_answer(accepted, results)
    scores = [job.prompt_scores for job in accepted.jobs]
    answer = responses.completion(
        accepted.request_id, body.model, results, usage, _token_text(request), echo, scores, n
    )
    return JSONResponse(answer.model_dump(), headers=accepted.headers)


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={200: _STREAM, **documented(*GENERATION_ERRORS)},
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    state = server(request)
    service = state.generation
    prompt = render_chat(body.messages, state.engine.tokenizer)
    # The conversation ends with the user message being answered (render_chat checks it).
    accepted = await service.accept(request, body, "chatcmpl", [prompt], "messages", body.messages[-1].text)
    logprobs = body.top_logprobs_wanted is not None
    if body.stream:
        chunk, usage = responses.chat_chunks(
            accepted.request_id, accepted.created, body.model, _token_text(request), logprobs
        )
        return service.stream(request, accepted, chunk, usage if body.include_usage_chunk else None)
    results = await service.complete(accepted)
    usage = service.usage(request, accepted, sum(r.completion_tokens for r in results))
    service.record_answer(accepted, results)
    answer = responses.chat(accepted.request_id, body.model, results, usage, _token_text(request))
    return JSONResponse(answer.model_dump(), headers=accepted.headers)


@router.get("/v1/models", responses=documented(401, 403, 429))
async def list_models(request: Request) -> ModelList:
    """The base model and every resident adapter (`<base>:<adapter>`), with where it came from."""
    engine = server(request).engine
    cards = [ModelCard(id=engine.base_id, created=engine.created, root=engine.base_id)]
    for name, adapter in engine.describe_adapters().items():
        cards.append(
            ModelCard(
                id=engine.adapter_id(name),
                created=int(adapter.loaded_at),
                root=engine.base_id,
                parent=engine.base_id,
                source=adapter.source,
            )
        )
    return ModelList(data=cards)


def _check_model(request: Request, model: str) -> None:
    engine = server(request).engine
    try:
        engine.resolve(model)
    except LookupError:
        raise model_not_found(model, engine.model_ids) from None


@router.post("/tokenize", responses=documented(400, 401, 403, 404, 413, 429))
async def tokenize(body: TokenizeRequest, request: Request) -> TokenizeResponse:
    """The token ids the model sees: a prompt as /v1/completions passes it, messages as chat renders them."""
    _check_model(request, body.model)
    engine = server(request).engine
    prompt = body.prompt if body.messages is None else render_chat(body.messages, engine.tokenizer)
    ids = engine.prompt_ids(prompt or "")
    return TokenizeResponse(count=len(ids), max_model_len=engine.context_window, tokens=ids)


@router.post("/detokenize", responses=documented(400, 401, 403, 404, 413, 429))
async def detokenize(body: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    _check_model(request, body.model)
    engine = server(request).engine
    bad = [t for t in body.tokens if not 0 <= t < engine.vocab_size]
    if bad:
        raise bad_request(
            f"token ids must be in 0..{engine.vocab_size - 1} (got {bad[:5]})", "tokens", "invalid_token_id"
        )
    return DetokenizeResponse(prompt=engine.tokenizer.decode(body.tokens))
