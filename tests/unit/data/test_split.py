from __future__ import annotations

from collections import Counter

from aistudio.config import BalanceConfig, SplitConfig
from aistudio.data.records import Record
from aistudio.data.split import cap_to_ratios, group_by_domain, stratified_split, upsample_to_ratios


def _records(counts: dict[str, int]) -> list[Record]:
    return [
        Record(id=f"{d}{i:04d}", domain=d, source="s", source_line=i, text=f"t{i}")
        for d, n in counts.items()
        for i in range(n)
    ]


def test_split_is_stratified_by_domain_and_disjoint() -> None:
    records = _records({"code": 100, "creative": 40, "analysis": 10})
    splits = stratified_split(group_by_domain(records), SplitConfig(validation=0.1, test=0.2), seed=1)
    per = {name: Counter(r.domain for r in rs) for name, rs in splits.items()}
    assert per["validation"] == {"code": 10, "creative": 4, "analysis": 1}
    assert per["test"] == {"code": 20, "creative": 8, "analysis": 2}
    ids = [r.id for rs in splits.values() for r in rs]
    assert len(ids) == len(set(ids)) == len(records)


def test_split_depends_on_seed_not_on_input_order() -> None:
    records = _records({"code": 50, "creative": 50})
    cfg = SplitConfig()
    a = stratified_split(group_by_domain(records), cfg, seed=7)
    b = stratified_split(group_by_domain(list(reversed(records))), cfg, seed=7)
    c = stratified_split(group_by_domain(records), cfg, seed=8)
    assert a == b
    assert a["test"] != c["test"]


def test_cap_rejects_the_surplus_of_overrepresented_domains() -> None:
    records = _records({"code": 100, "creative": 50})
    kept, rejected = cap_to_ratios(
        group_by_domain(records),
        BalanceConfig(strategy="cap", target_ratios={"code": 0.5, "creative": 0.5}),
        seed=1,
    )
    assert {d: len(rs) for d, rs in kept.items()} == {"code": 50, "creative": 50}
    assert len(rejected) == 50 and {r.reason for r in rejected} == {"balance_cap"}


def test_upsample_repeats_minority_records_in_train_only() -> None:
    train = _records({"code": 30, "creative": 10})
    out = upsample_to_ratios(
        train, BalanceConfig(strategy="upsample", target_ratios={"code": 0.5, "creative": 0.5}), seed=1
    )
    counts = Counter(r.domain for r in out)
    assert counts == {"code": 30, "creative": 30}
    copies = [r for r in out if "~" in r.id]
    assert len(copies) == 20 and all(r.id.split("~")[0].startswith("creative") for r in copies)
