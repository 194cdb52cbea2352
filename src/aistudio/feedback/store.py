"""The feedback store: JSONL segments the server appends served answers and feedback outcomes to.

One event per line, two kinds, joined later on `request_id` (aistudio.feedback.collect):

    {"kind": "response", "request_id", "ts", "model", "model_version", "adapter", "experiment",
     "variant", "prompt", "completion"}
    {"kind": "feedback", "request_id", "ts", "outcome", "correction", "experiment", "variant", "caller"}

Prompts, completions and corrections are PII-scrubbed (aistudio.data.pii, the scrubber
prepare_data uses, every type) before they touch the disk. Each process writes its own segments,
`segment-<UTC start>-<host>-<pid>-<random>-<n>.jsonl`, so replicas sharing one directory (a PVC) never
interleave lines; a segment is closed after `max_segment_bytes` or `max_segment_records`, and
closed segments are never deleted here: what to keep is the collector's and the operator's call.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from aistudio.config import PII_TYPES
from aistudio.data.pii import PiiScrubber

SEGMENT_GLOB = "segment-*.jsonl"
FEEDBACK_OUTCOMES = ("accepted", "rejected", "corrected")
RESPONSE = "response"
FEEDBACK = "feedback"


@lru_cache(maxsize=1)
def store_scrubber() -> PiiScrubber:
    return PiiScrubber(PII_TYPES)


def scrub(text: str | None) -> str | None:
    return None if text is None else store_scrubber().scrub(text)[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FeedbackLog:
    """Appends events to this process's current segment under `directory`; thread-safe."""

    def __init__(self, directory: Path, max_segment_bytes: int = 16 << 20, max_segment_records: int = 10_000):
        if max_segment_bytes < 1 or max_segment_records < 1:
            raise ValueError("max_segment_bytes and max_segment_records must be >= 1")
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_records = max_segment_records
        self._lock = threading.Lock()
        self._segment: Path | None = None
        self._bytes = 0
        self._records = 0
        self._count = 0
        # Host and pid keep replicas apart; the random part keeps two stores of one process apart.
        started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._prefix = f"segment-{started}-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"

    @property
    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def _rotate(self) -> Path:
        self._count += 1
        self._segment = self.directory / f"{self._prefix}-{self._count:05d}.jsonl"
        self._bytes = self._records = 0
        return self._segment

    def append(self, event: dict[str, Any]) -> None:
        line = (json.dumps({"ts": _now(), **event}, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            segment = self._segment
            full = self._bytes + len(line) > self.max_segment_bytes and self._records > 0
            if segment is None or full or self._records >= self.max_segment_records:
                self.directory.mkdir(parents=True, exist_ok=True)
                segment = self._rotate()
            # One write of one whole line: an O_APPEND write is not torn by a concurrent reader.
            with open(segment, "ab") as handle:
                handle.write(line)
            self._bytes += len(line)
            self._records += 1

    def record_response(
        self,
        request_id: str,
        model: str,
        model_version: str,
        adapter: str | None,
        prompt: str,
        completion: str,
        experiment: str | None = None,
        variant: str | None = None,
    ) -> None:
        self.append(
            {
                "kind": RESPONSE,
                "request_id": request_id,
                "model": model,
                "model_version": model_version,
                "adapter": adapter,
                "experiment": experiment,
                "variant": variant,
                "prompt": scrub(prompt),
                "completion": scrub(completion),
            }
        )

    def record_feedback(
        self,
        request_id: str,
        outcome: str,
        correction: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        caller: str | None = None,
    ) -> None:
        if outcome not in FEEDBACK_OUTCOMES:
            raise ValueError(f"outcome must be one of {FEEDBACK_OUTCOMES} (got {outcome!r})")
        self.append(
            {
                "kind": FEEDBACK,
                "request_id": request_id,
                "outcome": outcome,
                "correction": scrub(correction),
                "experiment": experiment,
                "variant": variant,
                "caller": caller,
            }
        )


def read_events(directory: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(segment name, line number, event) for every readable line of every segment, oldest first.

    A line that is not a JSON object (a crash mid-write) is skipped, not fatal: one torn line
    must not hold back the rest of the store."""
    for segment in sorted(Path(directory).glob(SEGMENT_GLOB)):
        with open(segment, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and event.get("kind") in (RESPONSE, FEEDBACK):
                    yield segment.name, number, event
