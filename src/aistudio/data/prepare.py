"""prepare_data: sources → filtered, scrubbed, deduplicated, decontaminated, balanced, split records.

Two phases. The per-record work (parse, quality, safety, PII scrubbing, content key, MinHash,
n-grams) runs on shards of the input, in any number of processes or on a Ray cluster
(aistudio.data.engines); each shard's outcomes come back in input order. The global work
(exact and near dedup, clusters, balance, split, decontamination) then runs on the joined
arrays in one deterministic step, so the outputs are byte-identical for any worker count.

The invariant the metrics prove: for every source, input = kept + rejected. Every input unit ends
in exactly one split or in rejected.jsonl with its reason, source and line.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aistudio.config import DataConfig, SourceConfig
from aistudio.data import decontaminate, dedup, fingerprint
from aistudio.data.ingest import SourceFile, expand_source, read_source_file, split_lines
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
# JSONL files are cut into shards of this many lines so one big file spreads over every worker.
LINES_PER_SHARD = 2000
BYTES_PER_TASK = 1 << 20
INTERNAL_ERROR = "internal_error"
CONTAMINATED = "contaminated"


# --- phase 1: per-record work on one shard ------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    file: SourceFile
    start: int = 0
    end: int | None = None
    first_line: int = 1


@dataclass
class ShardOutput:
    """Outcomes of one shard in input order, and fingerprints of the records that passed the filters."""

    outcomes: list[Record | Rejection]
    passed: list[int]  # positions in outcomes of the records that passed the per-record filters
    exact_keys: list[str]
    signatures: np.ndarray  # uint32[len(passed), num_perm]
    band_keys: np.ndarray  # uint64[len(passed), bands]
    ngrams: fingerprint.NgramBatch  # word n-grams for decontamination, one row per passed record
    pii_replacements: Counter[str] = field(default_factory=Counter)
    pii_records: int = 0


class RecordFilter:
    """Domain → required fields → quality → safety → PII scrub, for one record at a time."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.domains = frozenset(cfg.domains)
        self.scrubber = PiiScrubber(cfg.pii.types) if cfg.pii.enabled else None
        self.safety = SafetyScreen(cfg.safety.categories) if cfg.safety.enabled else None
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
        return self._scrub(record)

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


def fingerprint_records(records: list[Record], cfg: DataConfig) -> dict[str, Any]:
    """Exact keys, MinHash signatures, LSH band keys and decontamination n-grams of records."""
    keys = [fingerprint.content_key(r.content()) for r in records]
    signatures = fingerprint.minhash_signatures(
        fingerprint.char_ngrams(keys, cfg.dedup.char_ngram), cfg.dedup.num_perm
    )
    banding = fingerprint.banding_for(cfg.dedup.threshold, cfg.dedup.num_perm)
    return {
        "exact_keys": [fingerprint.exact_key(k) for k in keys],
        "signatures": signatures,
        "band_keys": banding.keys(signatures),
        "ngrams": fingerprint.word_ngrams(keys, cfg.decontamination.ngram),
    }


def process_shard(task: tuple[Shard, ...], cfg: DataConfig) -> ShardOutput:
    """Phase 1 for one task (one shard, or several small files in a row); a record that crashes a
    filter is rejected as internal_error, with its traceback in the log, and the stage goes on."""
    record_filter = RecordFilter(cfg)
    outcomes: list[Record | Rejection] = []
    passed: list[int] = []
    for shard in task:
        for item in read_source_file(shard.file, shard.start, shard.end, shard.first_line):
            if isinstance(item, Record):
                try:
                    item = record_filter(item)
                except Exception as exc:  # one bad record must not stop the stage
                    log.error("record %s (%s line %d) crashed a filter:\n%s", item.id, item.source,
                              item.source_line, traceback.format_exc())  # fmt: skip
                    item = Rejection(INTERNAL_ERROR, item.source, item.source_line, repr(exc)[:200], item.id)
            if isinstance(item, Record):
                passed.append(len(outcomes))
            outcomes.append(item)
    prints = fingerprint_records([outcomes[i] for i in passed], cfg)  # type: ignore[misc]
    return ShardOutput(outcomes, passed, **prints, pii_replacements=record_filter.pii_replacements,
                       pii_records=record_filter.pii_records)  # fmt: skip


