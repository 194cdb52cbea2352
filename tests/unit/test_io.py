from __future__ import annotations

from pathlib import Path

import pytest

from aistudio.io import atomic_writer, write_jsonl


def test_a_crash_mid_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "train_data.jsonl"
    write_jsonl(target, [{"a": 1}])
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as out:
            out.write('{"half": ')
            raise RuntimeError("killed")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train_data.jsonl"]


def test_jsonl_lines_are_canonical(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    write_jsonl(target, [{"b": "é", "a": 1}])
    assert target.read_text(encoding="utf-8") == '{"a": 1, "b": "é"}\n'
