"""The feedback store: scrubbed events in per-process JSONL segments that rotate by size and count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aistudio.feedback.store import FeedbackLog, read_events


def _lines(log: FeedbackLog) -> list[dict]:
    return [json.loads(line) for s in log.segments for line in s.read_text().splitlines()]


def test_a_response_and_its_feedback_are_recorded_with_adapter_version_and_request_id(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path)
    log.record_response("cmpl-1", "tiny:code", "7", "code", "sort the list", "sorted(xs)", "exp", "lora")
    log.record_feedback("cmpl-1", "corrected", "sorted(xs, reverse=True)", "exp", "lora", "ops")
    response, feedback = _lines(log)
    assert response["kind"] == "response" and feedback["kind"] == "feedback"
    assert (response["request_id"], response["adapter"], response["model_version"]) == ("cmpl-1", "code", "7")
    assert (response["prompt"], response["completion"]) == ("sort the list", "sorted(xs)")
    assert (feedback["outcome"], feedback["correction"], feedback["caller"]) == (
        "corrected", "sorted(xs, reverse=True)", "ops",
    )  # fmt: skip
    assert response["ts"].endswith("Z")


def test_prompts_completions_and_corrections_are_pii_scrubbed_before_they_reach_the_disk(
    tmp_path: Path,
) -> None:
    log = FeedbackLog(tmp_path)
    log.record_response("r", "m", "1", "code", "mail jane.doe@example.com", "call 555-123-4567", None, None)
    log.record_feedback("r", "corrected", "ip 10.1.2.3 and jane.doe@example.com")
    text = "".join(s.read_text() for s in log.segments)
    for secret in ("jane.doe@example.com", "555-123-4567", "10.1.2.3"):
        assert secret not in text
    assert "EMAIL" in text.upper()


def test_segments_rotate_by_record_count_and_by_size_and_none_is_deleted(tmp_path: Path) -> None:
    by_count = FeedbackLog(tmp_path / "count", max_segment_records=2)
    for i in range(5):
        by_count.record_feedback(f"r{i}", "accepted")
    assert [len(s.read_text().splitlines()) for s in by_count.segments] == [2, 2, 1]
    by_size = FeedbackLog(tmp_path / "size", max_segment_bytes=300)
    for i in range(6):
        by_size.record_feedback(f"r{i}", "accepted")
    assert len(by_size.segments) > 1 and all(s.stat().st_size <= 300 for s in by_size.segments)
    assert len(_lines(by_size)) == 6


def test_two_processes_sharing_a_directory_write_separate_segments(tmp_path: Path) -> None:
    first, second = FeedbackLog(tmp_path), FeedbackLog(tmp_path)
    first.record_feedback("a", "accepted")
    second.record_feedback("b", "rejected")
    assert len(first.segments) == 2
    assert sorted(e["request_id"] for _, _, e in read_events(tmp_path)) == ["a", "b"]


def test_a_line_torn_by_a_crash_is_skipped_and_the_restarted_server_writes_a_new_segment(
    tmp_path: Path,
) -> None:
    FeedbackLog(tmp_path).record_feedback("a", "accepted")
    with open(next(tmp_path.glob("segment-*")), "a") as handle:
        handle.write('{"kind": "feedback", "request_id": "tor')
    FeedbackLog(tmp_path).record_feedback("b", "accepted")
    assert sorted(e["request_id"] for _, _, e in read_events(tmp_path)) == ["a", "b"]


def test_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outcome"):
        FeedbackLog(tmp_path).record_feedback("a", "meh")