def collect_source_files(cfg: DataConfig, root: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    for index, source in enumerate(cfg.sources):
        files += expand_source(source, index, root)
    return files


def plan_shards(
    files: list[SourceFile], lines_per_shard: int = LINES_PER_SHARD, bytes_per_task: int = BYTES_PER_TASK
) -> list[tuple[Shard, ...]]:
    """Tasks in file and line order: JSONL files cut at line boundaries into shards, and runs of
    small files (one article per file) gathered until a task holds about bytes_per_task."""
    shards: list[Shard] = []
    for src in files:
        if src.config.format == "jsonl" and src.path.stat().st_size > 0:
            with src.path.open("rb") as handle:
                head = handle.read(8192)
            if b"\x00" not in head:  # a binary file is one shard, to be rejected whole
                shards += [Shard(src, s, e, line) for s, e, line in split_lines(src.path, lines_per_shard)]
                continue
        shards.append(Shard(src))
    tasks: list[tuple[Shard, ...]] = []
    pending: list[Shard] = []
    pending_bytes = 0
    for shard in shards:
        pending.append(shard)
        pending_bytes += shard_size(shard)
        if pending_bytes >= bytes_per_task:
            tasks.append(tuple(pending))
            pending, pending_bytes = [], 0
    if pending:
        tasks.append(tuple(pending))
    return tasks


def shard_size(shard: Shard) -> int:
    if shard.end is not None:
        return shard.end - shard.start
    return shard.file.path.stat().st_size - shard.start


# --- phase 2: global, deterministic ---------------------------------------------------------------


@dataclass
class PrepareResult:
    splits: dict[str, list[Record]]
    rejected: list[Rejection]
    input_by_source: Counter[str] = field(default_factory=Counter)
    pii_replacements: Counter[str] = field(default_factory=Counter)
    pii_records: int = 0
    # file → the params.yaml source (path or glob) it came from; reports are per configured source.
    source_of_file: dict[str, str] = field(default_factory=dict)
    near_duplicate_clusters: int = 0
    contamination: dict[str, Any] = field(default_factory=dict)
    read_files: list[str] = field(default_factory=list)

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
            "near_duplicate_clusters": self.near_duplicate_clusters,
            "contamination": self.contamination,
            "splits": {name: len(records) for name, records in self.splits.items()},
            "domains": {
                d: {name: sum(r.domain == d for r in self.splits[name]) for name in SPLITS} for d in domains
            },
            "per_source": per_source,
        }


@dataclass
class _Joined:
    """All shards' outcomes in input order, and the fingerprints of the records that passed."""

    outcomes: list[Record | Rejection]
    passed: np.ndarray  # positions in outcomes
    exact_keys: list[str]
    signatures: np.ndarray
    band_keys: np.ndarray
    ngrams: fingerprint.NgramBatch


def _join(outputs: list[ShardOutput], cfg: DataConfig) -> _Joined:
    outcomes: list[Record | Rejection] = []
    passed: list[int] = []
    for out in outputs:
        passed += [len(outcomes) + i for i in out.passed]
        outcomes += out.outcomes
    bands = fingerprint.banding_for(cfg.dedup.threshold, cfg.dedup.num_perm).bands
    hashes = [o.ngrams.hashes for o in outputs]
    lengths = np.concatenate([np.diff(o.ngrams.offsets) for o in outputs]) if outputs else np.zeros(0, int)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _Joined(
        outcomes,
        np.array(passed, dtype=np.int64),
        [k for o in outputs for k in o.exact_keys],
        np.concatenate([o.signatures for o in outputs])
        if outputs
        else np.zeros((0, cfg.dedup.num_perm), np.uint32),
        np.concatenate([o.band_keys for o in outputs]) if outputs else np.zeros((0, bands), np.uint64),
        fingerprint.NgramBatch(np.concatenate(hashes) if hashes else np.zeros(0, np.uint64), offsets),
    )


