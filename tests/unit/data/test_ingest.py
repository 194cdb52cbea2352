from __future__ import annotations

import json
from pathlib import Path

import pytest

from aistudio.config import SourceConfig
from aistudio.data.ingest import SourceFile, expand_source, read_source_file
from aistudio.data.records import Record, Rejection
from aistudio.errors import UserError


def _read(path: Path, **config: object) -> list[Record | Rejection]:
    cfg = SourceConfig(path=str(path), **config)  # type: ignore[arg-type]
    return list(read_source_file(SourceFile(path, path.name, cfg)))


def test_jsonl_broken_and_non_utf8_lines_are_rejected_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    good = json.dumps({"instruction": "Add two numbers", "output": "def add(a, b): return a + b"})
    path.write_bytes(
        b"\n".join([good.encode(), b'{"instruction": "broken', b"\xff\xfe bad bytes", b"", b"[1, 2]"])
    )
    items = _read(path, format="jsonl", domain="code")
    assert isinstance(items[0], Record) and items[0].source_line == 1 and items[0].domain == "code"
    rejected = [(r.reason, r.source_line) for r in items[1:] if isinstance(r, Rejection)]
    assert rejected == [("invalid_json", 2), ("invalid_utf8", 3), ("invalid_json", 5)]


def test_json_array_and_single_object_with_field_mapping(tmp_path: Path) -> None:
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]))
    items = _read(
        array, format="json", domain="code", fields={"instruction": "prompt", "output": "completion"}
    )
    assert [(r.instruction, r.output, r.source_line) for r in items] == [("p1", "c1", 1), ("p2", "c2", 2)]
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"title": "T", "article": "A", "summary": "S"}))
    (record,) = _read(
        single,
        format="json",
        domain="summarization",
        fields={"instruction": "title", "input": "article", "output": "summary"},
    )
    assert isinstance(record, Record) and (record.instruction, record.input, record.output) == ("T", "A", "S")


def test_csv_header_mapping_and_rows_with_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('question,context,answer,domain\nq1,"ctx, with comma",a1,analysis\nq2,only-two\n')
    items = _read(
        path,
        format="csv",
        fields={"instruction": "question", "input": "context", "output": "answer", "domain": "domain"},
    )
    record, rejection = items
    assert isinstance(record, Record) and record.input == "ctx, with comma" and record.domain == "analysis"
    assert (
        isinstance(rejection, Rejection)
        and rejection.reason == "missing_columns"
        and rejection.source_line == 3
    )


def test_text_blocks_keep_their_starting_line(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("first block\nstill first\n\n\nsecond block\n  \nthird\n")
    items = _read(path, format="text", domain="creative")
    assert [(r.text, r.source_line) for r in items] == [
        ("first block\nstill first", 1),
        ("second block", 5),
        ("third", 7),
    ]
    (whole,) = _read(path, format="text", domain="creative", text_unit="file")
    assert whole.text.startswith("first block") and whole.text.endswith("third")


def test_empty_and_binary_files_are_rejected_whole(tmp_path: Path) -> None:
    empty, binary = tmp_path / "e.csv", tmp_path / "b.json"
    empty.write_bytes(b"")
    binary.write_bytes(b"\x00\x01\x02PK\x00garbage")
    (e,) = _read(empty, format="csv", domain="analysis")
    (b,) = _read(binary, format="json", domain="summarization")
    assert (e.reason, b.reason) == ("empty_file", "binary_file")


def test_a_glob_that_matches_nothing_is_a_user_error(tmp_path: Path) -> None:
    cfg = SourceConfig(path="nowhere/*.jsonl", format="jsonl", domain="code")
    with pytest.raises(UserError, match=r"data.sources.3.path 'nowhere/\*.jsonl' matches no file"):
        expand_source(cfg, 3, tmp_path)


def test_an_optional_source_may_match_nothing(tmp_path: Path) -> None:
    # Collected feedback (data/raw/feedback/*.jsonl) does not exist until someone collects some.
    cfg = SourceConfig(path="feedback/*.jsonl", format="jsonl", fields={"domain": "domain"}, optional=True)
    assert expand_source(cfg, 5, tmp_path) == []


def test_ids_are_stable_and_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text(json.dumps({"text": "hello there"}) + "\n")
    cfg = SourceConfig(path="d/*.jsonl", format="jsonl", domain="creative")
    (src,) = expand_source(cfg, 0, tmp_path)
    assert src.name == "d/a.jsonl"
    first, second = list(read_source_file(src)), list(read_source_file(src))
    assert first == second
