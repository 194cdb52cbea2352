"""Exact and near-duplicate detection: normalisation-insensitive keys, edited copies caught,
unrelated texts kept, and the same answers in every run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aistudio.data.dedup import NearDuplicateIndex, exact_key, normalise, shingle_hashes

PARAGRAPH = (
    "The river rose slowly through the night, and by morning the lower fields were under water. "
    "Farmers moved their cattle to the ridge while volunteers filled sandbags outside the school. "
    "The mayor said the bridge would stay closed until engineers had inspected the supports, which "
    "had been damaged in last spring's flood. Forecasters expect the water to recede by Friday, but "
    "warned that more rain in the hills could bring a second crest early next week. Residents were "
    "asked to boil drinking water and to report any damage to the council office on Market Street, "
    "where staff will stay open late every evening until the emergency is over."
)
OTHER = (
    "Compilers translate source code into machine instructions in several passes. The parser builds a "
    "syntax tree, the type checker annotates it, and later passes lower it into an intermediate form "
    "that optimisers can rewrite. Register allocation and instruction selection happen near the end, "
    "where the details of the target processor finally matter, and a good allocator can make a large "
    "difference to the speed of tight loops in numerical code."
)


def new_index(**overrides: float) -> NearDuplicateIndex:
    params = {"threshold": 0.8, "num_perm": 128, "shingle_size": 5, "seed": 1} | overrides
    return NearDuplicateIndex(**params)  # type: ignore[arg-type]


def test_normalise_folds_case_unicode_form_whitespace_and_edge_punctuation() -> None:
    assert normalise("  Hello,\tWORLD!!  (see e.g. 3.14) -- ﬁne  ") == "hello world see e.g 3.14 fine"


def test_normalise_treats_ascii_and_unicode_punctuation_alike() -> None:
    assert normalise('"Hello", world!') == normalise("«Hello», world…") == "hello world"


def test_exact_key_ignores_whitespace_case_and_edge_punctuation() -> None:
    assert exact_key("Hello   world.\n") == exact_key("hello WORLD")
    assert exact_key("ｈｅｌｌｏ world") == exact_key("hello world")  # NFKC folds full-width forms
    assert exact_key("hello world") != exact_key("hello word")


def test_exact_key_is_sha256_hex() -> None:
    key = exact_key("x")
    assert len(key) == 64 and int(key, 16) >= 0


def test_identical_text_with_changed_whitespace_and_case_is_a_duplicate() -> None:
    index = new_index()
    assert index.check_and_add("a", PARAGRAPH) is None
    assert index.check_and_add("b", "  " + PARAGRAPH.upper().replace(" ", "\n  ")) == "a"


def test_lightly_edited_paragraph_is_a_near_duplicate() -> None:
    edited = PARAGRAPH.replace("slowly", "steadily").replace("Friday", "Saturday")
    index = new_index()
    assert index.check_and_add("original", PARAGRAPH) is None
    assert index.check_and_add("edited", edited) == "original"


def test_unrelated_texts_are_not_flagged() -> None:
    index = new_index()
    assert index.check_and_add("flood", PARAGRAPH) is None
    assert index.check_and_add("compilers", OTHER) is None
    assert len(index) == 2


def test_heavily_rewritten_text_is_not_a_near_duplicate() -> None:
    sentences = PARAGRAPH.split(". ")
    half = ". ".join(sentences[: len(sentences) // 2]) + ". " + OTHER
    index = new_index()
    index.check_and_add("flood", PARAGRAPH)
    assert index.check_and_add("mixed", half) is None


def test_duplicate_is_not_added_so_its_key_is_never_returned() -> None:
    index = new_index()
    index.check_and_add("a", PARAGRAPH)
    assert index.check_and_add("b", PARAGRAPH) == "a"
    assert index.check_and_add("c", PARAGRAPH) == "a"
    assert len(index) == 1


def test_texts_shorter_than_a_shingle_are_one_shingle() -> None:
    assert shingle_hashes("just three words", shingle_size=5).shape == (1,)
    assert shingle_hashes("", shingle_size=5).shape == (1,)
    index = new_index()
    assert index.check_and_add("a", "Just three words") is None
    assert index.check_and_add("b", "just three words!") == "a"
    assert index.check_and_add("c", "just four words") is None


def test_reusing_a_key_for_a_new_text_is_an_error() -> None:
    index = new_index()
    index.check_and_add("a", PARAGRAPH)
    with pytest.raises(ValueError, match="already in the near-duplicate index"):
        index.check_and_add("a", OTHER)


def test_invalid_threshold_is_an_error() -> None:
    with pytest.raises(ValueError, match="threshold"):
        new_index(threshold=0.0)


def test_threshold_too_high_for_num_perm_names_the_fix() -> None:
    with pytest.raises(ValueError, match="raise num_perm or lower the threshold"):
        new_index(threshold=0.99, num_perm=16)


def _decisions(texts: list[str]) -> list[str | None]:
    index = new_index(num_perm=64)
    return [index.check_and_add(f"k{i}", t) for i, t in enumerate(texts)]


def _corpus() -> list[str]:
    words = PARAGRAPH.split()
    texts = []
    for i in range(40):
        copy = list(words)
        copy[i % len(words)] = f"edit{i}"  # every text is a one-word edit of the paragraph
        texts.append(" ".join(copy) if i % 3 else OTHER + f" variant {i}")
    return texts


def test_two_fresh_indexes_make_identical_decisions() -> None:
    texts = _corpus()
    first, second = _decisions(texts), _decisions(texts)
    assert first == second
    assert any(d is not None for d in first)


def test_signatures_are_identical_in_a_fresh_process_with_another_hash_seed() -> None:
    # Python's hash() is salted per process; signatures must not depend on it.
    code = textwrap.dedent(
        """
        import sys
        from aistudio.data.dedup import NearDuplicateIndex
        index = NearDuplicateIndex(threshold=0.8, num_perm=64, shingle_size=5)
        sys.stdout.write(index.signature(sys.stdin.read()).tobytes().hex())
        """
    )
    runs = []
    for hash_seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=PARAGRAPH,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        runs.append(result.stdout)
    here = new_index(num_perm=64).signature(PARAGRAPH).tobytes().hex()
    assert runs[0] == runs[1] == here


def test_signature_estimates_jaccard_of_shingle_sets() -> None:
    index = new_index(num_perm=256)
    a = " ".join(f"w{i}" for i in range(200))
    b = " ".join(f"w{i}" for i in range(100, 300))
    # 5-shingles: 196 each, 96 shared -> Jaccard 96 / 296 = 0.32
    estimate = float(np.mean(index.signature(a) == index.signature(b)))
    assert abs(estimate - 96 / 296) < 0.1
