"""check_data_quality finds what prepare_data should have prevented, on data built to break each rule."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aistudio.config import DataConfig
from aistudio.data.check import check_processed
from aistudio.data.records import Record

_WORDS = (
    "harbour committee proposal fishing crews decade budget ferry quay tide lantern council market bridge "
    "school river meadow orchard granary beacon station canal weaver foundry chapel mill kiln malt cooper "
    "saddler glebe castle abbey tanner ropewalk summit valley forest cottage pier boathouse workshop garden"
).split()


def _text(seed: int, words: int = 30) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _record(i: int, **fields: str) -> Record:
    values = {"instruction": _text(i), "output": _text(1000 + i, 12)} | fields
    return Record(id=f"r{i:03d}", domain="analysis", source="raw/a.jsonl", source_line=i, **values)


def _write(folder: Path, splits: dict[str, list[Record]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        (folder / f"{name}_data.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return folder


def _clean() -> dict[str, list[Record]]:
    return {
        "train": [_record(i) for i in range(20)],
        "validation": [_record(i) for i in range(20, 25)],
        "test": [_record(i) for i in range(25, 30)],
    }


CFG = DataConfig.model_validate(
    {"sources": [{"path": "raw/*.jsonl", "format": "jsonl", "domain": "analysis"}]}
)


def test_clean_data_passes(tmp_path: Path) -> None:
    assert check_processed(_write(tmp_path, _clean()), CFG) == []


def test_a_near_copy_across_splits_is_a_leak(tmp_path: Path) -> None:
    splits = _clean()
    original = splits["train"][3]
    splits["test"].append(
        _record(99, instruction=original.instruction.upper() + " pier", output=original.output)
    )
    problems = check_processed(_write(tmp_path, splits), CFG)
    near = [p for p in problems if "near duplicate of r003 in train" in p]
    assert len(near) == 1 and "test_data.jsonl record r099" in near[0]
    # It is also contaminated (most of its 13-grams are in train); nothing else is reported.
    assert all("r099" in p for p in problems)


def test_an_exact_copy_in_other_case_and_spacing_is_a_leak(tmp_path: Path) -> None:
    splits = _clean()
    original = splits["train"][0]
    splits["validation"].append(
        _record(98, instruction="  " + original.instruction.upper(), output=original.output)
    )
    problems = check_processed(_write(tmp_path, splits), CFG)
    assert any("exact duplicate of r000 in train" in p for p in problems)


def test_a_held_out_record_mostly_made_of_training_text_is_contamination(tmp_path: Path) -> None:
    splits = _clean()
    passage = _text(555, 40)
    splits["train"].append(_record(97, instruction=passage))
    splits["test"].append(
        _record(96, instruction=_text(556, 10) + " " + passage, output="A different answer here.")
    )
    problems = check_processed(_write(tmp_path, splits), CFG)
    assert [p for p in problems if "13-grams occur in train" in p and "r096" in p]


def test_unscrubbed_pii_is_found(tmp_path: Path) -> None:
    splits = _clean()
    splits["train"].append(_record(95, output="Write to ann.lee@example.org about it."))
    problems = check_processed(_write(tmp_path, splits), CFG)
    assert problems == [f"{tmp_path / 'train_data.jsonl'} record r095: unscrubbed PII (email)"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("not json", "not JSON"),
        ('{"id": "x"}', "schema mismatch"),
    ],
)
def test_a_broken_schema_is_found(tmp_path: Path, line: str, expected: str) -> None:
    folder = _write(tmp_path, _clean())
    with (folder / "validation_data.jsonl").open("a") as handle:
        handle.write(line + "\n")
    problems = check_processed(folder, CFG)
    assert len(problems) == 1 and expected in problems[0] and "validation_data.jsonl:6" in problems[0]
