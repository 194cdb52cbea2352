"""Exact and near-duplicate detection.

Exact duplicates compare a hash of the normalised text. Near duplicates use MinHash over word
shingles with a datasketch LSH index for candidate lookup; signatures are computed here with numpy
in one vectorised step per text (datasketch's own update path hashes shingle by shingle), and every
LSH candidate is confirmed by its estimated Jaccard similarity before it counts.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from functools import lru_cache

import numpy as np
from datasketch import MinHash, MinHashLSH

# Punctuation touching a token's edge ("word," "(see" "--"); inner punctuation ("e.g", "3.14",
# "don't") is part of the token.
_EDGE_PUNCTUATION = re.compile(r"(?<!\S)[^\w\s]+|[^\w\s]+(?!\S)")
# The same character class restricted to ASCII, for the str.strip() fast path (half the cost of the
# regex, which pays per match and every token edge is one).
_ASCII_NON_WORD = "".join(c for c in map(chr, range(128)) if not (c.isalnum() or c == "_" or c.isspace()))

# datasketch's 32-bit affine scheme: permutations a*h + b mod 2^32 with odd a. Our signatures use
# its permutation parameters so the MinHash objects we build are exactly what it would expect.
_SCHEME = "affine32"
# Odd 64-bit constants: the shingle combiner's multiplier and the MurmurHash3 fmix64 finaliser.
_SHINGLE_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_FMIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT_33 = np.uint64(33)
_SHIFT_32 = np.uint64(32)


# A record's text is typically normalised twice in a row, for its exact key and for its shingles;
# a tiny memo makes the second call a lookup. Pure function, so caching changes no result.
@lru_cache(maxsize=4)
def normalise(text: str) -> str:
    """NFKC, case-folded, edge punctuation stripped from tokens, whitespace collapsed to one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return " ".join(filter(None, [token.strip(_ASCII_NON_WORD) for token in folded.split()]))
    return " ".join(_EDGE_PUNCTUATION.sub("", folded).split())


def exact_key(text: str) -> str:
    """Stable identity of a text up to case, whitespace, punctuation at word edges and Unicode form."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def _fmix64(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> _SHIFT_33)
    values = values * _FMIX_1
    values = values ^ (values >> _SHIFT_33)
    values = values * _FMIX_2
    return values ^ (values >> _SHIFT_33)


def shingle_hashes(text: str, shingle_size: int) -> np.ndarray:
    """32-bit hashes of the word shingles of the normalised text, stable across processes.

    Words are hashed once with CRC-32 (Python's hash() is salted per process), and each shingle's
    hash is a polynomial of its words' hashes computed for all shingles at once. A text shorter than
    one shingle is a single shingle of all its words.
    """
    words = normalise(text).encode("utf-8").split()
    word_hashes = np.array(list(map(zlib.crc32, words)) or [0], dtype=np.uint64)
    window = min(shingle_size, word_hashes.size)
    count = word_hashes.size - window + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(window):
        combined = combined * _SHINGLE_MULTIPLIER + word_hashes[offset : offset + count]
    mixed = _fmix64(combined)
    return (mixed ^ (mixed >> _SHIFT_32)).astype(np.uint32)


class NearDuplicateIndex:
    """Remembers texts and answers, for each new one, which earlier text it nearly duplicates.

    Deterministic: the same texts added in the same order give the same answers in any process.
    """

    def __init__(self, threshold: float, num_perm: int, shingle_size: int, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1] (got {threshold})")
        if shingle_size < 1:
            raise ValueError(f"shingle_size must be >= 1 (got {shingle_size})")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        self._permutations = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations
        try:
            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        except ValueError as exc:  # datasketch: its optimal banding left fewer than 2 bands
            raise ValueError(
                f"near-dedup threshold {threshold} with num_perm {num_perm} is not indexable ({exc}); "
                "raise num_perm or lower the threshold"
            ) from exc
        self._signatures: dict[str, np.ndarray] = {}
        self._rank: dict[str, int] = {}  # insertion order, to break similarity ties the same way

    def __len__(self) -> int:
        return len(self._signatures)

    def signature(self, text: str) -> np.ndarray:
        """MinHash values of text: per permutation, the minimum of a*h + b mod 2^32 over shingles."""
        hashes = shingle_hashes(text, self.shingle_size)
        a, b = self._permutations
        # uint32 arithmetic wraps, which is the mod 2^32 of the affine permutation.
        return (hashes[:, None] * a[None, :] + b[None, :]).min(axis=0)

    def similarity(self, signature: np.ndarray, key: str) -> float:
        """Estimated Jaccard similarity between a signature and an indexed text."""
        return float(np.count_nonzero(self._signatures[key] == signature)) / self.num_perm

    def check_and_add(self, key: str, text: str) -> str | None:
        """The key of an earlier near-duplicate of text (text is then not added), or None after adding it."""
        signature = self.signature(text)
        minhash = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashvalues=signature,
            permutations=self._permutations,
            scheme=_SCHEME,
        )
        best: tuple[float, int, str] | None = None
        for candidate in self._lsh.query(minhash):
            # LSH candidates are only likely matches; the query also returns them in set order,
            # which differs between processes, hence the explicit (similarity, earliest) choice.
            score = self.similarity(signature, candidate)
            if score >= self.threshold:
                rank = (score, -self._rank[candidate], candidate)
                if best is None or rank > best:
                    best = rank
        if best is not None:
            return best[2]
        if key in self._signatures:
            raise ValueError(f"key '{key}' is already in the near-duplicate index; keys must be unique")
        self._lsh.insert(key, minhash, check_duplication=False)
        self._signatures[key] = signature
        self._rank[key] = len(self._rank)
        return None
