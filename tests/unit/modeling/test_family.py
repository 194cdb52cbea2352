from __future__ import annotations

import pytest

from aistudio.modeling.family import IGNORE_INDEX, family_for, truncate_middle
from aistudio.modeling.prompts import Example, render_prompt
from aistudio.modeling.tokenizer import train_bpe_tokenizer

TEXTS = [f"Summarise article {i}: the town council met and voted on budget line {i * 3}." for i in range(200)]


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def family_and_tokenizer(request):
    family = family_for(request.param)
    return family, train_bpe_tokenizer(TEXTS, 400, 2, family.special_tokens)


def test_truncate_middle_keeps_head_and_tail() -> None:
    assert truncate_middle(list(range(10)), 6, keep_tail=2) == [0, 1, 2, 3, 8, 9]
    assert truncate_middle([1, 2], 6, keep_tail=2) == [1, 2]


def test_an_over_long_prompt_is_shortened_not_dropped(family_and_tokenizer) -> None:
    family, tok = family_and_tokenizer
    article = " ".join(TEXTS[:40])
    example = Example(render_prompt("Summarise this", article), "The council voted.")
    encoded = family.encode(example, tok, max_length=64, loss_on_output_only=True)
    assert encoded is not None and len(encoded.input_ids) <= 64
    text = tok.decode(encoded.input_ids)
    assert text.startswith("### Instruction:\nSummarise this")
    assert "### Response:\n" in text
    target = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert target and target[-1] == tok.eos_token_id


def test_causal_labels_mask_the_prompt_but_learn_eos_even_when_pad_is_eos() -> None:
    family = family_for("causal")
    tok = train_bpe_tokenizer(TEXTS, 400, 2, family.special_tokens)
    tok.pad_token = tok.eos_token  # as hub causal tokenizers are set up
    encoded = family.encode(Example("Say hi\n", "hi"), tok, max_length=32, loss_on_output_only=True)
    assert encoded is not None
    n_prompt = len(family.token_ids(tok, "Say hi\n"))
    assert encoded.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert encoded.labels[-1] == tok.eos_token_id
    batch = family.collate([encoded, family.encode(Example("x", "a longer answer here"), tok, 32, True)], tok)
    assert int((batch["labels"] == tok.eos_token_id).sum()) == 2


def test_an_instruct_record_trains_on_the_assistant_turn_only_and_keeps_its_header(smollm2_dir) -> None:
    from transformers import AutoTokenizer

    from aistudio.config import TrainingConfig
    from aistudio.training.trainer import encode_records

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    family = family_for("causal")
    record = {"instruction": "Summarise this", "input": " ".join(TEXTS[:40]), "output": "The council voted."}
    cfg = TrainingConfig(max_length=64, packing=False)
    (encoded,), skipped = encode_records(family, tok, [record], cfg)
    assert skipped == 0 and len(encoded.input_ids) <= 64
    text = tok.decode(encoded.input_ids)
    assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\nSummarise this" in text
    # The middle of the article went; the end of the user turn and the assistant header stayed.
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\nThe council voted.<|im_end|>")
    learned = tok.decode([t for t in encoded.labels if t != IGNORE_INDEX])
    assert learned == "The council voted.<|im_end|>"
