"""A planted benchmark for near-duplicate detection: edited copies, and look-alikes that are not copies.

Base records are drawn from the corpus generators, short (an instruction or a question alone,
10-40 words, the shape that word shingles fail on) and long (a whole record). Each planted copy
applies one edit kind to a base record:

- one_word: one word replaced by another word
- insert_delete: one word inserted, or one deleted
- reorder: two sentences swapped (records with at least two sentences)
- case_space_punct: letter case, runs of spaces and punctuation changed
- placeholder: a PII value replaced by a placeholder token, or one placeholder by another
- text_vs_structured: the record written as one text block with role labels

Negatives are template siblings: records made from the same snippet kind or analysis template
with different slot values, which share much phrasing and must not be taken for copies.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aistudio.data.sample_corpus.analysis import AnalysisSample, clean_analysis_samples
from aistudio.data.sample_corpus.code import CodeSample, clean_code_samples
from aistudio.data.sample_corpus.creative import clean_creative
from aistudio.data.sample_corpus.resources import VOCABULARY

EDIT_KINDS = ("one_word", "insert_delete", "reorder", "case_space_punct", "placeholder", "text_vs_structured")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\b[A-Za-z]{3,}\b")


@dataclass(frozen=True)
class BenchmarkRecord:
    """One record as prepare_data would see it: its text fields, or a single text."""

    id: str
    instruction: str = ""
    input: str = ""
    output: str = ""
    text: str = ""

    def content(self) -> str:
        return "\n".join(p for p in (self.instruction, self.input, self.output, self.text) if p)


@dataclass(frozen=True)
class NearCopyBenchmark:
    records: list[BenchmarkRecord]
    planted: dict[tuple[str, str], str]  # (original id, copy id) → edit kind


def _replace_word(text: str, rng: random.Random) -> str:
    spans = [m.span() for m in _WORD.finditer(text)]
    start, end = rng.choice(spans)
    word = rng.choice([w for w in VOCABULARY.nouns if w != text[start:end].lower()])
    return text[:start] + word + text[end:]


def _insert_or_delete(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    at = rng.randrange(1, len(words))
    if rng.random() < 0.5:
        return " ".join(words[:at] + [rng.choice(VOCABULARY.adjectives)] + words[at:])
    return " ".join(words[:at] + words[at + 1 :])


def _reorder(text: str, rng: random.Random) -> str | None:
    sentences = _SENTENCE_END.split(text)
    if len(sentences) < 2:
        return None
    i = rng.randrange(len(sentences) - 1)
    sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
    return " ".join(sentences)


def _case_space_punct(text: str, rng: random.Random) -> str:
    text = rng.choice((str.upper, str.lower, str.swapcase))(text)
    text = text.replace(", ", " ,  ").replace(". ", "!  ")
    return text.rstrip(".") + " ..."


_PII_VALUES = ("jane.roe@example.org", "+44 20 7946 0321", "[EMAIL]", "[PHONE]", "<name>")


def _with_placeholder(record: BenchmarkRecord, rng: random.Random) -> tuple[BenchmarkRecord, BenchmarkRecord]:
    first, second = (
        rng.sample(_PII_VALUES[2:], 2) if rng.random() < 0.5 else (rng.choice(_PII_VALUES[:2]), None)
    )
    field = "instruction" if record.instruction else "text"
    base = getattr(record, field)
    original = _replace_field(record, field, f"{base} Contact: {first}.")
    # A raw value is scrubbed to its placeholder before dedup; the copy carries the placeholder.
    placeholder = second or ("[EMAIL]" if "@" in first else "[PHONE]")
    return original, _replace_field(record, field, f"{base} Contact: {placeholder}.")


def _replace_field(record: BenchmarkRecord, field: str, value: str) -> BenchmarkRecord:
    values = {
        "instruction": record.instruction,
        "input": record.input,
        "output": record.output,
        "text": record.text,
    }
    values[field] = value
    return BenchmarkRecord(record.id, **values)


def _as_text(record: BenchmarkRecord) -> BenchmarkRecord:
    parts = [f"### Instruction:\n{record.instruction}"]
    if record.input:
        parts.append(f"### Input:\n{record.input}")
    if record.output:
        parts.append(f"### Response:\n{record.output}")
    return BenchmarkRecord(record.id, text="\n\n".join(parts))


def _edit(
    kind: str, record: BenchmarkRecord, rng: random.Random
) -> tuple[BenchmarkRecord, BenchmarkRecord] | None:
    field = "instruction" if record.instruction else "text"
    value = getattr(record, field)
    if kind == "placeholder":
        return _with_placeholder(record, rng)
    if kind == "text_vs_structured":
        return (record, _as_text(record)) if record.instruction else None
    edited = {
        "one_word": _replace_word,
        "insert_delete": _insert_or_delete,
        "reorder": _reorder,
        "case_space_punct": _case_space_punct,
    }[kind](value, rng)
    return None if edited is None else (record, _replace_field(record, field, edited))


def _code_record(sample: CodeSample, short: bool) -> dict[str, str]:
    if short:
        return {"instruction": sample.instruction}
    return {"instruction": sample.instruction, "input": sample.input, "output": sample.output}


def _analysis_record(sample: AnalysisSample, short: bool) -> dict[str, str]:
    if short:  # the question alone repeats across a template; its worked answer carries the numbers
        return {"instruction": sample.question, "output": sample.answer}
    return {"instruction": sample.question, "input": sample.context, "output": sample.answer}


def near_copy_benchmark(seed: int = 13, per_kind: int = 40, siblings: int = 300) -> NearCopyBenchmark:
    """per_kind planted copies of each edit kind, plus `siblings` template-sibling records."""
    rng = random.Random(f"{seed}:near-copies")
    code = clean_code_samples(rng, per_kind * len(EDIT_KINDS) + siblings)
    analysis = clean_analysis_samples(rng, per_kind * len(EDIT_KINDS) + siblings)
    creative = clean_creative(rng, per_kind * len(EDIT_KINDS))
    pool: list[dict[str, str]] = []
    for i in range(per_kind * len(EDIT_KINDS)):
        short = i % 2 == 0  # half the bases are short instruction-only records
        pool.append(_code_record(code[i], short))
        pool.append(_analysis_record(analysis[i], short))
        pool.append({"text": creative[i].text})
    rng.shuffle(pool)
    records: list[BenchmarkRecord] = []
    planted: dict[tuple[str, str], str] = {}
    bases = iter(pool)
    for kind in EDIT_KINDS:
        made = 0
        while made < per_kind:
            base = BenchmarkRecord(f"{kind}-{made}", **next(bases))
            pair = _edit(kind, base, rng)
            if pair is None:
                continue
            original, copy = pair
            records += [
                BenchmarkRecord(f"{kind}-{made}-a", **_fields(original)),
                BenchmarkRecord(f"{kind}-{made}-b", **_fields(copy)),
            ]
            planted[(f"{kind}-{made}-a", f"{kind}-{made}-b")] = kind
            made += 1
    start = per_kind * len(EDIT_KINDS)
    for i in range(siblings):
        records.append(BenchmarkRecord(f"sibling-code-{i}", **_code_record(code[start + i], i % 2 == 0)))
        records.append(
            BenchmarkRecord(f"sibling-analysis-{i}", **_analysis_record(analysis[start + i], i % 2 == 0))
        )
    rng.shuffle(records)
    return NearCopyBenchmark(records, planted)


def _fields(record: BenchmarkRecord) -> dict[str, str]:
    return {
        "instruction": record.instruction,
        "input": record.input,
        "output": record.output,
        "text": record.text,
    }
