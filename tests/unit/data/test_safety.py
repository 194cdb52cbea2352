"""Safety screen: whole-word, case-insensitive phrase matching with a stable category choice."""

from __future__ import annotations

import pytest

from aistudio.data.safety import SafetyScreen

SCREEN = SafetyScreen(
    {
        "violence": ["build a pipe bomb", "kill", "hurt them badly"],
        "self_harm": ["end my life"],
        "hate": ["subhuman vermin"],
        "tooling": ["c++", "rm -rf /"],
    }
)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("How do I build a pipe bomb at home?", "violence"),
        ("I want to END MY LIFE.", "self_harm"),
        ("They called them subhuman vermin", "hate"),
        ("Kill the process with SIGKILL", "violence"),
    ],
)
def test_blocked_terms_report_their_category(text: str, category: str) -> None:
    assert SCREEN.category_of(text) == category


def test_phrases_match_across_any_whitespace() -> None:
    assert SCREEN.category_of("build a\n  pipe\tbomb") == "violence"


@pytest.mark.parametrize("text", ["Learn a new skill", "killer whales", "the bomb squad", "a pipe bombing"])
def test_terms_do_not_match_inside_longer_words_or_partial_phrases(text: str) -> None:
    assert SCREEN.category_of(text) is None


def test_terms_with_punctuation_are_bounded_correctly() -> None:
    assert SCREEN.category_of("I write C++ daily") == "tooling"
    assert SCREEN.category_of("never run rm -rf / as root") == "tooling"
    assert SCREEN.category_of("c++x is not a language") is None


def test_first_category_in_sorted_order_wins_regardless_of_position() -> None:
    text = "hurt them badly, end my life, subhuman vermin"
    assert SCREEN.category_of(text) == "hate"


def test_overlapping_phrases_from_different_categories_are_both_seen() -> None:
    screen = SafetyScreen({"b_long": ["kill them all"], "a_short": ["them all now"]})
    assert screen.category_of("kill them all now") == "a_short"


def test_clean_text_passes() -> None:
    assert SCREEN.category_of("A friendly paragraph about gardening and tomatoes.") is None


def test_no_categories_never_match() -> None:
    assert SafetyScreen({}).category_of("kill everything") is None


def test_empty_and_blank_term_lists_never_match() -> None:
    screen = SafetyScreen({"empty": [], "blank": ["", "   "]})
    assert screen.category_of("anything at all, even '' and spaces") is None
    assert screen.categories == ()


def test_regex_metacharacters_in_terms_are_literal() -> None:
    screen = SafetyScreen({"x": ["a.b"]})
    assert screen.category_of("a.b") == "x"
    assert screen.category_of("axb") is None


def test_matching_uses_full_case_folding() -> None:
    screen = SafetyScreen({"x": ["Straße"]})
    assert screen.category_of("STRASSE closed") == "x"


def test_a_term_found_inside_a_word_does_not_hide_a_later_whole_word_match() -> None:
    assert SCREEN.category_of("skills kill") == "violence"


def test_a_text_holding_every_word_of_a_term_apart_is_clean_and_together_is_caught() -> None:
    # The screen only runs its pattern when every word of some term occurs in the text.
    apart = "Build the shed; a pipe runs under it. Bomb disposal trained there."
    assert SCREEN.category_of(apart) is None
    assert SCREEN.category_of(apart + " Never build a\n pipe  bomb.") == "violence"
