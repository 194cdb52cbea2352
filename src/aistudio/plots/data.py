"""The tables behind `dvc plots`: their columns, and writers that never hand DVC an empty file.

DVC takes a file's columns from its first row, so a file without rows fails the whole plot, and it
ignores a JSON list whose rows differ in keys. So every row here carries every column, and a chart
with nothing to draw gets one row whose `note` says why: the page shows an empty chart and the note.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aistudio.io import atomic_writer

NOTE = "note"
# One training run: train_loss at every logging step, eval_loss at every evaluation.
LOSS_CURVE_COLUMNS: tuple[str, ...] = ("step", "train_loss", "eval_loss", "learning_rate", NOTE)
# One evaluation bar chart; the chart's own metric column is added (see evaluation/plots.py).
EVALUATION_COLUMNS: tuple[str, ...] = ("model", "domain", "form", "form_order", NOTE)
# Size vs perplexity change of each quantized variant against its fp32 source.
QUANTIZATION_COLUMNS: tuple[str, ...] = ("model", "variant", "size_mb", "perplexity_change_pct", NOTE)

Row = Mapping[str, Any]


def table(rows: Sequence[Row], columns: Sequence[str], note: str) -> list[dict[str, Any]]:
    """`rows` with exactly `columns` each (absent values None), or one row carrying `note` if empty."""
    if NOTE not in columns:
        raise ValueError(f"plot columns {list(columns)} need a '{NOTE}' column")
    if not rows:
        # Empty strings, not nulls: Vega reads "" as no value, and a facet header shows nothing.
        return [{column: note if column == NOTE else "" for column in columns}]
    unknown = sorted({key for row in rows for key in row} - set(columns))
    if unknown:
        raise ValueError(f"plot rows carry {unknown}, not among the columns {list(columns)}")
    return [{column: row.get(column, "" if column == NOTE else None) for column in columns} for row in rows]


def write_csv(path: Path, rows: Sequence[Row], columns: Sequence[str], note: str) -> Path:
    with atomic_writer(Path(path)) as out:
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table(rows, columns, note))
    return Path(path)


def write_json(path: Path, rows: Sequence[Row], columns: Sequence[str], note: str) -> Path:
    with atomic_writer(Path(path)) as out:
        json.dump(table(rows, columns, note), out, ensure_ascii=False, indent=1)
        out.write("\n")
    return Path(path)


def read_columns(path: Path) -> list[str]:
    """The columns a written plot file has: a CSV's header, or the keys of a JSON list's first row."""
    path = Path(path)
    if path.suffix in {".csv", ".tsv"}:
        with path.open(encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle, delimiter="\t" if path.suffix == ".tsv" else ","), [])
    data = json.loads(path.read_text(encoding="utf-8"))
    first = data[0] if isinstance(data, list) and data else {}
    return list(first) if isinstance(first, dict) else []
