from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aistudio.config import DataConfig
from aistudio.data.prepare import prepare_records, write_outputs
from aistudio.errors import UserError


def _config(tmp_path: Path, lines: list[dict]) -> DataConfig:
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw" / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{broken\n")
    return DataConfig.model_validate(
        {
            "sources": [{"path": "raw/*.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}],
            "quality": {"min_chars": 10, "min_words": 3},
            "safety": {"categories": {"violence": ["pipe bomb"]}},
            "split": {"validation": 0.2, "test": 0.2},
        }
    )


_WORDS = (
    "harbour committee tuesday proposal fishing crews decade budget ferry quay tide lantern council "
    "market bridge school river meadow orchard granary beacon station canal weaver foundry chapel "
    "mill kiln malt cooper saddler glebe castle abbey tanner ropewalk well summit valley forest "
    "cottage pier boathouse workshop greenhouse bakery courtyard lighthouse garden hillside"
).split()


def _sentence(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _lines() -> list[dict]:
    # Each record its own random words: distinct, so only the planted copies are duplicates.
    rows = [
        {
            "domain": "analysis",
            "instruction": f"Question {i}: {_sentence(i, 18)}?",
            "output": f"Answer: {_sentence(1000 + i, 10)}.",
        }
        for i in range(30)
    ]
    rows.append(dict(rows[3]))  # exact duplicate
    near = dict(rows[5])
    near["output"] = near["output"].replace("Answer:", "Reply:")
    rows.append(near)  # near duplicate: one word changed
    rows.append({"domain": "analysis", "instruction": "How do I build a pipe bomb at home?", "output": "No."})
    rows.append(
        {"domain": "poetry", "instruction": "Write a poem about the sea", "output": "Waves and more waves"}
    )
    rows.append(
        {
            "domain": "analysis",
            "instruction": "Contact me at jane.doe@example.com or +44 20 7946 0958",
            "output": "I will write to you soon about the harbour",
        }
    )
    return rows


def test_every_input_is_kept_or_rejected_with_a_reason(tmp_path: Path) -> None:
    result = prepare_records(_config(tmp_path, _lines()), tmp_path, seed=1, progress=False)
    report = result.quality_report()
    assert report["reconciled"] and report["input_records"] == 36
    assert report["rejected_by_reason"] == {
        "duplicate": 1,
        "near_duplicate": 1,
        "unsafe:violence": 1,
        "unknown_domain": 1,
        "invalid_json": 1,
    }
    assert report["pii_replacements"] == {"email": 1, "phone": 1}
    kept_text = " ".join(r.content() for r in result.kept())
    assert "[EMAIL]" in kept_text and "jane.doe" not in kept_text


def test_same_inputs_and_params_give_byte_identical_outputs(tmp_path: Path) -> None:
    cfg = _config(tmp_path, _lines())
    outputs = []
    for run in ("one", "two"):
        result = prepare_records(cfg, tmp_path, seed=3, progress=False)
        write_outputs(result, tmp_path / run, tmp_path / run / "quality.json")
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert outputs[0] == outputs[1]


def test_a_source_with_no_usable_record_is_a_user_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [{"domain": "analysis", "instruction": "short", "output": "x"}])
    with pytest.raises(UserError, match=r"data.sources.0.path 'raw/\*.jsonl' yielded no usable record"):
        prepare_records(cfg, tmp_path, seed=1, progress=False)


def test_code_records_carry_entry_point_and_tests_into_the_splits(tmp_path: Path) -> None:
    tests_source = "assert add_prices(1, 2) == 3\nassert add_prices(-1, 1) == 0\n"
    rows = _lines()
    for row in rows[:30]:
        row |= {"entry_point": "add_prices", "tests": tests_source}
    # The source's own names, mapped like every other field; the email in the prose is scrubbed,
    # the test source is carried as it is.
    rows = [{"check": r.pop("tests", ""), **r} for r in rows]
    rows[0]["instruction"] += " Questions to ann.lee@example.org"
    cfg = _config(tmp_path, rows)
    source = cfg.sources[0].model_copy(update={"fields": {"domain": "domain", "tests": "check"}})
    cfg = cfg.model_copy(update={"sources": [source]})
    result = prepare_records(cfg, tmp_path, seed=1, progress=False)
    write_outputs(result, tmp_path / "processed", tmp_path / "quality.json")
    written = [
        json.loads(line)
        for split in ("train", "validation", "test")
        for line in (tmp_path / "processed" / f"{split}_data.jsonl").read_text().splitlines()
    ]
    with_code = [r for r in written if r["entry_point"]]
    assert len(with_code) >= 25
    assert all(r["entry_point"] == "add_prices" and r["tests"] == tests_source for r in with_code)
    assert any("[EMAIL]" in r["instruction"] for r in with_code)
