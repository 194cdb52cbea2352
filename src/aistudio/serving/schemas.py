"""Request and response bodies of the OpenAI-compatible API, in one place.

Requests are strict (a string is not a number, 1 is not `true`) so a wrong type is a 400 naming
the field, never a silent coercion. Limits that depend on the server's settings (max_tokens cap,
n cap, prompt length) are checked by the routes, which know the settings.

Known OpenAI parameters the server does not implement are accepted only at their neutral value
(`presence_penalty: 0`, `tools: null`, ...): a client relying on them gets a 400 saying so
instead of an answer that silently ignored them. Unknown extra fields are ignored, as OpenAI does.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

MAX_STOP_SEQUENCES = 4


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Request):
    include_usage: bool = False


# Parameters accepted only at a value that does not change the answer.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "tools": (None, []),
    "tool_choice": (None, "none"),
}


def _only_neutral(value: Any, info: ValidationInfo) -> Any:
    name = info.field_name or "parameter"
    if not any(value == ok and type(value) is type(ok) for ok in _NEUTRAL[name]):
        raise ValueError(f"{name} is not supported by this server (leave it out)")
    return value


class JsonSchemaFormat(_Request):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    # `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Request):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_json_schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object {name, schema}")
        return self

    @property
    def constrained(self) -> bool:
        return self.type != "text"

    @property
    def schema_body(self) -> dict[str, Any] | None:
        return self.json_schema.json_schema if self.json_schema is not None else None


class SamplingRequest(_Request):
    """The generation parameters completions and chat share."""

    model: str = Field(min_length=1)
    max_tokens: int | None = None
    # null means the OpenAI default, as it does for OpenAI.
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logit_bias: Any = None
    # vLLM's extension on completions, OpenAI's field on chat: constrained JSON output.
    response_format: ResponseFormat | None = None

    _neutral_sampling = field_validator("presence_penalty", "frequency_penalty", "logit_bias")(_only_neutral)

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences (got {len(stops)})")
        if any(s == "" for s in stops):
            raise ValueError("stop sequences must not be empty strings")
        return stops

    @field_validator("max_tokens")
    @classmethod
    def _positive_max_tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"max_tokens must be >= 1 (got {value})")
        return value

    @property
    def stop_sequences(self) -> list[str]:
        return list(self.stop or [])  # normalised to a list by the validator

    @property
    def sampling_temperature(self) -> float:
        return 1.0 if self.temperature is None else self.temperature

    @property
    def sampling_top_p(self) -> float:
        return 1.0 if self.top_p is None else self.top_p

    @property
    def choices_per_prompt(self) -> int:
        return self.n or 1

    @property
    def include_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    @abstractmethod
    def top_logprobs_wanted(self) -> int | None:
        """None: no logprobs; k: the chosen token's logprob and the k most likely. Each request type
        spells logprobs its own way (pydantic models are ABCs: a subclass without it cannot be built)."""


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    # The legacy API: logprobs is the number of most likely tokens to list (0 = the chosen one only).
    logprobs: int | None = Field(None, ge=0)
    echo: bool | None = False
    best_of: Any = None
    suffix: Any = None

    _neutral_completion = field_validator("best_of", "suffix")(_only_neutral)

    @property
    def top_logprobs_wanted(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _prompt_given(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be an empty list")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(SamplingRequest):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0)
    tools: Any = None
    tool_choice: Any = None

    _neutral_chat = field_validator("tools", "tool_choice")(_only_neutral)

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @property
    def top_logprobs_wanted(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class TokenizeRequest(_Request):
    """vLLM's /tokenize: a prompt (as /v1/completions sees it) or messages (as chat renders them)."""

    model: str = Field(min_length=1)
    prompt: str | None = None
    messages: list[ChatMessage] | None = None

    @model_validator(mode="after")
    def _one_of_prompt_or_messages(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of prompt or messages")
        return self


class DetokenizeRequest(_Request):
    model: str = Field(min_length=1)
    tokens: list[int]


class LoadLoraAdapterRequest(_Request):
    """vLLM's request shape for POST /v1/load_lora_adapter."""

    lora_name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    lora_path: str = Field(min_length=1, max_length=4096)


class UnloadLoraAdapterRequest(_Request):
    lora_name: str = Field(min_length=1, max_length=64)
    lora_int_id: int | None = None  # accepted for vLLM clients; names identify adapters here


class FeedbackRequest(_Request):
    """One verdict on one answer. `token` (the answer's x-aistudio-feedback-token header) lets any
    replica accept it; a bare `request_id` only reaches the replica that served an A/B request.
    accepted/positive and rejected/negative are synonyms; `corrected` carries `correction`, the
    answer the user wanted, which becomes training data in place of the served one."""

    request_id: str | None = Field(None, min_length=1, max_length=128)
    token: str | None = Field(None, min_length=1, max_length=2048)
    outcome: Literal["positive", "negative", "accepted", "rejected", "corrected"]
    correction: str | None = Field(None, min_length=1, max_length=65536)


# --- responses ---------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


FinishReason = Literal["stop", "length"]


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: CompletionLogprobs | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobEntry(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobEntry] | None
    refusal: list[TokenLogprobEntry] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        # OpenAI sends only what a delta changes: {"role": ...} first, then {"content": ...}.
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "aistudio"
    # vLLM's convention: an adapter's root/parent is its base model.
    root: str
    parent: str | None = None
    # Where a resident adapter came from (bundle:<name>, a path, models:/..., an artifact URI).
    source: str | None = None


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int | None
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str


class AdapterChange(BaseModel):
    status: Literal["loaded", "unloaded"]
    lora_name: str
    model: str
    source: str | None = None
    manifest_sha256: str | None = None
    evicted: list[str] = Field(default_factory=list)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
