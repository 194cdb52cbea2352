"""How a record or a conversation becomes the text a model reads: one format for training,
evaluation and serving, chosen by the tokenizer.

- A tokenizer with a chat template (an instruct model such as SmolLM2) gets `ChatTemplateFormat`:
  records become a user turn rendered by the template (system/user/assistant), the loss falls on the
  assistant turn, and the target ends with the template's end-of-turn token (the tokenizer's EOS).
- A tokenizer without one (the tiny offline models) gets `InstructionFormat`, the project's
  `### Instruction: ... ### Response:` template.

`/v1/chat/completions` renders messages with `prompt_format(tokenizer).chat(...)`, the same call
training used for the same user turn, so both see identical token ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CONTINUE_PREFIX = "Continue the text:\n"
RESPONSE_MARKER = "### Response:\n"
# Share of a plain-text record shown as the prompt when it has no instruction/output pair.
_CONTINUATION_SPLIT = 0.3
ROLES = ("system", "user", "assistant")


class PromptError(ValueError):
    """A conversation no format can render (the caller maps it to its own error: 400, exit 2)."""


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str
    domain: str = ""


def render_prompt(instruction: str, input_text: str = "") -> str:
    """The project's instruction template (formats without a chat template)."""
    prompt = f"### Instruction:\n{instruction.strip()}\n\n"
    if input_text.strip():
        prompt += f"### Input:\n{input_text.strip()}\n\n"
    return prompt + RESPONSE_MARKER


def user_turn(instruction: str, input_text: str = "") -> str:
    """One user message from an instruction and its optional input, for chat-template formats."""
    return f"{instruction.strip()}\n\n{input_text.strip()}" if input_text.strip() else instruction.strip()


def record_turn(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """(instruction, input, target) of a record; plain texts become a continuation task."""
    if record.get("instruction") and record.get("output"):
        return str(record["instruction"]), str(record.get("input") or ""), str(record["output"])
    words = str(record.get("text", "")).split(" ")
    cut = max(1, int(len(words) * _CONTINUATION_SPLIT))
    return CONTINUE_PREFIX + " ".join(words[:cut]), "", " ".join(words[cut:])


def _checked(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    turns = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
    unknown = sorted({t["role"] for t in turns} - set(ROLES))
    if unknown:
        raise PromptError(f"unknown role(s) {unknown}; expected some of {list(ROLES)}")
    dialogue = [t for t in turns if t["role"] != "system"]
    if not dialogue or dialogue[-1]["role"] != "user":
        raise PromptError("The last message must have role 'user' (it is the one the model answers)")
    if not dialogue[-1]["content"].strip():
        raise PromptError("The last user message is empty")
    return turns


class PromptFormat(Protocol):
    name: str

    @property
    def answer_marker(self) -> str:
        """What follows the user's content up to where the answer starts; truncation must keep it."""

    def instruction(self, instruction: str, input_text: str = "") -> str:
        """The prompt for one instruction: ends where the model's answer starts."""

    def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt for a conversation ending with a user message."""

    def example(self, record: Mapping[str, Any]) -> Example:
        """The (prompt, target) a record trains and evaluates as."""


class InstructionFormat:
    """`### Instruction:` / `### Input:` / `### Response:` blocks; system text as a preamble."""

    name = "instruction"
    answer_marker = "\n\n" + RESPONSE_MARKER

    def instruction(self, instruction: str, input_text: str = "") -> str:
        return render_prompt(instruction, input_text)

    def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        turns = _checked(messages)
        system = [t["content"].strip() for t in turns if t["role"] == "system" and t["content"].strip()]
        parts = ["\n\n".join(system) + "\n\n"] if system else []
        pending: list[str] = []
        for turn in (t for t in turns if t["role"] != "system"):
            if turn["role"] == "user":
                pending.append(turn["content"])
                continue
            if not pending:
                raise PromptError("An assistant message must follow a user message")
            parts.append(render_prompt("\n".join(pending)) + turn["content"].strip() + "\n\n")
            pending = []
        parts.append(render_prompt("\n".join(pending)))
        return "".join(parts)

    def example(self, record: Mapping[str, Any]) -> Example:
        instruction, input_text, target = record_turn(record)
        return Example(self.instruction(instruction, input_text), target, str(record.get("domain", "")))


class ChatTemplateFormat:
    """The tokenizer's own chat template; the answer is the assistant turn it opens."""

    name = "chat_template"

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @property
    def answer_marker(self) -> str:
        # Whatever the template puts after a user message (end of turn, assistant header).
        sentinel = "\x00user-content\x00"
        return self.chat([{"role": "user", "content": sentinel}]).rsplit(sentinel, 1)[1]

    def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(
            _checked(messages), add_generation_prompt=True, tokenize=False
        )

    def instruction(self, instruction: str, input_text: str = "") -> str:
        return self.chat([{"role": "user", "content": user_turn(instruction, input_text)}])

    def example(self, record: Mapping[str, Any]) -> Example:
        instruction, input_text, target = record_turn(record)
        return Example(self.instruction(instruction, input_text), target, str(record.get("domain", "")))


def prompt_format(tokenizer: Any) -> PromptFormat:
    """The format a model was trained with: its chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        return ChatTemplateFormat(tokenizer)
    return InstructionFormat()


def example_from_record(record: Mapping[str, Any], tokenizer: Any = None) -> Example:
    """A record as (prompt, target) in the tokenizer's format (the project's without a tokenizer)."""
    fmt = prompt_format(tokenizer) if tokenizer is not None else InstructionFormat()
    return fmt.example(record)
