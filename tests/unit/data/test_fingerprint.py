"""Content keys and MinHash fingerprints: one key for text and structured forms, estimates that
track Jaccard similarity, and the same bytes in every process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aistudio.data.fingerprint import (
    NgramBatch,
    banding_for,
    char_ngrams,
    content_key,
    distinct_per_record,
    estimated_similarity,
    exact_key,
    minhash_signatures,
    word_ngrams,
)

PARAGRAPH = (
    "The river rose slowly through the night, and by morning the lower fields were under water. "
    "Farmers moved their cattle to the ridge while volunteers filled sandbags outside the school."
)


def _similarity(a: str, b: str, num_perm: int = 128) -> float:
    signatures = minhash_signatures(char_ngrams([content_key(a), content_key(b)]), num_perm)
    return estimated_similarity(signatures[0], signatures[1])


def test_content_key_folds_case_unicode_whitespace_and_all_punctuation() -> None:
    assert content_key("  Hello,\tWORLD!!  (see e.g. page) -- ﬁne  ") == "hello world see e g page fine"
    assert content_key('"Hello", world!') == content_key("«Hello», world…") == "hello world"


def test_text_with_role_labels_and_the_structured_record_share_one_key() -> None:
    structured = "\n".join(["Summarise the report.", "Sales rose by a tenth.", "Sales grew 10%."])
    as_text = "### Instruction:\nSummarise the report.\n\n### Input:\nSales rose by a tenth.\n\n"
    as_text += "Response: Sales grew 10%."
    assert content_key(as_text) == content_key(structured)


def test_placeholders_of_any_kind_are_one_token() -> None:
    assert (
        content_key("Write to [EMAIL] now")
        == content_key("write to <email> now")
        == content_key("Write to {{user}} now")
    )
    assert content_key("Write to [EMAIL] now") != content_key("Write to now")


def test_numbers_stay_whole_and_count_twice() -> None:
    assert content_key("Sales were 1,084.5 units") == "sales were 1084p5 1084p5 units"


def test_exact_key_is_sha256_hex() -> None:
    assert len(exact_key("x")) == 64 and exact_key("x") != exact_key("y")


def test_one_changed_word_in_a_sixteen_word_record_stays_above_the_default_threshold() -> None:
    original = "Write a Python function that returns the median of a list of numbers without sorting it twice"
    edited = original.replace("returns", "computes")
    assert _similarity(original, edited) >= 0.75
    assert _similarity(original, "Explain how tides depend on the moon and the sun in plain words") < 0.3


def test_estimate_tracks_the_jaccard_similarity_of_ngram_sets() -> None:
    a = " ".join(f"w{i:03d}" for i in range(200))
    b = " ".join(f"w{i:03d}" for i in range(100, 300))
    grams = char_ngrams([a, b])
    first, second = set(grams.of(0).tolist()), set(grams.of(1).tolist())
    truth = len(first & second) / len(first | second)
    assert abs(_similarity(a, b, num_perm=512) - truth) < 0.06


def test_short_texts_get_full_signatures_by_densification() -> None:
    signatures = minhash_signatures(char_ngrams(["ab", "hello there", ""]), 128)
    assert (signatures != np.uint32(0xFFFFFFFF)).all()
    assert estimated_similarity(signatures[0], signatures[1]) < 0.5


def test_a_batch_gives_each_record_the_signature_it_gets_alone() -> None:
    keys = [content_key(t) for t in (PARAGRAPH, "short one", PARAGRAPH[::-1])]
    together = minhash_signatures(char_ngrams(keys), 64)
    for i, key in enumerate(keys):
        assert (minhash_signatures(char_ngrams([key]), 64)[0] == together[i]).all()


def test_word_ngrams_treat_a_short_text_as_one_ngram() -> None:
    batch = word_ngrams(["one two three", " ".join(f"w{i}" for i in range(20))], 13)
    assert np.diff(batch.offsets).tolist() == [1, 8]


def test_character_ngram_size_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="1..8"):
        char_ngrams(["x"], n=9)


def test_banding_catches_pairs_above_the_threshold_more_often_than_below() -> None:
    banding = banding_for(0.75, 128)
    assert banding.bands * banding.rows <= 128

    def candidate_probability(s: float) -> float:
        return 1 - (1 - s**banding.rows) ** banding.bands

    assert candidate_probability(0.85) > 0.9 and candidate_probability(0.5) < 0.1


def test_signatures_are_identical_in_a_fresh_process_with_another_hash_seed() -> None:
    # Python's hash() is salted per process; fingerprints must not depend on it.
    code = textwrap.dedent(
        """
        import sys
        from aistudio.data.fingerprint import banding_for, char_ngrams, content_key, minhash_signatures
        sig = minhash_signatures(char_ngrams([content_key(sys.stdin.read())]), 128)
        sys.stdout.write(sig.tobytes().hex() + banding_for(0.8, 128).keys(sig).tobytes().hex())
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
    sig = minhash_signatures(char_ngrams([content_key(PARAGRAPH)]), 128)
    assert runs[0] == runs[1] == sig.tobytes().hex() + banding_for(0.8, 128).keys(sig).tobytes().hex()


def test_character_ngrams_of_a_batch_of_long_keys_match_each_key_hashed_beside_a_short_one() -> None:
    # A batch whose keys all span n bytes takes a shortcut; a short key in the batch takes the general path.
    keys = [content_key(PARAGRAPH), "hello there general kenobi", "ab"]
    mixed = char_ngrams(keys)
    for i, key in enumerate(keys[:2]):
        alone = char_ngrams([key])
        assert (alone.hashes == mixed.of(i)).all()


def test_signature_bins_are_the_same_for_a_power_of_two_and_any_other_num_perm() -> None:
    # num_perm = 2^k bins by a mask, others by a modulo: both must follow the documented rule.
    batch = char_ngrams([content_key(PARAGRAPH), "short one"])
    for num_perm in (64, 100):
        signatures = minhash_signatures(batch, num_perm)
        assert signatures.shape == (2, num_perm)
        assert (signatures != np.uint32(0xFFFFFFFF)).all()
    assert _similarity(PARAGRAPH, PARAGRAPH, 100) == 1.0


def test_distinct_ngrams_are_sorted_per_record_for_small_and_very_large_batches() -> None:
    # Batches of up to 65,536 records sort by a radix pass on the owner, larger ones by lexsort.
    rng = np.random.default_rng(3)
    for records in (3, 70_000):
        lengths = rng.integers(0, 4, size=records)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        hashes = rng.integers(0, 5, size=int(offsets[-1]), dtype=np.uint64)
        batch = distinct_per_record(NgramBatch(hashes, offsets))
        for i in range(records):
            expected = np.unique(hashes[offsets[i] : offsets[i + 1]])
            assert batch.of(i).tolist() == expected.tolist()
