"""One prompt format per tokenizer, shared by training, evaluation and serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from aistudio.modeling.prompts import (
    CONTINUE_PREFIX,
    ChatTemplateFormat,
    InstructionFormat,
    PromptError,
    example_from_record,
    prompt_format,
)

RECORD = {
    "instruction": "Summarise the memo",
    "input": "The council met.",
    "output": "It met.",
    "domain": "x",
}


@pytest.fixture(scope="module")
def chat_tokenizer(smollm2_dir: Path):
    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_a_tokenizer_without_a_chat_template_keeps_the_instruction_format() -> None:
    class Plain:
        chat_template = None

    assert isinstance(prompt_format(Plain()), InstructionFormat)
    assert isinstance(prompt_format(None), InstructionFormat)
    example = example_from_record(RECORD)
    assert (
        example.prompt
        == "### Instruction:\nSummarise the memo\n\n### Input:\nThe council met.\n\n### Response:\n"
    )
    assert (example.target, example.domain) == ("It met.", "x")


def test_plain_text_records_become_a_continuation_in_either_format(chat_tokenizer) -> None:
    record = {"text": " ".join(f"w{i}" for i in range(10)), "domain": "creative"}
    for fmt in (InstructionFormat(), prompt_format(chat_tokenizer)):
        example = fmt.example(record)
        assert CONTINUE_PREFIX + "w0 w1 w2" in example.prompt
        assert example.target == "w3 w4 w5 w6 w7 w8 w9"


def test_an_instruct_tokenizer_renders_records_with_its_own_chat_template(chat_tokenizer) -> None:
    fmt = prompt_format(chat_tokenizer)
    assert isinstance(fmt, ChatTemplateFormat)
    prompt = fmt.example(RECORD).prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nSummarise the memo\n\nThe council met.<|im_end|>" in prompt
    assert chat_tokenizer.eos_token == "<|im_end|>"  # the target's end is the template's end of turn


def test_the_chat_route_and_training_see_identical_token_ids_for_the_same_user_turn(chat_tokenizer) -> None:
    fmt = prompt_format(chat_tokenizer)
    trained = fmt.example(RECORD).prompt
    served = fmt.chat([{"role": "user", "content": "Summarise the memo\n\nThe council met."}])
    reference = chat_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Summarise the memo\n\nThe council met."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    ids = chat_tokenizer(trained, add_special_tokens=False)["input_ids"]
    assert served == trained
    assert ids == list(reference)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([{"role": "system", "content": "x"}], "must have role 'user'"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "must have role 'user'"),
        ([{"role": "user", "content": "  "}], "is empty"),
        ([{"role": "tool", "content": "a"}], "unknown role"),
    ],
)
def test_conversations_no_format_can_answer_are_refused_in_both_formats(
    messages, message: str, chat_tokenizer
) -> None:
    for fmt in (InstructionFormat(), prompt_format(chat_tokenizer)):
        with pytest.raises(PromptError, match=message):
            fmt.chat(messages)


def test_an_assistant_turn_before_any_user_turn_is_refused_in_the_instruction_format() -> None:
    with pytest.raises(PromptError, match="must follow a user message"):
        InstructionFormat().chat([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}])