def _deduplicate(
    joined: _Joined, cfg: DataConfig, candidates_of
) -> tuple[dict[int, Rejection], np.ndarray, int]:
    """(rejections by passed-row, cluster root row of every passed row, number of clusters > 1)."""
    rows = len(joined.exact_keys)
    records: list[Record] = [joined.outcomes[p] for p in joined.passed]  # type: ignore[misc]
    rejected: dict[int, Rejection] = {}

    def reject(row: int, reason: str, detail: str) -> None:
        r = records[row]
        rejected[row] = Rejection(reason, r.source, r.source_line, detail, r.id)

    if cfg.dedup.exact:
        for row, first in dedup.first_of_each_key(joined.exact_keys).items():
            reject(row, "duplicate", f"same as {records[first].id}")
    members = np.array([r for r in range(rows) if r not in rejected], dtype=np.int64)
    roots = np.arange(rows)
    if not cfg.dedup.near or members.size == 0:
        return rejected, roots, 0
    pairs = dedup.confirmed_pairs(
        candidates_of(joined.band_keys, members), joined.signatures, cfg.dedup.threshold
    )
    for row, pair in dedup.reject_near_copies(pairs, members).items():
        reject(row, "near_duplicate", f"near {records[pair.first].id} (similarity {pair.similarity:.2f})")
    roots = dedup.clusters(rows, pairs)
    sizes = Counter(int(roots[r]) for r in range(rows) if r not in rejected)
    return rejected, roots, sum(1 for n in sizes.values() if n > 1)


def _reference_ngrams(cfg: DataConfig, root: Path) -> list[tuple[str, np.ndarray, list[str]]]:
    """(params path, sorted distinct n-grams, files read) of every decontamination reference."""
    out = []
    for index, ref in enumerate(cfg.decontamination.references):
        source = SourceConfig(
            path=ref.path, format=ref.format, fields=ref.fields, text_unit=ref.text_unit, domain="ref"
        )
        try:
            files = expand_source(source, index, root)
        except UserError:
            raise UserError(
                f"params.yaml: data.decontamination.references.{index}.path '{ref.path}' matches no file"
            ) from None
        keys = [
            fingerprint.content_key(item.content())
            for src in files
            for item in read_source_file(src)
            if isinstance(item, Record) and item.content()
        ]
        grams = decontaminate.ngram_set(fingerprint.word_ngrams(keys, cfg.decontamination.ngram))
        out.append((ref.path, grams, [src.name for src in files]))
    return out


def _decontaminate(
    splits: dict[str, list[Record]], row_of: dict[str, int], joined: _Joined, cfg: DataConfig, root: Path
) -> tuple[dict[str, list[Record]], list[Rejection], dict[str, Any]]:
    settings = cfg.decontamination
    report: dict[str, Any] = {
        "ngram": settings.ngram,
        "threshold": settings.threshold,
        "rejected": {},
        "worst": [],
    }
    if not settings.enabled:
        return splits, [], report
    batch = joined.ngrams
    dropped: dict[str, tuple[str, float]] = {}  # record id → (what it overlapped, share)

    def check(split: str, other: np.ndarray, against: str) -> None:
        live = [r for r in splits[split] if r.id not in dropped]
        rows = np.array([row_of[r.id] for r in live], dtype=np.int64)
        record_at = {int(row): r for row, r in zip(rows, live, strict=True)}
        for hit in decontaminate.contaminated(batch, rows, other, settings.threshold):
            dropped[record_at[hit.record].id] = (against, hit.share)
        for w in decontaminate.worst(batch, rows, other, settings.report_worst):
            entry = {"split": split, "against": against, "record_id": record_at[w.record].id}
            report["worst"].append(entry | {"share": round(w.share, 4)})

    for path, grams, files in _reference_ngrams(cfg, root):
        check("train", grams, path)
        report["reference_files"] = report.get("reference_files", []) + files
    train_rows = np.array([row_of[r.id] for r in splits["train"] if r.id not in dropped], dtype=np.int64)
    train_grams = decontaminate.ngram_set(batch, train_rows)
    for split in ("validation", "test"):
        check(split, train_grams, "train")
    report["worst"] = sorted(report["worst"], key=lambda w: (-w["share"], w["record_id"]))[
        : settings.report_worst
    ]
    rejections = []
    by_id = {r.id: r for records in splits.values() for r in records}
    for record_id, (against, share) in sorted(dropped.items()):
        r = by_id[record_id]
        detail = f"{share:.0%} of its {settings.ngram}-grams occur in {against}"
        rejections.append(Rejection(CONTAMINATED, r.source, r.source_line, detail, r.id))
    report["rejected"] = dict(sorted(Counter(against for against, _ in dropped.values()).items()))
    kept = {name: [r for r in records if r.id not in dropped] for name, records in splits.items()}
    return kept, rejections, report


