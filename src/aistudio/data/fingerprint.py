"""Per-record fingerprints for deduplication and decontamination: pure functions, any process.

One content key serves text-format and structured records alike: the record's text fields joined,
NFKC-normalised, case-folded, with prompt-role labels ("### Instruction:", "Answer:"), placeholder
tokens ("[EMAIL]", "<name>", "{{user}}") and punctuation reduced to nothing or one symbol, and
whitespace collapsed. So a record held once as a JSON object and once as a plain-text block with
labels has the same key, as do copies that differ in case, spacing, punctuation or which PII
placeholder replaced a value. Numbers are kept whole and weigh double (see _weight_numbers).

Near-duplicate similarity is the Jaccard similarity of the keys' character 5-gram sets, estimated
with MinHash. Character n-grams suit short instruction records: one changed word in a 15-word
record changes about a tenth of the 5-grams (word 5-gram shingles would change a third), and
swapping two sentences changes only the n-grams at their joins. Every hash is seeded and
process-independent (no Python hash()), so signatures are identical in every worker and on every
machine, which is what lets the global dedup run as a shuffle by LSH band.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np

# Role labels a plain-text instruction record carries where a structured one has field names.
_ROLE_LABEL = re.compile(
    r"(?im)^\s*(?:#+\s*)?(?:instruction|input|output|response|answer|question|context|prompt|completion|"
    r"user|assistant|system|text)\s*:"
)
# Placeholders of scrubbed or templated values: [EMAIL] [PHONE_NUMBER] <name> <PERSON> {{user}}.
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]|<[A-Za-z][A-Za-z0-9_]*>|\{\{\s*\w+\s*\}\}")
_PLACEHOLDER_TOKEN = " \u2400 "  # one symbol no text normally contains
_DIGIT = re.compile(r"\d")
# Captured, so re.split hands back the numbers at the odd positions.
_NUMBER = re.compile(r"(\d[\d.,]*\d|\d)")
_NOT_WORD = re.compile(r"[^\w\u2400]+")
_ASCII_PUNCTUATION_TO_SPACE = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")}
)

CHAR_NGRAM = 5
_MAX_HASH = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)
_FMIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT_33 = np.uint64(33)
_SHIFT_32 = np.uint64(32)


def _weight_numbers(text: str) -> str:
    # A number carries a fact: records that differ only in their numbers (one template, other
    # values) are different records, so a number is one token ("1,084.5" -> "1084p5") said twice.
    # re.split and a list comprehension, not re.sub with a callback: no match object per number.
    parts = _NUMBER.split(text)
    tokens = [n.replace(",", "").replace(".", "p") if "," in n or "." in n else n for n in parts[1::2]]
    parts[1::2] = [f" {token} {token} " for token in tokens]
    return "".join(parts)


def content_key(text: str) -> str:
    """The normalised content a duplicate check compares: see the module docstring."""
    text = unicodedata.normalize("NFKC", text)
    # Each substitution only where its trigger character occurs: the regex engine pays per character.
    if ":" in text:
        text = _ROLE_LABEL.sub(" ", text)
    if "[" in text or "<" in text or "{" in text:
        text = _PLACEHOLDER.sub(_PLACEHOLDER_TOKEN, text)
    text = text.casefold()
    if _DIGIT.search(text):
        text = _weight_numbers(text)
    if text.isascii():
        return " ".join(text.translate(_ASCII_PUNCTUATION_TO_SPACE).split())
    return " ".join(_NOT_WORD.sub(" ", text).split())


def exact_key(key: str) -> str:
    """Stable identity of a content key (sha256 hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _fmix64(values: np.ndarray) -> np.ndarray:
    # In place on one copy with one scratch array: a temporary per step cost as much as the steps.
    mixed = values ^ (values >> _SHIFT_33)
    scratch = np.empty_like(mixed)
    mixed *= _FMIX_1
    mixed ^= np.right_shift(mixed, _SHIFT_33, out=scratch)
    mixed *= _FMIX_2
    mixed ^= np.right_shift(mixed, _SHIFT_33, out=scratch)
    return mixed


@dataclass(frozen=True)
class NgramBatch:
    """The n-gram hashes of many keys, flat: record i owns hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len(keys) + 1

    def owner(self) -> np.ndarray:
        """The record index of every hash."""
        return np.repeat(np.arange(self.offsets.size - 1), np.diff(self.offsets))

    def of(self, index: int) -> np.ndarray:
        return self.hashes[self.offsets[index] : self.offsets[index + 1]]


def _windows(lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start of every n-window in the flat sequence, offsets per record, window length) for
    records of the given lengths; a record shorter than n is one window of all of it."""
    counts = np.maximum(lengths - n + 1, 1)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    record_starts = np.cumsum(lengths) - lengths
    local = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
    return np.repeat(record_starts, counts) + local, offsets, np.repeat(np.minimum(lengths, n), counts)


def char_ngrams(keys: list[str], n: int = CHAR_NGRAM) -> NgramBatch:
    """64-bit hashes of each key's character n-grams (1 <= n <= 8, over UTF-8 bytes).

    All keys are hashed in one pass: each n-gram's bytes are read as one little-endian integer
    through an overlapping strided view of the concatenated keys, so the cost is a few vector
    operations per batch rather than per record.
    """
    if not 1 <= n <= 8:
        raise ValueError(f"character n-gram size must be in 1..8 (got {n})")
    encoded = [key.encode("utf-8") or b"\0" for key in keys]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    starts, offsets, width = _windows(lengths, n)
    buffer = b"".join(encoded) + b"\0" * 8
    windows = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))[starts]
    if lengths.size and lengths.min() >= n:  # the usual batch: every window is n bytes wide
        full = np.uint64(2**64 - 1) if n == 8 else np.uint64((1 << (n * 8)) - 1)
        windows &= full
        windows += np.uint64(n)
        return NgramBatch(_fmix64(windows), offsets)
    # A short window keeps only its own bytes, and is told apart from a full one by its length.
    masks = np.where(
        width >= 8, np.uint64(2**64 - 1), (np.uint64(1) << (width * 8).astype(np.uint64)) - np.uint64(1)
    )
    return NgramBatch(_fmix64((windows & masks) + width.astype(np.uint64)), offsets)


