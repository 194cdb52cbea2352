"""Accepted and corrected answers of a feedback store → one new raw source file for prepare_data.

Each output line is an instruction/output record (a correction replaces the served completion)
with its domain (the adapter that answered; base-model answers have none and are left out) and
its provenance (request id, model version, outcome), which prepare_data ignores. The file lands
under data/raw/feedback/, which params.yaml's `data.sources` lists as an optional glob, so the
record goes through every filter the corpus does: PII re-scrubbed, deduplicated against the
corpus, decontaminated against the evaluation splits. Pairs already collected into a file there
are skipped, so collecting twice never doubles a pair.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aistudio.errors import UserError
from aistudio.feedback.store import FEEDBACK, RESPONSE, read_events, scrub

FEEDBACK_FILE_GLOB = "feedback-*.jsonl"


@dataclass
class Collection:
    records: list[dict[str, Any]]
    counts: Counter[str] = field(default_factory=Counter)


def feedback_pairs(events: Iterable[dict[str, Any]], domains: Sequence[str]) -> Collection:
    """The training pairs of a store's events; `counts` says what happened to every rated answer."""
    responses: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    for event in events:
        rid = event.get("request_id")
        if not isinstance(rid, str):
            continue
        if event["kind"] == RESPONSE:
            responses[rid] = event
        elif event["kind"] == FEEDBACK:
            verdicts[rid] = event  # the last word on a request wins
    counts: Counter[str] = Counter(responses=len(responses))
    records = []
    for rid, verdict in verdicts.items():
        outcome = verdict.get("outcome")
        counts[str(outcome)] += 1
        response = responses.get(rid)
        if outcome not in ("accepted", "corrected"):
            continue
        if response is None:
            counts["skipped_no_response"] += 1  # recording was off when it was served, or the segment is gone
            continue
        domain = response.get("adapter")
        if domain not in domains:
            counts["skipped_no_domain"] += 1
            continue
        output = verdict.get("correction") if outcome == "corrected" else response.get("completion")
        if not output or not response.get("prompt"):
            counts["skipped_empty"] += 1
            continue
        records.append(
            {
                "instruction": scrub(response["prompt"]),
                "output": scrub(output),
                "domain": domain,
                "request_id": rid,
                "model_version": response.get("model_version"),
                "outcome": outcome,
            }
        )
    return Collection(records, counts)


def already_collected(out_dir: Path) -> set[str]:
    seen: set[str] = set()
    for path in sorted(out_dir.glob(FEEDBACK_FILE_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rid = json.loads(line).get("request_id")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(rid, str):
                seen.add(rid)
    return seen


def collect_feedback(
    store_dir: Path, out_dir: Path, domains: Sequence[str], now: datetime | None = None
) -> tuple[Path, Collection]:
    """Write the store's new pairs to `out_dir/feedback-<UTC time>.jsonl`; UserError when there are none."""
    if not store_dir.is_dir():
        raise UserError(
            f"feedback store {store_dir} does not exist; is feedback.record on in the serving config?"
        )
    collection = feedback_pairs((event for _, _, event in read_events(store_dir)), domains)
    seen = already_collected(out_dir)
    fresh = [r for r in collection.records if r["request_id"] not in seen]
    collection.counts["already_collected"] = len(collection.records) - len(fresh)
    collection.records = fresh
    if not fresh:
        summary = ", ".join(f"{k}={v}" for k, v in sorted(collection.counts.items()) if v)
        raise UserError(
            f"feedback store {store_dir}: no new accepted or corrected answer to collect "
            f"({summary or 'empty'}); nothing written"
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"feedback-{stamp}.jsonl"
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in fresh), encoding="utf-8")
    scratch.replace(path)
    return path, collection