def prepare_records(
    cfg: DataConfig, root: Path, seed: int, progress: bool = True, engine: Any = None
) -> PrepareResult:
    """Run every source through phase 1 on the configured engine, then phase 2. Pure apart from reading."""
    from aistudio.data.engines import engine_for  # the engines import this module's phase-1 functions

    engine = engine or engine_for(cfg)
    files = collect_source_files(cfg, root)
    outputs = engine.map_shards(plan_shards(files, LINES_PER_SHARD, BYTES_PER_TASK), cfg, progress)
    joined = _join(outputs, cfg)
    source_of_file = {src.name: src.config.path for src in files}

    input_by_source: Counter[str] = Counter(source_of_file[o.source] for o in joined.outcomes)
    near_rejections, roots, cluster_count = _deduplicate(joined, cfg, engine.band_candidates)
    passed_at = {int(p): row for row, p in enumerate(joined.passed)}
    kept: list[Record] = []
    rejected: list[Rejection] = []
    kept_by_config: Counter[str] = Counter()
    for position, outcome in enumerate(joined.outcomes):
        row = passed_at.get(position)
        if row is not None and row in near_rejections:
            outcome = near_rejections[row]
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            kept.append(outcome)
            kept_by_config[source_of_file[outcome.source]] += 1
    empty = [i for i, s in enumerate(cfg.sources) if kept_by_config[s.path] == 0 and not s.optional]
    if empty:
        raise UserError(
            f"params.yaml: data.sources.{i}.path '{cfg.sources[i].path}' yielded no usable record "
            f"(see the reasons in a dry run: every record was rejected)"
            for i in empty
        )
    records_by_row = {int(row): joined.outcomes[int(p)] for row, p in enumerate(joined.passed)}
    row_of = {records_by_row[row].id: row for row in records_by_row}
    group_of = {r.id: records_by_row[int(roots[row_of[r.id]])].id for r in kept}
    balanced, capped = cap_to_ratios(group_by_domain(kept), cfg.balance, seed)
    splits = stratified_split(balanced, cfg.split, seed, group_of)
    splits, contaminated, contamination = _decontaminate(splits, row_of, joined, cfg, root)
    splits["train"] = upsample_to_ratios(splits["train"], cfg.balance, seed)
    rejected = sorted(rejected + capped + contaminated, key=lambda r: (r.source, r.source_line, r.reason))
    pii = Counter()
    for out in outputs:
        pii.update(out.pii_replacements)
    return PrepareResult(
        splits,
        rejected,
        input_by_source,
        pii,
        sum(o.pii_records for o in outputs),
        source_of_file,
        cluster_count,
        contamination,
        [src.name for src in files] + contamination.get("reference_files", []),
    )


def write_outputs(result: PrepareResult, processed_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """Write splits, rejections and the quality report, each atomically."""
    for name, records in result.splits.items():
        write_jsonl(split_path(processed_dir, name), (r.to_json() for r in records))
    write_jsonl(rejected_path(processed_dir), (r.to_json() for r in result.rejected))
    report = result.quality_report()
    write_json(metrics_path, report)
    return report