_SPAN_BASE = np.uint64(0x100000001B3)  # odd, so invertible mod 2^64
_SPAN_BASE_INVERSE = np.uint64(pow(0x100000001B3, -1, 1 << 64))


def word_ngrams(keys: list[str], n: int) -> NgramBatch:
    """Distinct 64-bit hashes of each key's word n-grams; a key shorter than n words is one n-gram.

    Keys are content keys (words separated by single spaces). An n-gram's hash is a polynomial hash
    of the bytes it spans, read off prefix sums over the whole batch (sum of b_t * B^t, scaled back
    by B^-start, exact mod 2^64), so no word is hashed one by one in Python.
    """
    keys = [key or "_" for key in keys]  # an empty key is one n-gram of its own
    data = np.frombuffer(("\n".join(keys) + "\n").encode("utf-8"), dtype=np.uint8)
    separator = (data == 0x20) | (data == 0x0A)
    powers = np.cumprod(np.full(data.size, _SPAN_BASE, dtype=np.uint64)) * _SPAN_BASE_INVERSE  # B^t
    inverse = np.cumprod(np.full(data.size, _SPAN_BASE_INVERSE, dtype=np.uint64)) * _SPAN_BASE  # B^-t
    prefix = np.zeros(data.size + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * powers, out=prefix[1:])
    word_start = np.flatnonzero(~separator & np.r_[True, separator[:-1]])
    word_end = np.flatnonzero(~separator & np.r_[separator[1:], True]) + 1
    # Records are separated by the buffer's newlines: count each record's words.
    record_of_word = np.searchsorted(np.flatnonzero(data == 0x0A), word_start)
    lengths = np.bincount(record_of_word, minlength=len(keys)).astype(np.int64)
    starts, offsets, width = _windows(lengths, n)
    begin, end = word_start[starts], word_end[starts + width - 1]
    spans = (prefix[end] - prefix[begin]) * inverse[begin]
    return distinct_per_record(NgramBatch(_fmix64(spans), offsets))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    # Sort-based: numpy's hash-based unique is pathologically slow on millions of uint64 values.
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered


def distinct_per_record(batch: NgramBatch) -> NgramBatch:
    """The same batch with each record's repeated n-grams dropped (and its n-grams sorted)."""
    owner = batch.owner()
    if owner.size and owner[-1] < 1 << 16:
        # The same order as lexsort((hashes, owner)), in a fraction of its time: sort the hashes,
        # then a stable sort by owner, which numpy does as a radix sort for 16-bit keys. Ties are
        # equal hashes, so which of them comes first changes nothing.
        by_hash = np.argsort(batch.hashes)
        order = by_hash[np.argsort(owner[by_hash].astype(np.uint16), kind="stable")]
    else:
        order = np.lexsort((batch.hashes, owner))
    hashes, owner = batch.hashes[order], owner[order]
    keep = (
        np.r_[True, (hashes[1:] != hashes[:-1]) | (owner[1:] != owner[:-1])]
        if hashes.size
        else np.zeros(0, bool)
    )
    counts = np.bincount(owner[keep], minlength=batch.offsets.size - 1)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return NgramBatch(hashes[keep], offsets)


