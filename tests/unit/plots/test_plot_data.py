"""Plot tables: every row carries every column, and an empty table becomes one note row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from aistudio.plots.data import NOTE, read_columns, table, write_csv, write_json

COLUMNS = ("step", "train_loss", NOTE)


def test_rows_get_every_column_in_order_and_missing_values_are_empty() -> None:
    assert table([{"train_loss": 1.5, "step": 1}, {"step": 2}], COLUMNS, "unused") == [
        {"step": 1, "train_loss": 1.5, NOTE: ""},
        {"step": 2, "train_loss": None, NOTE: ""},
    ]


def test_an_empty_table_is_one_row_with_the_note() -> None:
    assert table([], COLUMNS, "nothing logged") == [{"step": "", "train_loss": "", NOTE: "nothing logged"}]


def test_a_row_with_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['loss'\]"):
        table([{"step": 1, "loss": 2.0}], COLUMNS, "")


def test_csv_and_json_files_read_back_with_their_columns(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "a" / "curve.csv", [{"step": 1, "train_loss": 0.5}], COLUMNS, "n")
    json_path = write_json(tmp_path / "b" / "chart.json", [], COLUMNS, "empty")
    assert read_columns(csv_path) == read_columns(json_path) == list(COLUMNS)
    with csv_path.open() as handle:
        assert list(csv.DictReader(handle)) == [{"step": "1", "train_loss": "0.5", NOTE: ""}]
    assert json.loads(json_path.read_text()) == [{"step": "", "train_loss": "", NOTE: "empty"}]
