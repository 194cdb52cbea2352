"""Read every configured source into Records; a malformed line becomes a Rejection, never a crash.

Formats: JSON (an array, or one object per file), JSONL, CSV with a header, and plain text (one
record per file or per blank-line block). Bytes are decoded with `surrogateescape` so that one
line of invalid UTF-8 rejects that line only and the rest of the file is still read.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio.config import RECORD_FIELDS, SourceConfig
from aistudio.data.records import Record, Rejection
from aistudio.errors import UserError

Item = Record | Rejection
_BINARY_PROBE = 8192
_INVALID_UTF8 = re.compile("[\udc80-\udcff]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, named relative to the project root so ids are stable across clones."""

    path: Path
    name: str
    config: SourceConfig


def expand_source(config: SourceConfig, index: int, root: Path) -> list[SourceFile]:
    """The files a source names; a path or glob matching nothing is a user error (unless optional)."""
    pattern = config.path if Path(config.path).is_absolute() else str(root / config.path)
    matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not matches and not config.optional:
        raise UserError(f"params.yaml: data.sources.{index}.path '{config.path}' matches no file")
    return [SourceFile(p, _relative_name(p, root), config) for p in matches]


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def record_id(source: str, line: int) -> str:
    return hashlib.sha256(f"{source}:{line}".encode()).hexdigest()[:16]


def read_source_file(
    src: SourceFile, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[Item]:
    """Yield a Record or a Rejection for every input unit of one file.

    A JSONL file may be read in shards: bytes [start, end) cut at line boundaries, whose first line
    is line number first_line of the file (see split_lines).
    """
    if start or end is not None:
        if src.config.format != "jsonl":
            raise ValueError(f"only JSONL sources are read in shards, not {src.config.format}")
        with src.path.open("rb") as handle:
            handle.seek(start)
            raw = handle.read(None if end is None else end - start)
        yield from _read_jsonl(src, raw.decode("utf-8", errors="surrogateescape"), first_line)
        return
    raw = src.path.read_bytes()
    if not raw.strip():
        yield Rejection("empty_file", src.name, 0, "file has no content")
        return
    if b"\x00" in raw[:_BINARY_PROBE]:
        yield Rejection("binary_file", src.name, 0, "file contains NUL bytes")
        return
    text = raw.decode("utf-8", errors="surrogateescape")
    reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "text": _read_text}[
        src.config.format
    ]
    yield from reader(src, text)


def _read_jsonl(src: SourceFile, text: str, first_line: int = 1) -> Iterator[Item]:
    for number, line in enumerate(text.split("\n"), start=first_line):
        if not line.strip():
            continue
        if _INVALID_UTF8.search(line):
            yield Rejection("invalid_utf8", src.name, number, "line is not valid UTF-8")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejection("invalid_json", src.name, number, exc.msg, excerpt=line[:120])
            continue
        yield _from_mapping(src, number, obj)


def split_lines(path: Path, lines_per_shard: int) -> list[tuple[int, int | None, int]]:
    """(start byte, end byte or None, first line number) of consecutive shards of about
    lines_per_shard lines each, cut after a newline so no line is split."""
    raw = path.read_bytes()
    shards: list[tuple[int, int | None, int]] = []
    start, line, count = 0, 1, 0
    position = raw.find(b"\n")
    while position != -1:
        count += 1
        if count == lines_per_shard:
            shards.append((start, position + 1, line))
            start, line, count = position + 1, line + count, 0
        position = raw.find(b"\n", position + 1)
    if start < len(raw) or not shards:
        shards.append((start, None, line))
    return shards


def _read_json(src: SourceFile, text: str) -> Iterator[Item]:
    if _INVALID_UTF8.search(text):
        yield Rejection("invalid_utf8", src.name, 0, "file is not valid UTF-8")
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Rejection("invalid_json", src.name, exc.lineno, exc.msg, excerpt=text[:120])
        return
    if isinstance(obj, list):
        # For an array, source_line is the element's 1-based index: JSON has no stable line per element.
        for number, element in enumerate(obj, start=1):
            yield _from_mapping(src, number, element)
    else:
        yield _from_mapping(src, 1, obj)


def _read_csv(src: SourceFile, text: str) -> Iterator[Item]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        yield Rejection("empty_file", src.name, 0, "CSV has no header")
        return
    header = [h.strip() for h in header]
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejection("invalid_csv", src.name, start, str(exc))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if any(_INVALID_UTF8.search(cell) for cell in row):
            yield Rejection("invalid_utf8", src.name, start, "row is not valid UTF-8")
        elif len(row) != len(header):
            detail = f"expected {len(header)} columns {header}, got {len(row)}"
            yield Rejection("missing_columns", src.name, start, detail, excerpt=",".join(row)[:120])
        else:
            yield _from_mapping(src, start, dict(zip(header, row, strict=True)))


def _read_text(src: SourceFile, text: str) -> Iterator[Item]:
    if src.config.text_unit == "file":
        yield _text_record(src, 1, text.strip())
        return
    line = 1
    cursor = 0
    for match in [*_BLANK_LINES.finditer(text), None]:
        end = match.start() if match else len(text)
        block = text[cursor:end]
        stripped = block.strip()
        if stripped:
            leading = block[: len(block) - len(block.lstrip())].count("\n")
            yield _text_record(src, line + leading, stripped)
        if match:
            line += text.count("\n", cursor, match.end())
            cursor = match.end()


def _text_record(src: SourceFile, line: int, text: str) -> Item:
    if _INVALID_UTF8.search(text):
        return Rejection("invalid_utf8", src.name, line, "block is not valid UTF-8")
    return _from_mapping(src, line, {"text": text})


def _from_mapping(src: SourceFile, line: int, obj: Any) -> Item:
    if not isinstance(obj, dict):
        return Rejection("invalid_json", src.name, line, f"expected an object, got {type(obj).__name__}")
    mapping = src.config.fields
    values: dict[str, str] = {}
    for field in RECORD_FIELDS:
        key = mapping.get(field, field)
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str | int | float):
            return Rejection("invalid_field", src.name, line, f"field '{key}' must be text")
        values[field] = str(value)
    domain = values.get("domain") if "domain" in mapping else src.config.domain
    return Record(
        id=record_id(src.name, line),
        domain=(domain or "").strip(),
        source=src.name,
        source_line=line,
        instruction=values.get("instruction", "").strip(),
        input=values.get("input", "").strip(),
        output=values.get("output", "").strip(),
        text=values.get("text", "").strip(),
        entry_point=values.get("entry_point", "").strip(),
        # Test source keeps its layout: indentation and blank lines are Python syntax.
        tests=values.get("tests", ""),
    )
