"""Chat messages → the prompt the model was trained on (`aistudio.modeling.prompts.prompt_format`).

A tokenizer with a chat template renders the conversation itself (the instruct models); the tiny
offline models use the project's instruction template:

    [system text]\n\n                                  system messages, joined, as a preamble
    ### Instruction:\n<user>\n\n### Response:\n<assistant>\n\n   each earlier exchange
    ### Instruction:\n<last user message>\n\n### Response:\n     what the model answers

The conversation must end with a user message (that is what gets answered). Roles other than
system/user/assistant are refused by the request schema before they get here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aistudio.modeling.prompts import PromptError, prompt_format
from aistudio.serving.errors import bad_request
from aistudio.serving.schemas import ChatMessage


def render_chat(messages: Sequence[ChatMessage], tokenizer: Any = None) -> str:
    """The prompt for `messages` in the format `tokenizer` trained with (a 400 if none fits)."""
    turns = [{"role": m.role, "content": m.text} for m in messages]
    try:
        return prompt_format(tokenizer).chat(turns)
    except PromptError as err:
        raise bad_request(str(err), "messages") from None
