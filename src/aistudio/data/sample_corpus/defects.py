"""Planting defects: distinct clean samples, then PII and bait rewritten in place and defective
records added, the same way for every domain."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aistudio.data.sample_corpus.layout import (
    ADDED_DEFECTS,
    MODIFIED_DEFECTS,
    PII_KINDS,
    PII_PER_KIND,
    SAMPLE_SAFETY_TERMS,
)
from aistudio.data.sample_corpus.text import bait_sentence, pii_sentence

# --- defects, shared by the four domains ----------------------------------------------------------

Sample = TypeVar("Sample")


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def distinct(
    rng: random.Random, count: int, make: Callable[[int], Sample], content: Callable[[Sample], str]
) -> list[Sample]:
    """count samples with pairwise different normalised text, so planted duplicates are the only ones."""
    seen: set[str] = set()
    out: list[Sample] = []
    attempt = 0
    while len(out) < count:
        sample = make(attempt)
        attempt += 1
        key = _normalized(content(sample))
        # A generous retry budget; past it a repeat is accepted rather than looping for ever.
        if key in seen and attempt < 5 * count + 100:
            continue
        seen.add(key)
        out.append(sample)
    return out


@dataclass(frozen=True)
class DefectKit(Generic[Sample]):
    """How one domain plants each defect into (or next to) its clean samples."""

    content: Callable[[Sample], str]
    with_pii: Callable[[Sample, str, random.Random], Sample]
    with_bait: Callable[[Sample, random.Random], Sample]
    recased: Callable[[Sample, random.Random], Sample]
    near_copy: Callable[[Sample, random.Random], Sample]
    too_short: Callable[[random.Random, int], Sample]
    repetitive: Callable[[random.Random, int], Sample]
    mojibake: Callable[[random.Random, int], Sample]
    unsafe: Callable[[random.Random, str], Sample]
    takes_pii: Callable[[Sample], bool] = lambda sample: True


def plant_defects(
    clean: list[Sample], kit: DefectKit[Sample], rng: random.Random, multiplier: int
) -> tuple[list[Sample], list[Sample]]:
    """(clean samples with PII and bait rewritten in place, extra defective samples to interleave)."""
    samples = list(clean)
    n_pii, n_bait = MODIFIED_DEFECTS["pii"] * multiplier, MODIFIED_DEFECTS["bait"] * multiplier
    pii_slots = rng.sample([i for i, s in enumerate(samples) if kit.takes_pii(s)], n_pii)
    taken = set(pii_slots)
    bait_slots = rng.sample([i for i in range(len(samples)) if i not in taken], n_bait)
    kinds = [k for k in PII_KINDS for _ in range(PII_PER_KIND * multiplier)]
    for slot, kind in zip(pii_slots, kinds, strict=False):
        samples[slot] = kit.with_pii(samples[slot], kind, rng)
    for slot in bait_slots:
        samples[slot] = kit.with_bait(samples[slot], rng)

    touched = set(pii_slots) | set(bait_slots)
    untouched = [i for i in range(len(samples)) if i not in touched]
    n = {name: count * multiplier for name, count in ADDED_DEFECTS.items()}
    exact_sources = rng.sample(untouched, n["exact_duplicate"])
    # Near copies come from long records: one changed word then moves few of many 5-word shingles.
    longest = sorted(set(untouched) - set(exact_sources), key=lambda i: -len(kit.content(samples[i]).split()))
    near_sources = rng.sample(longest[: 4 * n["near_duplicate"]], n["near_duplicate"])
    categories = sorted(SAMPLE_SAFETY_TERMS)
    extras = (
        [kit.recased(samples[i], rng) for i in exact_sources]
        + [kit.near_copy(samples[i], rng) for i in near_sources]
        + [kit.too_short(rng, j) for j in range(n["too_short"])]
        + [kit.repetitive(rng, j) for j in range(n["repetitive"])]
        + [kit.mojibake(rng, j) for j in range(n["mojibake"])]
        + [kit.unsafe(rng, categories[j % len(categories)]) for j in range(n["unsafe"])]
    )
    return samples, extras


def interleave(rng: random.Random, base: list[Sample], extras: list[Sample]) -> list[Sample]:
    out = list(base)
    for extra in extras:
        out.insert(rng.randint(0, len(out)), extra)
    return out


def prose_pii(
    with_sentence: Callable[[Sample, str], Sample],
) -> Callable[[Sample, str, random.Random], Sample]:
    return lambda sample, kind, rng: with_sentence(sample, pii_sentence(kind, rng))


def prose_bait(with_sentence: Callable[[Sample, str], Sample]) -> Callable[[Sample, random.Random], Sample]:
    return lambda sample, rng: with_sentence(sample, bait_sentence(rng))
