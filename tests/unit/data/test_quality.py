"""Quality filters: each reason fires on the text it describes and not on ordinary prose or code."""

from __future__ import annotations

import pytest

from aistudio.config import QualityConfig
from aistudio.data.quality import empty_field_issue, quality_issue
from aistudio.data.records import Record

CFG = QualityConfig(
    min_chars=20,
    max_chars=2_000,
    min_words=3,
    max_words=300,
    repetition_ngram=3,
    max_ngram_repetition=0.5,
    max_char_repetition=0.4,
    max_nonprintable_ratio=0.01,
    max_mojibake_ratio=0.005,
)

PROSE = (
    "The committee reviewed the proposal on Tuesday and asked for a revised budget. "
    "Several members noted that the timeline was optimistic, but agreed the goals were sound."
)
CODE = (
    "def mean(values: list[float]) -> float:\n"
    '    """Arithmetic mean; raises on an empty list."""\n'
    "    if not values:\n"
    "        raise ValueError('empty')\n"
    "    return sum(values) / len(values)\n"
)


ACCENTED = "Café, naïve façade — «déjà vu» à Paris, Straße über Köln."


@pytest.mark.parametrize("text", [PROSE, CODE, ACCENTED])
def test_ordinary_prose_code_and_accented_text_pass(text: str) -> None:
    assert quality_issue(text, CFG) is None


def test_text_below_min_chars_is_too_short() -> None:
    assert quality_issue("tiny text here", CFG) == "too_short"


def test_text_above_max_chars_is_too_long() -> None:
    assert quality_issue(PROSE * 20, CFG) == "too_long"


def test_text_with_few_words_is_too_few_words() -> None:
    assert quality_issue("supercalifragilistic expialidocious", CFG) == "too_few_words"


def test_text_with_many_words_is_too_many_words() -> None:
    text = " ".join(f"w{i}" for i in range(400))
    assert quality_issue(text, CFG) == "too_many_words"


def test_looping_text_is_repetitive_ngrams() -> None:
    assert quality_issue("buy cheap pills now " * 10, CFG) == "repetitive_ngrams"


def test_ngram_repetition_ignores_case() -> None:
    assert quality_issue("Buy cheap pills now buy CHEAP PILLS now " * 5, CFG) == "repetitive_ngrams"


def test_short_repeated_phrases_are_not_judged_for_ngram_repetition() -> None:
    # 8 trigrams, under the 10 needed to judge repetition.
    assert quality_issue("thank you thank you thank you so much", CFG) is None


def test_one_character_dominating_is_repetitive_chars() -> None:
    assert quality_issue("aaaaaaaaaaaaaaaaaaaaaaaaaa ok then fine b c d", CFG) == "repetitive_chars"


def test_ascii_art_separator_lines_are_repetitive_chars() -> None:
    assert quality_issue("Title\n" + "=" * 60 + "\nsome body text here", CFG) == "repetitive_chars"


def test_spaces_do_not_count_towards_char_repetition() -> None:
    text = "a b  c   d    e     f      g       h        i         j k l m n o p q r s t"
    assert quality_issue(text, CFG) is None


def test_control_characters_are_nonprintable() -> None:
    assert quality_issue(PROSE + "\x00\x01\x02\x07\x1b", CFG) == "nonprintable"


def test_newlines_tabs_nbsp_and_zero_width_joiners_are_printable() -> None:
    text = "Line one\tcol\r\nLine two\u00a0with nbsp and emoji 👩\u200d💻 here.\n"
    assert quality_issue(text, CFG) is None


def test_utf8_read_as_latin1_is_mojibake() -> None:
    text = "CafÃ© naÃ¯ve faÃ§ade dÃ©jÃ  vu, itâ€™s â€œquotedâ€\x9d here."
    assert quality_issue(text, CFG) == "mojibake"


def test_replacement_characters_are_mojibake() -> None:
    assert quality_issue("The r\ufffdsum\ufffd was saved with the wrong encoding, sadly.", CFG) == "mojibake"


def test_a_single_mojibake_sequence_in_a_long_text_is_tolerated() -> None:
    assert quality_issue(PROSE + " Itâ€™s fine. " + PROSE, CFG) is None


def test_mojibake_sequences_count_once_each() -> None:
    # 'â€™' is one damaged apostrophe: 2 sequences in ~360 chars is under 1%, 3 characters each is not.
    cfg = CFG.model_copy(update={"max_mojibake_ratio": 0.01})
    text = (PROSE + " ") * 2 + "Itâ€™s and itâ€™s."
    assert quality_issue(text, cfg) is None


def test_checks_run_cheapest_first() -> None:
    assert quality_issue("\x00\x00\x00", CFG) == "too_short"


def test_zero_minimums_accept_empty_text() -> None:
    cfg = CFG.model_copy(update={"min_chars": 0, "min_words": 0})
    assert quality_issue("", cfg) is None


def _record(**fields: str) -> Record:
    return Record(id="r1", domain="analysis", source="s.jsonl", source_line=1, **fields)


def test_blank_required_field_is_named() -> None:
    record = _record(instruction="Summarise", output="  \n ")
    assert empty_field_issue(record, ["instruction", "output"]) == "empty:output"


def test_first_blank_required_field_is_reported() -> None:
    assert empty_field_issue(_record(), ["instruction", "output"]) == "empty:instruction"


def test_filled_required_fields_pass() -> None:
    assert empty_field_issue(_record(instruction="Q", output="A"), ["instruction", "output"]) is None


def test_unknown_required_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a text field"):
        empty_field_issue(_record(text="x"), ["source_line"])


def test_upper_case_accents_before_curly_quotes_are_not_mojibake() -> None:
    text = "“JOSÉ” and ‘CAFÉ’ are names; “RÉSUMÉ” is a word. " * 2
    assert quality_issue(text, CFG) is None