_MAX_PROBES = 48


@cache
def _probe_table(num_perm: int, seed: int) -> np.ndarray:
    """For each bin, the fixed sequence of bins an empty bin borrows from (same for every set)."""
    return np.random.RandomState(seed).randint(0, num_perm, size=(_MAX_PROBES, num_perm))


def minhash_signatures(batch: NgramBatch, num_perm: int, seed: int = 1) -> np.ndarray:
    """One-permutation MinHash with optimal densification (Shrivastava, 2017): uint32[records, num_perm].

    Each n-gram hash falls into one of num_perm bins by its high half and competes for the bin's
    minimum with its low half: one pass over the n-grams instead of num_perm passes, which is what
    makes character n-grams affordable. A bin no n-gram fell into (short texts) takes the value of
    the first non-empty bin in its fixed probe sequence; two sets then agree in a bin with
    probability equal to their Jaccard similarity, as with num_perm independent permutations.
    """
    if not 1 <= num_perm <= 1024:
        raise ValueError(f"num_perm must be in 1..1024 (got {num_perm})")
    records = batch.offsets.size - 1
    mixed = _fmix64(batch.hashes ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64)))
    high = mixed >> _SHIFT_32
    # A mask where num_perm is a power of two: the same bins, without a 64-bit division per n-gram.
    high = high & np.uint64(num_perm - 1) if num_perm & (num_perm - 1) == 0 else high % np.uint64(num_perm)
    cell = batch.owner() * num_perm + high.astype(np.intp)
    signatures = np.full(records * num_perm, _EMPTY, dtype=np.uint32)
    # An unbuffered minimum per (record, bin) cell: one pass over every n-gram of the batch.
    np.minimum.at(signatures, cell, (mixed & _MAX_HASH).astype(np.uint32))
    signatures = signatures.reshape(records, num_perm)
    empty_rows, empty_bins = np.nonzero(signatures == _EMPTY)
    if empty_rows.size:
        donors = signatures[empty_rows, _probe_table(num_perm, seed)[:, empty_bins]]  # (probes, empty cells)
        found = donors != _EMPTY
        borrowed = donors[found.argmax(axis=0), np.arange(empty_rows.size)]
        for lost in np.flatnonzero(~found.any(axis=0)):  # astronomically rare: next non-empty bin
            full = np.flatnonzero(signatures[empty_rows[lost]] != _EMPTY)
            borrowed[lost] = signatures[
                empty_rows[lost], full[np.searchsorted(full, empty_bins[lost]) % full.size]
            ]
        signatures[empty_rows, empty_bins] = borrowed
    return signatures


def estimated_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity of the two sets the signatures came from."""
    return float(np.count_nonzero(first == second)) / first.size


@dataclass(frozen=True)
class Banding:
    """LSH banding: a pair that agrees on every row of any one band becomes a candidate."""

    bands: int
    rows: int

    def keys(self, signatures: np.ndarray) -> np.ndarray:
        """uint64[records, bands]: one key per band; the band's index is mixed in, so bands never collide."""
        table = signatures[:, : self.bands * self.rows].reshape(-1, self.bands, self.rows).astype(np.uint64)
        multipliers = _fmix64(np.arange(1, self.rows + 1, dtype=np.uint64)) | np.uint64(1)
        # uint64 products and sums wrap: a fixed polynomial hash of the band's rows.
        combined = (table * multipliers).sum(axis=2, dtype=np.uint64)
        return _fmix64(combined ^ np.arange(self.bands, dtype=np.uint64) * _FMIX_2)


@cache
def banding_for(threshold: float, num_perm: int) -> Banding:
    """Bands and rows whose S-curve best separates pairs above threshold from those below.

    The candidate probability of a pair of similarity s is 1 - (1 - s^r)^b. Missing a true pair
    costs eight false candidates: candidates are confirmed by their estimated similarity anyway,
    so a false one costs a comparison, a missed one a leak.
    """
    grid = np.linspace(0.0, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        candidate = 1 - (1 - grid**rows) ** bands
        false_positive = np.trapezoid(np.where(grid < threshold, candidate, 0.0), grid)
        false_negative = np.trapezoid(np.where(grid >= threshold, 1 - candidate, 0.0), grid)
        cost = float(false_positive + 8 * false_negative)
        if best is None or cost < best[0]:
            best = (cost, bands, rows)
    assert best is not None
    return Banding(best[1], best[2])
