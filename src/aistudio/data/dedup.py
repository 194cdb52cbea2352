"""Global deduplication over fingerprints: exact copies, near-duplicate pairs, clusters.

Works on whole arrays after the per-record work is done, so the answer depends only on the
records and their order, never on how many workers computed the fingerprints. Records are
identified by their position in input order; the earliest record of a group is the one kept.

Near duplicates: two records are candidates when they agree on every row of one LSH band of
their MinHash signatures (grouping by band key is a shuffle, the same in one process or on a Ray
cluster), and a candidate pair counts when its estimated Jaccard similarity of character 5-grams
is at least the threshold. A record is rejected when it nearly duplicates an earlier record that
was kept; its best match (highest similarity, then earliest) is named in the rejection.
Clusters are the connected components of all counted pairs, so records that are similar only
through a rejected copy still share a cluster, and the split keeps a cluster in one split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from aistudio.data.fingerprint import estimated_similarity

# A band key shared by more records than this is a template, not a copy: its members are compared
# with the first BUCKET_CAP of them only, which bounds the work at O(n * cap) per band.
BUCKET_CAP = 64


def first_of_each_key(keys: Sequence[str]) -> dict[int, int]:
    """index → index of the first earlier record with the same key, for every repeat."""
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, key in enumerate(keys):
        if (earlier := first.setdefault(key, index)) != index:
            repeats[index] = earlier
    return repeats


def band_candidates(band_keys: np.ndarray, members: np.ndarray) -> np.ndarray:
    """int64[m, 2] distinct pairs (i < j) of members that share a band key in any band.

    band_keys is uint64[records, bands]; only the rows listed in members take part.
    """
    pairs: list[np.ndarray] = []
    for band in range(band_keys.shape[1]):
        pairs.append(_pairs_in_buckets(band_keys[members, band], members))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def _pairs_in_buckets(keys: np.ndarray, members: np.ndarray) -> np.ndarray:
    order = np.lexsort((members, keys))
    keys, ids = keys[order], members[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, keys.size])
    found = [np.zeros((0, 2), dtype=np.int64)]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        bucket = ids[start : start + size]
        found.append(pairs_within(bucket))
    return np.concatenate(found)


def pairs_within(bucket: np.ndarray) -> np.ndarray:
    """The (i < j) pairs of one bucket of record indices in ascending order, capped at BUCKET_CAP heads."""
    heads = bucket[:BUCKET_CAP]
    i, j = np.triu_indices(bucket.size, k=1)
    keep = i < heads.size
    return np.stack([bucket[i[keep]], bucket[j[keep]]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class NearPair:
    first: int  # earlier record
    second: int
    similarity: float


def confirmed_pairs(candidates: np.ndarray, signatures: np.ndarray, threshold: float) -> list[NearPair]:
    """Candidates whose estimated similarity reaches threshold, in (first, second) order."""
    if candidates.size == 0:
        return []
    agree = (signatures[candidates[:, 0]] == signatures[candidates[:, 1]]).mean(axis=1)
    keep = np.flatnonzero(agree >= threshold)
    return [NearPair(int(candidates[k, 0]), int(candidates[k, 1]), float(agree[k])) for k in keep]


def reject_near_copies(pairs: Iterable[NearPair], eligible: Iterable[int]) -> dict[int, NearPair]:
    """Greedy in input order: record → the pair naming the kept earlier record it nearly duplicates."""
    matches: dict[int, list[NearPair]] = {}
    for pair in pairs:
        matches.setdefault(pair.second, []).append(pair)
    rejected: dict[int, NearPair] = {}
    for index in sorted(set(eligible)):
        alive = [p for p in matches.get(index, ()) if p.first not in rejected]
        if alive:
            rejected[index] = max(alive, key=lambda p: (p.similarity, -p.first))
    return rejected


def clusters(count: int, pairs: Iterable[NearPair]) -> np.ndarray:
    """int64[count]: for every record, the index of the earliest record of its connected component."""
    parent = np.arange(count)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for pair in pairs:
        a, b = root(pair.first), root(pair.second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(count)], dtype=np.int64)


def similarity(signatures: np.ndarray, first: int, second: int) -> float:
    return estimated_similarity(signatures[first], signatures[second])
