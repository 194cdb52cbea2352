"""JSON grammars from response_format: schema errors are caught before decoding, the mask allows
only what can continue valid JSON, and a walk through the allowed tokens ends in a valid object."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from aistudio.modeling.family import CausalFamily
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.serving.constrained import GrammarError, JsonGrammars

SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["ok", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def grammars() -> JsonGrammars:
    texts = ['{"ok": true, "n": 3}', '{"ok": false}', "[1, 2]", "true false null 0 1 2 3 4 5 6 7 8 9"] * 20
    tokenizer = train_bpe_tokenizer(
        texts, vocab_size=300, min_frequency=1, special=CausalFamily.special_tokens
    )
    return JsonGrammars(tokenizer, len(tokenizer))


@pytest.mark.parametrize(
    ("schema", "message"),
    [({"type": "nonsense"}, "invalid JSON schema"), ({"properties": 3}, "invalid JSON schema")],
)
def test_an_invalid_schema_is_refused_before_any_decoding(
    grammars: JsonGrammars, schema: dict, message: str
) -> None:
    with pytest.raises(GrammarError, match=message):
        grammars.compile(schema)


@pytest.mark.parametrize("seed", range(4))
def test_following_only_allowed_tokens_always_ends_in_a_schema_valid_object(
    grammars: JsonGrammars, seed: int
) -> None:
    row = grammars.matcher(grammars.compile(SCHEMA))
    generator = torch.Generator().manual_seed(seed)
    tokens: list[int] = []
    for _ in range(60):
        logits = torch.randn(grammars.vocab_size, generator=generator)
        row.mask(logits)
        assert torch.isfinite(logits).any()
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        row.accept(token)
        tokens.append(token)
        if row.finished:
            break
    assert row.finished and row.error is None
    value = json.loads(grammars._hf_tokenizer.decode(tokens))
    jsonschema.validate(value, SCHEMA)


def test_json_object_accepts_any_object_and_nothing_else_first(grammars: JsonGrammars) -> None:
    row = grammars.matcher(grammars.compile(None))
    logits = torch.zeros(grammars.vocab_size)
    row.mask(logits)
    allowed = [
        grammars._hf_tokenizer.decode([i]) for i in torch.nonzero(torch.isfinite(logits)).flatten().tolist()
    ]
    assert allowed and all(text.startswith("{") for text in allowed)
