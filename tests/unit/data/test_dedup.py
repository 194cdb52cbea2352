"""Global dedup: first of each exact key kept, near copies rejected against kept records only,
clusters joined through rejected copies, and the planted benchmark's precision and recall."""

from __future__ import annotations

import numpy as np

from aistudio.data import dedup
from aistudio.data.fingerprint import banding_for, char_ngrams, content_key, minhash_signatures
from aistudio.data.pii import PiiScrubber
from aistudio.data.sample_corpus.near_copies import EDIT_KINDS, near_copy_benchmark


def _pairs(texts: list[str], threshold: float = 0.75) -> tuple[list[dedup.NearPair], np.ndarray]:
    signatures = minhash_signatures(char_ngrams([content_key(t) for t in texts]), 128)
    candidates = dedup.band_candidates(banding_for(threshold, 128).keys(signatures), np.arange(len(texts)))
    return dedup.confirmed_pairs(candidates, signatures, threshold), signatures


def test_first_of_each_key_points_repeats_at_the_earliest() -> None:
    assert dedup.first_of_each_key(["a", "b", "a", "c", "b", "a"]) == {2: 0, 4: 1, 5: 0}


def test_a_copy_of_a_rejected_copy_is_judged_against_kept_records_only() -> None:
    pairs = [dedup.NearPair(0, 1, 0.9), dedup.NearPair(1, 2, 0.85)]
    # 1 copies 0 and goes; 2 matched only 1, which is gone, so 2 is kept.
    assert set(dedup.reject_near_copies(pairs, range(3))) == {1}
    assert dedup.clusters(4, pairs).tolist() == [0, 0, 0, 3]


def test_the_best_match_is_named_highest_similarity_then_earliest() -> None:
    pairs = [dedup.NearPair(0, 3, 0.85), dedup.NearPair(1, 3, 0.95), dedup.NearPair(2, 3, 0.95)]
    assert dedup.reject_near_copies(pairs, range(4))[3].first == 1


def test_edited_copies_pair_up_and_unrelated_texts_do_not() -> None:
    base = "Write a Python function that merges two sorted lists into one sorted list without sorting again."
    texts = [base, base.replace("merges", "joins"), "Summarise the council's vote on the new library."]
    pairs, _ = _pairs(texts)
    assert [(p.first, p.second) for p in pairs] == [(0, 1)]


def test_a_huge_bucket_is_compared_with_its_first_members_only() -> None:
    bucket = np.arange(dedup.BUCKET_CAP + 10)
    pairs = dedup.pairs_within(bucket)
    assert (pairs[:, 0] < dedup.BUCKET_CAP).all() and (pairs[:, 0] < pairs[:, 1]).all()


def test_planted_near_copies_are_found_with_recall_095_at_precision_098() -> None:
    benchmark = near_copy_benchmark(seed=13)
    scrubber = PiiScrubber(["email", "phone"])
    texts = [scrubber.scrub(r.content())[0] for r in benchmark.records]
    pairs, _ = _pairs(texts)
    ids = [r.id for r in benchmark.records]
    found = {frozenset((ids[p.first], ids[p.second])) for p in pairs}
    planted = {frozenset(k) for k in benchmark.planted}
    recall, precision = len(found & planted) / len(planted), len(found & planted) / len(found)
    assert recall >= 0.95 and precision >= 0.98, (recall, precision)
    for kind in EDIT_KINDS:  # no edit kind is missed wholesale
        of_kind = {frozenset(k) for k, v in benchmark.planted.items() if v == kind}
        assert len(found & of_kind) >= 0.9 * len(of_kind), kind
