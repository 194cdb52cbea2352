"""Heuristic quality filters: one stable reason string per rejected text, None for a keeper.

Reasons are part of the data contract (they are counted in metrics and written to
rejected.jsonl), so they are constants here and never reworded casually.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from aistudio.config import QualityConfig
from aistudio.data.records import Record

TOO_SHORT = "too_short"
TOO_LONG = "too_long"
TOO_FEW_WORDS = "too_few_words"
TOO_MANY_WORDS = "too_many_words"
REPETITIVE_NGRAMS = "repetitive_ngrams"
REPETITIVE_CHARS = "repetitive_chars"
NONPRINTABLE = "nonprintable"
MOJIBAKE = "mojibake"
EMPTY_FIELD_PREFIX = "empty:"

# Fewer n-grams than this say nothing about repetition: "thank you thank you" is fine.
MIN_NGRAMS_FOR_REPETITION = 10
MIN_CHARS_FOR_CHAR_REPETITION = 20

# UTF-8 continuation bytes (0x80-0xBF) as they look after a wrong Latin-1 or cp1252 decode:
# Latin-1 gives U+0080-U+00BF, cp1252 turns 0x80-0x9F into these typographic characters.
_CP1252_CONTINUATION = (
    "\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d"
    "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
)
_CONTINUATION = f"[\x80-\xbf{_CP1252_CONTINUATION}]"
# One match is one damaged character: a UTF-8 lead byte (Â..ß, à..ï, ð..ô read as Latin-1) with
# its continuation bytes, a UTF-8 BOM read as text, 'â€' whose third byte was dropped, or U+FFFD.
# Two-byte leads other than the common Â Ã Å Ð Ñ only count before a Latin-1 continuation, so
# an upper-case accented letter before a curly quote (“JOSÉ”) is not taken for damage; '×'
# (0xD7) is never a lead: "3×²" is real text.
_MOJIBAKE = re.compile(
    r"[\xc2-\xd6\xd8-\xdf][\x80-\xbf]"
    rf"|[\xc2\xc3\xc5\xd0\xd1][{_CP1252_CONTINUATION}]"
    r"|\u00ef\u00bb\u00bf"
    rf"|[\xe0-\xef]{_CONTINUATION}{{2}}"
    r"|\u00e2\u20ac"
    rf"|[\xf0-\xf4]{_CONTINUATION}{{3}}"
    r"|\ufffd"
)
_MOJIBAKE_LEADS = frozenset("\ufffd" + "".join(chr(c) for c in range(0xC2, 0xF5)))
_ALLOWED_CONTROLS = frozenset("\n\t\r")
# Control, surrogate and private-use code points. Format characters (Cf: soft hyphen, zero-width
# joiner in emoji) and separators such as NBSP are ordinary text, unlike str.isprintable()'s view.
_NONPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Co"})


@lru_cache(maxsize=4096)
def _is_nonprintable(char: str) -> bool:
    if char in _ALLOWED_CONTROLS:
        return False
    return unicodedata.category(char) in _NONPRINTABLE_CATEGORIES or char in "\ufffe\uffff"


# Masks over ASCII code points for the bincount fast path, derived from the same rules.
_ASCII_VISIBLE = np.array([not chr(c).isspace() for c in range(128)])
_ASCII_NONPRINTABLE = np.array([_is_nonprintable(chr(c)) for c in range(128)])


def _repeated_ngram_share(words: list[str], n: int) -> float | None:
    """Share of word n-grams that repeat an earlier one; None when there are too few to judge."""
    total = len(words) - n + 1
    if total < MIN_NGRAMS_FOR_REPETITION:
        return None
    distinct = len(set(zip(*(words[i:] for i in range(n)), strict=False)))
    return (total - distinct) / total


def _ascii_char_issue(text: str, cfg: QualityConfig) -> str | None:
    """Character checks for ASCII text with one bincount: no mojibake is possible, and the only
    non-printables are the C0 controls and DEL."""
    counts = np.bincount(np.frombuffer(text.encode("ascii"), dtype=np.uint8), minlength=128)
    visible = counts[_ASCII_VISIBLE]
    non_space = int(visible.sum())
    if non_space >= MIN_CHARS_FOR_CHAR_REPETITION and visible.max() / non_space > cfg.max_char_repetition:
        return REPETITIVE_CHARS
    if counts[_ASCII_NONPRINTABLE].sum() / len(text) > cfg.max_nonprintable_ratio:
        return NONPRINTABLE
    return None


def _unicode_char_issue(text: str, cfg: QualityConfig) -> str | None:
    """Character checks for any text: one counting pass, then work per distinct character."""
    counts = Counter(text)
    non_space = len(text) - sum(n for char, n in counts.items() if char.isspace())
    if non_space >= MIN_CHARS_FOR_CHAR_REPETITION:
        top = max(n for char, n in counts.items() if not char.isspace())
        if top / non_space > cfg.max_char_repetition:
            return REPETITIVE_CHARS
    # Mojibake before nonprintable: a wrong decode also leaves C1 controls ("â€\x9d"), and
    # "mojibake" names the cause where "nonprintable" names only the symptom.
    if not _MOJIBAKE_LEADS.isdisjoint(counts):
        damaged = sum(1 for _ in _MOJIBAKE.finditer(text))
        if damaged / len(text) > cfg.max_mojibake_ratio:
            return MOJIBAKE
    nonprintable = sum(n for char, n in counts.items() if _is_nonprintable(char))
    if nonprintable / len(text) > cfg.max_nonprintable_ratio:
        return NONPRINTABLE
    return None


def quality_issue(text: str, cfg: QualityConfig) -> str | None:
    """The first quality problem of text (cheapest checks first), or None when it passes."""
    length = len(text)
    if length < cfg.min_chars:
        return TOO_SHORT
    if length > cfg.max_chars:
        return TOO_LONG
    # Lower-casing the whole text once is cheaper than per word; it never adds or removes
    # whitespace, so the word count is the original's.
    words = text.lower().split()
    if len(words) < cfg.min_words:
        return TOO_FEW_WORDS
    if len(words) > cfg.max_words:
        return TOO_MANY_WORDS
    share = _repeated_ngram_share(words, cfg.repetition_ngram)
    if share is not None and share > cfg.max_ngram_repetition:
        return REPETITIVE_NGRAMS
    if length == 0:
        return None  # only reachable with min_chars = min_words = 0: nothing left to judge
    if text.isascii():
        return _ascii_char_issue(text, cfg)
    return _unicode_char_issue(text, cfg)


def empty_field_issue(record: Record, required: Sequence[str]) -> str | None:
    """`empty:<field>` for the first required field that is blank, else None."""
    for name in required:
        value = getattr(record, name, None)
        if not isinstance(value, str):
            raise ValueError(f"required field '{name}' is not a text field of Record")
        if not value.strip():
            return f"{EMPTY_FIELD_PREFIX}{name}"
    return None
