"""`response_format` json_object / json_schema through constrained decoding with llguidance.

At every step a row's grammar matcher says which tokens may come next; the others get -inf before
sampling, so a row that finishes with "stop" is valid JSON for its schema (a row cut off by
max_tokens ends with "length", as with OpenAI). The grammar ends where the JSON value ends: the
matcher then allows only EOS and the row stops.

Why llguidance: it installs as one self-contained wheel (a Rust core, no dependencies) under our
constraints, without touching torch or transformers; it builds its token trie from the fast
tokenizer itself, so it works with transformers 5 and with our tiny BPE tokenizers alike; masks
cost well under a millisecond per row, and JSON Schema coverage is broad (vLLM and SGLang ship it).
xgrammar pulls in triton and a TVM runtime (hundreds of MB) on a CPU-only box; lm-format-enforcer
is pure Python, slower per token, and its schema coverage is narrower.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

# The grammar for "json_object": any JSON object.
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}
# JSON as json.dumps writes it, with no free whitespace: a small model let loose between tokens
# tends to emit blank space until max_tokens. A schema's own "x-guidance" options still win.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GrammarError(ValueError):
    """A schema no grammar can be built from (the caller answers 400 naming response_format)."""


class JsonGrammars:
    """Compiles response formats to grammars and hands out one matcher per row.

    The llguidance tokenizer is built on first use (about a second for a 49k vocabulary) and shared
    by every matcher; it is built on the worker thread or the event loop, whoever needs it first.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self._hf_tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _ll_tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                import llguidance.hf

                self._tokenizer = llguidance.hf.from_tokenizer(self._hf_tokenizer, n_vocab=self.vocab_size)
            return self._tokenizer

    def compile(self, schema: Mapping[str, Any] | None) -> str:
        """The grammar for `schema` (None: any JSON object); GrammarError says what is wrong."""
        import llguidance
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        schema = ANY_OBJECT if schema is None else schema
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise GrammarError(f"invalid JSON schema: {exc.message}") from None
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=JSON_LAYOUT)
        except ValueError as exc:
            raise GrammarError(f"invalid JSON schema: {exc}") from None
        problem = llguidance.LLMatcher.validate_grammar(grammar, self._ll_tokenizer())
        if problem and not problem.startswith("WARNING"):
            raise GrammarError(f"unsupported JSON schema: {problem}")
        return grammar

    def matcher(self, grammar: str) -> RowGrammar:
        import llguidance

        return RowGrammar(llguidance.LLMatcher(self._ll_tokenizer(), grammar, log_level=0), self.vocab_size)


class RowGrammar:
    """One row's position in its grammar."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size

    def mask(self, logits: torch.Tensor) -> None:
        """Set every token the grammar forbids next to -inf, in place (`logits` [vocab])."""
        bits = np.unpackbits(
            np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8), bitorder="little"
        )
        allowed = torch.from_numpy(bits[: logits.shape[-1]].astype(bool))
        if (
            allowed.shape[0] < logits.shape[-1]
        ):  # the model's vocabulary has padding rows past the tokenizer's
            allowed = torch.cat([allowed, torch.zeros(logits.shape[-1] - allowed.shape[0], dtype=torch.bool)])
        logits.masked_fill_(~allowed, float("-inf"))

    def accept(self, token: int) -> None:
        self._matcher.consume_token(token)

    @property
    def finished(self) -> bool:
        """The JSON value is complete: nothing but EOS may follow."""
        return bool(self._matcher.is_stopped())

    @property
    def error(self) -> str | None:
        return self._matcher.get_error() if self._matcher.is_error() else None
