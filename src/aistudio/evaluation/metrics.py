"""Task metrics on generated text: pure functions of predictions and references.

Every metric over an empty input is 0.0 (a rate of nothing), except latency, which has no
meaningful empty value and refuses one. Metric names used by gates and reports are defined here
once (PERPLEXITY, ROUGE_L, PARSE_RATE, P95_LATENCY, ...).
"""

from __future__ import annotations

import ast
import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

# Metric names, shared with gates.py and report.py.
PERPLEXITY = "perplexity"
ROUGE_1, ROUGE_2, ROUGE_L = "rouge1", "rouge2", "rougeL"
PARSE_RATE = "parse_rate"
PASS_AT_1 = "pass_at_1"  # computed by evaluation/sandbox.py: it runs code
EXACT_MATCH = "exact_match"
TOKEN_F1 = "token_f1"
REPETITION_RATE = "repetition_rate"
MEAN_WORDS = "mean_words"
LENGTH_RATIO = "length_ratio"
P50_LATENCY, P95_LATENCY, TOKENS_PER_SECOND = "p50_s", "p95_s", "tokens_per_second"

_ROUGE_TYPES = (ROUGE_1, ROUGE_2, ROUGE_L)
# Built once: the scorer holds the tokenizer and Porter stemmer.
_SCORER = rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references; pair them one to one"
        )


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


# --- overlap metrics ------------------------------------------------------------------------------


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (Porter stemming on), as `rouge_score` computes them."""
    scores = _rouge_pairs(predictions, references)
    return {kind: _mean([s[kind].fmeasure for s in scores]) for kind in _ROUGE_TYPES}


def _rouge_pairs(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, Any]]:
    _check_pairs(predictions, references)
    return [_SCORER.score(ref, pred) for pred, ref in zip(predictions, references, strict=True)]


def _normalise_whitespace(text: str) -> str:
    return " ".join(text.split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference once runs of whitespace are collapsed."""
    _check_pairs(predictions, references)
    hits = [
        _normalise_whitespace(p) == _normalise_whitespace(r)
        for p, r in zip(predictions, references, strict=True)
    ]
    return _mean([float(h) for h in hits])


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    # SQuAD v1.1 normalisation: lower case, drop punctuation and English articles, split on whitespace.
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD bag-of-words F1 of one pair; two empty texts agree (1.0), one empty text scores 0.0."""
    pred, ref = _squad_tokens(prediction), _squad_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_overlap_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean SQuAD-style token F1 over the pairs."""
    _check_pairs(predictions, references)
    return _mean([token_f1(p, r) for p, r in zip(predictions, references, strict=True)])


# --- code -----------------------------------------------------------------------------------------

# A fenced block anywhere in a completion; one cut off at max_new_tokens runs to the end.
_FENCED_BLOCK = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_CODE_LINE = re.compile(r"^(?:async def |def |class |import |from |@)", re.M)


def _parses(code: str) -> bool:
    if not code.strip():
        return False  # ast.parse("") succeeds, but an empty completion is not working code
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences warn, they are not errors
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # ValueError: NUL bytes; RecursionError/MemoryError: pathologically nested generations.
        return False
    return True


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The Python source in a completion, as an instruct model writes it.

    - fenced blocks (```python ... ```): the first that defines `entry_point`, else the first;
    - no fence: the text itself when it parses, else from its first line that starts code
      (def, class, import, from, a decorator), dropping a prose preamble such as "Sure! Here...".
    """
    blocks = _FENCED_BLOCK.findall(text)
    if blocks:
        if entry_point:
            defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
            blocks = [b for b in blocks if defines.search(b)] or blocks
        return blocks[0].rstrip("\n")
    if _parses(text):
        return text
    start = _CODE_LINE.search(text)
    return text[start.start() :] if start else text


def parses_as_python(text: str) -> bool:
    """Whether `ast.parse` accepts the code extract_code finds; blank text does not count as code."""
    return _parses(extract_code(text))


def code_parse_rate(generations: Sequence[str]) -> float:
    """Share of generations whose extracted code (extract_code) parses as Python."""
    return _mean([float(parses_as_python(g)) for g in generations])


# --- degeneration and length ----------------------------------------------------------------------


def repeated_ngram_share(text: str, n: int = 3) -> float | None:
    """Share of the word n-grams of `text` that repeat an earlier one; None with no n-gram at all.

    The same definition the data quality filter applies to training text (lower-cased words).
    """
    words = text.lower().split()
    total = len(words) - n + 1
    if total <= 0:
        return None
    distinct = len(set(zip(*(words[i:] for i in range(n)), strict=False)))
    return (total - distinct) / total


def repetition_rate(texts: Sequence[str], n: int = 3) -> float:
    """Mean repeated-n-gram share over the texts long enough to hold an n-gram (degeneration check).

    "a a a a" with n=3 has two 3-grams, one repeating the other: 0.5.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    shares = [s for s in (repeated_ngram_share(t, n) for t in texts) if s is not None]
    return _mean(shares)


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Words per text: mean, median, max, and the share of blank texts."""
    if not texts:
        return {MEAN_WORDS: 0.0, "p50_words": 0.0, "max_words": 0.0, "empty_share": 0.0}
    lengths = np.array([len(t.split()) for t in texts], dtype=float)
    return {
        MEAN_WORDS: float(lengths.mean()),
        "p50_words": float(np.median(lengths)),
        "max_words": float(lengths.max()),
        "empty_share": float((lengths == 0).mean()),
    }


# --- latency --------------------------------------------------------------------------------------


def latency_summary(seconds: Sequence[float], tokens: Sequence[int]) -> dict[str, float]:
    """p50/p95 of the timed calls (linear interpolation) and generated tokens per second overall.

    `seconds` holds one entry per timed call (a batch), `tokens` one entry per sample; throughput
    is all tokens over all time, so it does not depend on how the samples were batched.
    """
    if not seconds:
        raise ValueError("latency_summary needs at least one timed call")
    times = np.asarray(seconds, dtype=float)
    total = float(times.sum())
    return {
        P50_LATENCY: float(np.percentile(times, 50)),
        P95_LATENCY: float(np.percentile(times, 95)),
        TOKENS_PER_SECOND: float(sum(tokens) / total) if total > 0 else 0.0,
    }


# --- per-domain task metrics ----------------------------------------------------------------------


def length_ratio(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean words of the predictions over mean words of the references: < 1 too short, > 1 too long."""
    _check_pairs(predictions, references)
    reference_words = length_stats(references)[MEAN_WORDS]
    return length_stats(predictions)[MEAN_WORDS] / reference_words if reference_words else 0.0


