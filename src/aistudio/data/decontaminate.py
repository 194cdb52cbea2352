"""Decontamination: word n-gram overlap between what a model is evaluated on and what it trains on.

GPT-3 flagged a benchmark example when it shared a 13-gram with the training data. Here a
record's overlap is the share of its distinct word n-grams (of the normalised content key) that
occur anywhere on the other side; a record shorter than n words is one n-gram of all its words.
Shares are computed for a whole batch at once: the other side's n-grams form one sorted array and
every record's n-grams are looked up in it together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aistudio.data.fingerprint import NgramBatch, sorted_unique


@dataclass(frozen=True)
class Overlap:
    record: int  # index into the batch that was checked
    share: float  # of its distinct n-grams found on the other side


def ngram_set(batch: NgramBatch, rows: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct n-grams of the given records (all when rows is None)."""
    if rows is None:
        return sorted_unique(batch.hashes)
    return sorted_unique(_gather(batch, rows)[1])


def _gather(batch: NgramBatch, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in rows, n-gram) of every n-gram of the listed records, in one vector step."""
    starts, ends = batch.offsets[rows], batch.offsets[rows + 1]
    lengths = ends - starts
    owner = np.repeat(np.arange(rows.size), lengths)
    index = (
        np.arange(lengths.sum())
        - np.repeat(np.cumsum(lengths) - lengths, lengths)
        + np.repeat(starts, lengths)
    )
    return owner, batch.hashes[index]


def overlap_shares(batch: NgramBatch, rows: np.ndarray, other: np.ndarray) -> np.ndarray:
    """float[len(rows)]: for each listed record, the share of its distinct n-grams found in `other`.

    A batch's records hold distinct n-grams already (fingerprint.word_ngrams), so a phrase repeated
    inside one record counts once; `other` must be sorted and distinct (ngram_set).
    """
    if rows.size == 0:
        return np.zeros(0)
    owner, grams = _gather(batch, rows)
    if other.size:
        at = np.minimum(np.searchsorted(other, grams), other.size - 1)
        found = other[at] == grams
    else:
        found = np.zeros(grams.size, dtype=bool)
    totals = np.bincount(owner, minlength=rows.size)
    hits = np.bincount(owner, weights=found, minlength=rows.size)
    return hits / np.maximum(totals, 1)


def contaminated(batch: NgramBatch, rows: np.ndarray, other: np.ndarray, threshold: float) -> list[Overlap]:
    """The listed records whose overlap share with `other` reaches threshold, worst first."""
    shares = overlap_shares(batch, rows, other)
    over = [Overlap(int(rows[i]), float(shares[i])) for i in np.flatnonzero(shares >= threshold)]
    return sorted(over, key=lambda o: (-o.share, o.record))


def worst(batch: NgramBatch, rows: np.ndarray, other: np.ndarray, limit: int) -> list[Overlap]:
    """The `limit` listed records with the highest overlap share (any share above zero)."""
    shares = overlap_shares(batch, rows, other)
    order = sorted((i for i in np.flatnonzero(shares > 0)), key=lambda i: (-shares[i], int(rows[i])))
    return [Overlap(int(rows[i]), float(shares[i])) for i in order[:limit]]
