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

from aistudio.data.fingerprint import NgramBatch


@dataclass(frozen=True)
class Overlap:
    record: int  # index into the batch that was checked
    share: float  # of its distinct n-grams found on the other side


def ngram_set(batch: NgramBatch, rows: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct n-grams of the given records (all when rows is None)."""
    if rows is None:
        return np.unique(batch.hashes)
    if rows.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate([batch.of(int(r)) for r in rows]))


def overlap_shares(batch: NgramBatch, rows: np.ndarray, other: np.ndarray) -> np.ndarray:
    """float[len(rows)]: for each listed record, the share of its distinct n-grams found in `other`."""
    if rows.size == 0:
        return np.zeros(0)
    owners = np.concatenate([np.full(batch.offsets[r + 1] - batch.offsets[r], i) for i, r in enumerate(rows)])
    grams = np.concatenate([batch.of(int(r)) for r in rows])
    # Distinct (record, n-gram) pairs, so a phrase repeated inside one record counts once.
    pairs = np.unique(np.stack([owners.astype(np.uint64), grams], axis=1), axis=0)
    found = np.isin(pairs[:, 1], other, assume_unique=False)
    totals = np.bincount(pairs[:, 0].astype(np.intp), minlength=rows.size)
    hits = np.bincount(pairs[:, 0].astype(np.intp), weights=found, minlength=rows.size)
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