def _summarization(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return {**rouge_scores(predictions, references), LENGTH_RATIO: length_ratio(predictions, references)}


def _code(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return {PARSE_RATE: code_parse_rate(predictions), EXACT_MATCH: exact_match(predictions, references)}


def _open_ended(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    # Free text has no single right answer: overlap with the reference, plus the two ways a
    # small model fails visibly (looping and stopping short).
    return {
        TOKEN_F1: token_overlap_f1(predictions, references),
        REPETITION_RATE: repetition_rate(predictions),
        MEAN_WORDS: length_stats(predictions)[MEAN_WORDS],
        LENGTH_RATIO: length_ratio(predictions, references),
    }


TaskMetrics = Callable[[Sequence[str], Sequence[str]], dict[str, float]]
DOMAIN_METRICS: dict[str, TaskMetrics] = {
    "summarization": _summarization,
    "code": _code,
    "creative": _open_ended,
    "analysis": _open_ended,
}


def domain_metrics(domain: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The task metrics of `domain`; a domain not in DOMAIN_METRICS is scored as open-ended text."""
    _check_pairs(predictions, references)
    return DOMAIN_METRICS.get(domain, _open_ended)(predictions, references)


def sample_scores(
    domain: str, predictions: Sequence[str], references: Sequence[str]
) -> dict[str, list[float]]:
    """Each sample's score of the domain's primary metric where that metric is a mean over samples
    (ROUGE-L): two forms scored on the same references pair up (gates.py). pass@1's come from the
    sandbox; perplexity is one ratio over all tokens, not a mean of per-sample scores."""
    if primary_metric(domain).name != ROUGE_L:
        return {}
    return {ROUGE_L: [s[ROUGE_L].fmeasure for s in _rouge_pairs(predictions, references)]}


# --- the one metric per domain that decides ---------------------------------------------------------


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric a domain is judged on, and what "better than the base" means for it.

    Scores in [0, 1] (pass@1, ROUGE-L) gain in absolute points: 0.25 → 0.31 is +0.06. Perplexity
    gains as a relative reduction: 20 → 18 is +0.10, so one margin reads the same on any scale.
    """

    name: str
    higher_is_better: bool

    def gain(self, value: float, base: float) -> float:
        if self.higher_is_better:
            return value - base
        return (base - value) / base if base else 0.0

    @property
    def unit(self) -> str:
        return "absolute points" if self.higher_is_better else "relative reduction"


# Code: does it run; summaries: overlap with the reference summary; free text has no single right
# answer, so the held-out reference's perplexity (how well the model predicts it) decides there.
PRIMARY_METRICS: dict[str, PrimaryMetric] = {
    "code": PrimaryMetric(PASS_AT_1, higher_is_better=True),
    "summarization": PrimaryMetric(ROUGE_L, higher_is_better=True),
    "creative": PrimaryMetric(PERPLEXITY, higher_is_better=False),
    "analysis": PrimaryMetric(PERPLEXITY, higher_is_better=False),
}


def primary_metric(domain: str) -> PrimaryMetric:
    """The domain's primary metric; a domain not in PRIMARY_METRICS is judged on perplexity."""
    return PRIMARY_METRICS.get(domain, PrimaryMetric(PERPLEXITY, higher_is_better=False))
