"""Chat messages → the one prompt template the models were trained on (aistudio.modeling.prompts).

    [system text]\n\n                                  system messages, joined, as a preamble
    ### Instruction:\n<user>\n\n### Response:\n<assistant>\n\n   each earlier exchange
    ### Instruction:\n<last user message>\n\n### Response:\n     what the model answers

The conversation must end with a user message (that is what gets answered); consecutive user
messages are joined into one instruction. Roles other than system/user/assistant are refused by
the request schema before they get here.
"""

from __future__ import annotations

from collections.abc import Sequence

from aistudio.modeling.prompts import render_prompt
from aistudio.serving.errors import bad_request
from aistudio.serving.schemas import ChatMessage


def render_chat(messages: Sequence[ChatMessage]) -> str:
    system = [m.text.strip() for m in messages if m.role == "system" and m.text.strip()]
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise bad_request(
            "The last message must have role 'user' (it is the one the model answers)", "messages"
        )
    parts = ["\n\n".join(system) + "\n\n"] if system else []
    pending: list[str] = []
    for message in turns:
        if message.role == "user":
            pending.append(message.text)
            continue
        if not pending:
            raise bad_request("An assistant message must follow a user message", "messages")
        parts.append(render_prompt("\n".join(pending)) + message.text.strip() + "\n\n")
        pending = []
    instruction = "\n".join(pending)
    if not instruction.strip():
        raise bad_request("The last user message is empty", "messages")
    parts.append(render_prompt(instruction))
    return "".join(parts)
