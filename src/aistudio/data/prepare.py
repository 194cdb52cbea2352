"""prepare_data: sources → filtered, scrubbed, deduplicated, balanced, split records.

The invariant the metrics prove: for every source, input = kept + rejected. Every input unit ends
in exactly one split or in rejected.jsonl with its reason, source and line.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aistudio.config import DataConfig
from aistudio.data.dedup import NearDuplicateIndex, exact_key
from aistudio.data.ingest import SourceFile, expand_source, read_source_file
from aistudio.data.pii import PiiScrubber
from aistudio.data.quality import empty_field_issue, quality_issue
from aistudio.data.records import Record, Rejection
from aistudio.data.safety import SafetyScreen
from aistudio.data.split import SPLITS, cap_to_ratios, group_by_domain, stratified_split, upsample_to_ratios
from aistudio.errors import UserError
from aistudio.io import write_json, write_jsonl
from aistudio.layout import rejected_path, split_path

log = logging.getLogger(__name__)
TEXT_FIELDS = ("instruction", "input", "output", "text")


@dataclass
class PrepareResult:
    splits: dict[str, list[Record]]
    rejected: list[Rejection]
    input_by_source: Counter[str] = field(default_factory=Counter)
    pii_replacements: Counter[str] = field(default_factory=Counter)
    pii_records: int = 0
    # file → the params.yaml source (path or glob) it came from; reports are per configured source.
    source_of_file: dict[str, str] = field(default_factory=dict)

    def kept(self) -> list[Record]:
        # Upsampled copies carry a '~' suffix and are not input records of their own.
        return [r for records in self.splits.values() for r in records if "~" not in r.id]

    def quality_report(self) -> dict[str, Any]:
        kept_by_source = Counter(self.source_of_file[r.source] for r in self.kept())
        rejected_by_source = Counter(self.source_of_file[r.source] for r in self.rejected)
        per_source = {
            source: {
                "input": self.input_by_source[source],
                "kept": kept_by_source[source],
                "rejected": rejected_by_source[source],
            }
            for source in sorted(self.input_by_source)
        }
        total_in = sum(self.input_by_source.values())
        kept, rejected = len(self.kept()), len(self.rejected)
        reconciled = total_in == kept + rejected and all(
            s["input"] == s["kept"] + s["rejected"] for s in per_source.values()
        )
        domains = sorted({r.domain for records in self.splits.values() for r in records})
        return {
            "input_records": total_in,
            "kept_records": kept,
            "rejected_records": rejected,
            "reconciled": reconciled,
            "rejected_by_reason": dict(sorted(Counter(r.reason for r in self.rejected).items())),
            "pii_replacements": dict(sorted(self.pii_replacements.items())),
            "pii_records_scrubbed": self.pii_records,
            "splits": {name: len(records) for name, records in self.splits.items()},
            "domains": {
                d: {name: sum(r.domain == d for r in self.splits[name]) for name in SPLITS} for d in domains
            },
            "per_source": per_source,
        }


class RecordFilter:
    """Quality → safety → PII scrub → exact dedup → near dedup, for one record at a time."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.domains = frozenset(cfg.domains)
        self.scrubber = PiiScrubber(cfg.pii.types) if cfg.pii.enabled else None
        self.safety = SafetyScreen(cfg.safety.categories) if cfg.safety.enabled else None
        self.near = (
            NearDuplicateIndex(cfg.dedup.threshold, cfg.dedup.num_perm, cfg.dedup.shingle_size)
            if cfg.dedup.near
            else None
        )
        self.seen_exact: dict[str, str] = {}
        self.pii_replacements: Counter[str] = Counter()
        self.pii_records = 0

    def __call__(self, record: Record) -> Record | Rejection:
        def reject(reason: str, detail: str = "") -> Rejection:
            return Rejection(reason, record.source, record.source_line, detail, record.id)

        if record.domain not in self.domains:
            return reject("unknown_domain", f"domain '{record.domain}' is not one of {sorted(self.domains)}")
        required = ("text",) if record.text and not record.instruction else ("instruction", "output")
        if issue := empty_field_issue(record, required):
            return reject(issue)
        content = record.content()
        if issue := quality_issue(content, self.cfg.quality):
            return reject(issue)
        if self.safety is not None and (category := self.safety.category_of(content)):
            return reject(f"unsafe:{category}")
        record = self._scrub(record)
        content = record.content()
        key = exact_key(content)
        if (first := self.seen_exact.get(key)) is not None:
            return reject("duplicate", f"same as {first}")
        self.seen_exact[key] = record.id
        if self.near is not None and (first := self.near.check_and_add(record.id, content)) is not None:
            return reject("near_duplicate", f"near {first}")
        return record

    def _scrub(self, record: Record) -> Record:
        if self.scrubber is None:
            return record
        changes: dict[str, str] = {}
        found: Counter[str] = Counter()
        for name in TEXT_FIELDS:
            value = getattr(record, name)
            if value:
                scrubbed, counts = self.scrubber.scrub(value)
                if counts:
                    changes[name] = scrubbed
                    found.update(counts)
        if not changes:
            return record
        self.pii_records += 1
        self.pii_replacements.update(found)
        return replace(record, **changes)


def collect_source_files(cfg: DataConfig, root: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    for index, source in enumerate(cfg.sources):
        files += expand_source(source, index, root)
    return files


def prepare_records(cfg: DataConfig, root: Path, seed: int, progress: bool = True) -> PrepareResult:
    """Run every source through the filters, then balance and split. Pure apart from reading sources."""
    files = collect_source_files(cfg, root)
    record_filter = RecordFilter(cfg)
    kept: list[Record] = []
    rejected: list[Rejection] = []
    input_by_source: Counter[str] = Counter()
    kept_by_config: Counter[int] = Counter()
    configs = {id(s): i for i, s in enumerate(cfg.sources)}
    source_of_file = {src.name: src.config.path for src in files}
    for src in tqdm(files, desc="prepare_data", unit="file", disable=not progress):
        for item in read_source_file(src):
            input_by_source[src.config.path] += 1
            outcome = item if isinstance(item, Rejection) else record_filter(item)
            if isinstance(outcome, Rejection):
                rejected.append(outcome)
            else:
                kept.append(outcome)
                kept_by_config[configs[id(src.config)]] += 1
    empty = [i for i in range(len(cfg.sources)) if kept_by_config[i] == 0]
    if empty:
        raise UserError(
            f"params.yaml: data.sources.{i}.path '{cfg.sources[i].path}' yielded no usable record "
            f"(see the reasons in a dry run: every record was rejected)"
            for i in empty
        )
    balanced, capped = cap_to_ratios(group_by_domain(kept), cfg.balance, seed)
    splits = stratified_split(balanced, cfg.split, seed)
    splits["train"] = upsample_to_ratios(splits["train"], cfg.balance, seed)
    rejected = sorted(rejected + capped, key=lambda r: (r.source, r.source_line, r.reason))
    return PrepareResult(
        splits,
        rejected,
        input_by_source,
        record_filter.pii_replacements,
        record_filter.pii_records,
        source_of_file,
    )


def write_outputs(result: PrepareResult, processed_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """Write splits, rejections and the quality report, each atomically."""
    for name, records in result.splits.items():
        write_jsonl(split_path(processed_dir, name), (r.to_json() for r in records))
    write_jsonl(rejected_path(processed_dir), (r.to_json() for r in result.rejected))
    report = result.quality_report()
    write_json(metrics_path, report)
    return report
