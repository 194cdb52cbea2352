"""Safety screen: reject texts that contain a blocked term, reporting which category it belongs to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence


def _alternation(terms: Sequence[str]) -> str:
    """Case-folded terms as one regex alternation, any whitespace run between words; "" if none.

    The pattern carries the right-hand word boundary, `(?!\\w)`: it is only tested after a term has
    matched, and the alternation backtracks into a longer term ("kill" failing on "killer" still
    lets "killer" match). The left-hand boundary is checked in Python instead, because a pattern
    that starts with a look-behind is tried at every character, which made the scan ten times
    slower than one that starts with a literal.
    """
    folded = sorted({" ".join(term.casefold().split()) for term in terms if term.strip()})
    if not folded:
        return ""
    bodies = (r"\s+".join(re.escape(word) for word in term.split(" ")) for term in folded)
    return "(?:" + "|".join(bodies) + r")(?!\w)"


def _clues(terms: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Every term's words, longest first: a text can only hold a term if it holds all its words.

    A term's words are matched literally in the case-folded text, so a text lacking a word of
    every term holds no term; substring tests run at memchr speed, far below one regex scan.
    """
    folded = sorted({" ".join(term.casefold().split()) for term in terms if term.strip()})
    return tuple(tuple(sorted(term.split(" "), key=len, reverse=True)) for term in folded)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"  # exactly re's \w for str patterns


def _contains_whole_term(pattern: re.Pattern[str], text: str) -> bool:
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        start = m.start()
        if start == 0 or not _is_word_char(text[start - 1]):
            return True
        pos = start + 1  # "kill" inside "skill": look again from the next character
    return False


class SafetyScreen:
    """Case-insensitive whole-word matching of blocked terms, grouped by category."""

    def __init__(self, categories: Mapping[str, Sequence[str]]) -> None:
        per_category = {name: _alternation(terms) for name, terms in categories.items()}
        self.categories: tuple[str, ...] = tuple(sorted(name for name, alt in per_category.items() if alt))
        self._by_category = {name: re.compile(per_category[name]) for name in self.categories}
        # One pass over the text answers "is anything blocked here?" for the common clean case.
        combined = "|".join(per_category[name] for name in self.categories)
        self._any = re.compile(combined) if combined else None
        self._clues = _clues(term for terms in categories.values() for term in terms)

    def category_of(self, text: str) -> str | None:
        """The first category, in sorted name order, with a term in text; None when clean."""
        if self._any is None:
            return None
        # casefold() rather than re.IGNORECASE: it also matches "STRASSE" to a term "straße".
        folded = text.casefold()
        if not any(all(map(folded.__contains__, words)) for words in self._clues):
            return None
        if not _contains_whole_term(self._any, folded):
            return None
        # Rare path: several categories may match, possibly with overlapping phrases that one
        # left-to-right scan would hide from each other, so ask each category in order.
        for name in self.categories:
            if _contains_whole_term(self._by_category[name], folded):
                return name
        return None  # unreachable: the combined pattern matched one of these
