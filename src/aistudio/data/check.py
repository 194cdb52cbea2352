"""Re-validate processed data: schema, a fresh PII scan and leaks between splits."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from aistudio.config import DataConfig
from aistudio.data.dedup import NearDuplicateIndex, exact_key
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
    near = NearDuplicateIndex(cfg.dedup.threshold, cfg.dedup.num_perm, cfg.dedup.shingle_size)
    owner: dict[str, tuple[str, str]] = {}
    split_of_id: dict[str, str] = {}
    for name, records in splits.items():
        for record in records:
            where = f"{split_path(processed_dir, name)} record {record.id}"
            if record.domain not in cfg.domains:
                problems.append(f"{where}: unknown domain '{record.domain}'")
            if not (record.text or (record.instruction and record.output)):
                problems.append(f"{where}: needs text, or instruction and output")
            if scrubber and (found := scrubber.find(record.content())):
                problems.append(f"{where}: unscrubbed PII ({', '.join(sorted({m.kind for m in found}))})")
            if "~" in record.id:  # an upsampled copy repeats a training record by design
                continue
            key = exact_key(record.content())
            if key in owner and owner[key][0] != name:
                problems.append(
                    f"{where}: exact duplicate of {owner[key][1]} in {owner[key][0]} (split leak)"
                )
            owner.setdefault(key, (name, record.id))
            split_of_id[record.id] = name
            match = near.check_and_add(record.id, record.content())
            if match is not None and split_of_id.get(match) != name:
                problems.append(
                    f"{where}: near duplicate of {match} in {split_of_id.get(match)} (split leak)"
                )
    return problems
