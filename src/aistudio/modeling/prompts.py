"""How a record becomes a (prompt, target) pair: one template for training, evaluation and serving."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTINUE_PREFIX = "Continue the text:\n"
RESPONSE_MARKER = "### Response:\n"
# Share of a plain-text record shown as the prompt when it has no instruction/output pair.
_CONTINUATION_SPLIT = 0.3


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str
    domain: str = ""


def render_prompt(instruction: str, input_text: str = "") -> str:
    """The instruction template every family trains and serves with."""
    prompt = f"### Instruction:\n{instruction.strip()}\n\n"
    if input_text.strip():
        prompt += f"### Input:\n{input_text.strip()}\n\n"
    return prompt + RESPONSE_MARKER


def example_from_record(record: Mapping[str, Any]) -> Example:
    """Instruction records map to template → output; plain texts become a continuation task."""
    domain = str(record.get("domain", ""))
    if record.get("instruction") and record.get("output"):
        return Example(
            render_prompt(record["instruction"], record.get("input", "")), record["output"], domain
        )
    words = str(record.get("text", "")).split(" ")
    cut = max(1, int(len(words) * _CONTINUATION_SPLIT))
    return Example(CONTINUE_PREFIX + " ".join(words[:cut]), " ".join(words[cut:]), domain)
