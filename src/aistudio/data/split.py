"""Domain balancing and the seeded, stratified train/validation/test split.

Deduplication happens before splitting and near-duplicate clusters are split whole, so a copy can
never straddle two splits; upsampling repeats records inside the training split only, for the same
reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

from aistudio.config import BalanceConfig, SplitConfig
from aistudio.data.records import Record, Rejection
from aistudio.layout import SPLIT_NAMES

SPLITS = SPLIT_NAMES  # defined with their file names in aistudio.layout


def _rng(seed: int, *salt: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across processes.
    return random.Random(":".join((str(seed), *salt)))


def _shuffled(records: Sequence[Record], seed: int, salt: str) -> list[Record]:
    ordered = sorted(records, key=lambda r: r.id)
    _rng(seed, salt).shuffle(ordered)
    return ordered


def group_by_domain(records: Sequence[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.domain, []).append(record)
    return groups


def cap_to_ratios(
    by_domain: Mapping[str, Sequence[Record]], cfg: BalanceConfig, seed: int
) -> tuple[dict[str, list[Record]], list[Rejection]]:
    """Keep the largest per-domain counts that honour target_ratios; the rest are rejected as balance_cap."""
    if cfg.strategy != "cap" or not cfg.target_ratios:
        return {d: list(rs) for d, rs in by_domain.items()}, []
    present = {d: r for d, r in cfg.target_ratios.items() if by_domain.get(d)}
    total = min(len(by_domain[d]) / ratio for d, ratio in present.items())
    kept: dict[str, list[Record]] = {}
    rejected: list[Rejection] = []
    for domain, records in by_domain.items():
        ratio = present.get(domain)
        limit = len(records) if ratio is None else math.floor(total * ratio + 1e-9)
        ordered = _shuffled(records, seed, f"balance:{domain}")
        kept[domain] = ordered[:limit]
        rejected += [
            Rejection("balance_cap", r.source, r.source_line, f"domain {domain} capped at {limit}", r.id)
            for r in ordered[limit:]
        ]
    return kept, rejected


def stratified_split(
    by_domain: Mapping[str, Sequence[Record]],
    cfg: SplitConfig,
    seed: int,
    group_of: Mapping[str, str] | None = None,
) -> dict[str, list[Record]]:
    """Split each domain with the same ratios; every split gets >= 1 record of a domain of >= 3.

    Records with the same group_of value (a near-duplicate cluster) go to one split whole; a group
    that would overfill validation or test goes to train, so no split holds a near copy of another's.
    """
    group_of = group_of or {}
    splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
    for domain in sorted(by_domain):
        groups: dict[str, list[Record]] = {}
        for record in by_domain[domain]:
            groups.setdefault(group_of.get(record.id, record.id), []).append(record)
        order = sorted(groups)
        _rng(seed, f"split:{domain}").shuffle(order)
        n = len(by_domain[domain])
        n_val = round(n * cfg.validation)
        n_test = round(n * cfg.test)
        if n >= 3:
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        counts = {"validation": 0, "test": 0}
        for key in order:
            members = groups[key]
            if counts["validation"] + len(members) <= n_val:
                target = "validation"
            elif counts["test"] + len(members) <= n_test:
                target = "test"
            else:
                target = "train"
            counts[target] = counts.get(target, 0) + len(members)
            splits[target] += members
    return {name: sorted(records, key=lambda r: (r.domain, r.id)) for name, records in splits.items()}


def upsample_to_ratios(train: Sequence[Record], cfg: BalanceConfig, seed: int) -> list[Record]:
    """Repeat minority-domain training records until each domain meets its target share."""
    if cfg.strategy != "upsample" or not cfg.target_ratios:
        return list(train)
    by_domain = group_by_domain(train)
    present = {d: r for d, r in cfg.target_ratios.items() if by_domain.get(d)}
    total = max(len(by_domain[d]) / ratio for d, ratio in present.items())
    out = list(train)
    for domain, ratio in sorted(present.items()):
        records = _shuffled(by_domain[domain], seed, f"upsample:{domain}")
        missing = max(0, math.floor(total * ratio + 1e-9) - len(records))
        out += [
            replace(records[i % len(records)], id=f"{records[i % len(records)].id}~{i // len(records) + 1}")
            for i in range(missing)
        ]
    return sorted(out, key=lambda r: (r.domain, r.id))
