"""The record schema every source is ingested into, and the shape of a rejection."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Record:
    """One training example. Instruction corpora fill instruction/input/output; plain corpora fill text."""

    id: str
    domain: str
    source: str
    source_line: int
    instruction: str = ""
    input: str = ""
    output: str = ""
    text: str = ""
    # Code records: the name the answer must define, and assert statements that call it. They
    # travel with the record untouched: filters, PII scrubbing and dedup read only the text fields.
    entry_point: str = ""
    tests: str = ""

    def content(self) -> str:
        """All human text of the record, as the filters see it."""
        return "\n".join(part for part in (self.instruction, self.input, self.output, self.text) if part)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    """Why one input line or record was not kept; written to rejected.jsonl, nothing is lost."""

    reason: str
    source: str
    source_line: int
    detail: str = ""
    record_id: str | None = None
    excerpt: str = field(default="")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
