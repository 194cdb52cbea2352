"""Re-validate processed data: what prepare_data should have prevented, found independently.

Checks: the record schema, a fresh PII scan, exact and near duplicates across splits (MinHash
over the same content key prepare_data uses), and n-gram contamination of validation/test by
train over the configured threshold. Every problem is one line naming the file and record.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from aistudio.config import DataConfig
from aistudio.data import decontaminate, dedup, fingerprint
from aistudio.data.pii import PiiScrubber
from aistudio.data.records import Record
from aistudio.data.split import SPLITS
from aistudio.layout import split_path

_RECORD_FIELDS = {f.name: f.type for f in fields(Record)}


def _load_split(path: Path, problems: list[str]) -> list[Record]:
    if not path.exists():
        problems.append(f"{path}: missing")
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not JSON ({exc.msg})")
            continue
        missing = sorted(set(_RECORD_FIELDS) - set(row))
        extra = sorted(set(row) - set(_RECORD_FIELDS))
        if missing or extra:
            problems.append(f"{path}:{number}: schema mismatch (missing {missing}, unexpected {extra})")
            continue
        bad = [k for k, v in row.items() if not isinstance(v, int if k == "source_line" else str)]
        if bad:
            problems.append(f"{path}:{number}: wrong type for {bad}")
            continue
        records.append(Record(**row))
    if not records:
        problems.append(f"{path}: no records")
    return records


def check_processed(processed_dir: Path, cfg: DataConfig) -> list[str]:
    """All problems found in processed_dir; an empty list means the data is fit to train on."""
    problems: list[str] = []
    splits = {name: _load_split(split_path(processed_dir, name), problems) for name in SPLITS}
    scrubber = PiiScrubber(cfg.pii.types) if cfg.pii.enabled else None
    records: list[Record] = []
    split_of: list[str] = []
    for name, loaded in splits.items():
        for record in loaded:
            where = f"{split_path(processed_dir, name)} record {record.id}"
            if record.domain not in cfg.domains:
                problems.append(f"{where}: unknown domain '{record.domain}'")
            if not (record.text or (record.instruction and record.output)):
                problems.append(f"{where}: needs text, or instruction and output")
            if scrubber and (found := scrubber.find(record.content())):
                problems.append(f"{where}: unscrubbed PII ({', '.join(sorted({m.kind for m in found}))})")
            if "~" not in record.id:  # an upsampled copy repeats a training record by design
                records.append(record)
                split_of.append(name)
    problems += _leaks(processed_dir, records, split_of, cfg)
    return problems


def _leaks(processed_dir: Path, records: list[Record], split_of: list[str], cfg: DataConfig) -> list[str]:
    if not records:
        return []
    problems: list[str] = []
    keys = [fingerprint.content_key(r.content()) for r in records]
    where = [f"{split_path(processed_dir, s)} record {r.id}" for r, s in zip(records, split_of, strict=True)]
    for row, first in dedup.first_of_each_key([fingerprint.exact_key(k) for k in keys]).items():
        if split_of[row] != split_of[first]:
            problems.append(
                f"{where[row]}: exact duplicate of {records[first].id} in {split_of[first]} (split leak)"
            )
    signatures = fingerprint.minhash_signatures(
        fingerprint.char_ngrams(keys, cfg.dedup.char_ngram), cfg.dedup.num_perm
    )
    bands = fingerprint.banding_for(cfg.dedup.threshold, cfg.dedup.num_perm).keys(signatures)
    candidates = dedup.band_candidates(bands, np.arange(len(records)))
    for pair in dedup.confirmed_pairs(candidates, signatures, cfg.dedup.threshold):
        if split_of[pair.first] != split_of[pair.second]:
            problems.append(
                f"{where[pair.second]}: near duplicate of {records[pair.first].id} in {split_of[pair.first]} "
                f"(similarity {pair.similarity:.2f}, split leak)"
            )
    settings = cfg.decontamination
    if settings.enabled:
        batch = fingerprint.word_ngrams(keys, settings.ngram)
        train = np.array([i for i, s in enumerate(split_of) if s == "train"], dtype=np.int64)
        held_out = np.array([i for i, s in enumerate(split_of) if s != "train"], dtype=np.int64)
        train_grams = decontaminate.ngram_set(batch, train)
        for hit in decontaminate.contaminated(batch, held_out, train_grams, settings.threshold):
            problems.append(
                f"{where[hit.record]}: {hit.share:.0%} of its {settings.ngram}-grams occur in train "
                f"(contamination over {settings.threshold:.0%})"
            )
    return problems
