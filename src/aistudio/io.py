"""Atomic file output: a crash mid-write leaves the previous file intact, never half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temp file beside `path`, fsync, then rename over it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=None if "b" in mode else "\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_line(obj: Any) -> str:
    """One canonical JSON line: sorted keys and no ASCII escaping, so output is byte-stable."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with atomic_writer(path) as out:
        for row in rows:
            out.write(dumps_line(row))
            count += 1
    return count


def write_json(path: Path, obj: Any) -> None:
    with atomic_writer(path) as out:
        json.dump(obj, out, ensure_ascii=False, sort_keys=True, indent=2)
        out.write("\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
