"""collect_feedback: accepted and corrected answers become records; nothing new is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.feedback.collect import collect_feedback
from aistudio.feedback.store import FeedbackLog

DOMAINS = ["code", "creative", "analysis", "summarization"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    log = FeedbackLog(tmp_path / "store")
    answers = {
        "ok": ("code", "sort the list of numbers", "sorted(numbers)"),
        "fixed": ("analysis", "what is the mean of 2 and 4", "about 5"),
        "bad": ("creative", "write a haiku about rain", "rain rain rain"),
        "base": (None, "hello there", "hi"),
        "silent": ("code", "reverse a string", "s[::-1]"),
    }
    for rid, (adapter, prompt, completion) in answers.items():
        log.record_response(rid, "m", "3", adapter, prompt, completion)
    log.record_feedback("ok", "accepted")
    log.record_feedback("fixed", "corrected", "The mean of 2 and 4 is 3.")
    log.record_feedback("bad", "rejected")
    log.record_feedback("base", "accepted")
    log.record_feedback("ghost", "accepted")  # served while recording was off
    return tmp_path / "store"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_accepted_and_corrected_pairs_become_instruction_output_records(store: Path, tmp_path: Path) -> None:
    path, collection = collect_feedback(store, tmp_path / "raw", DOMAINS)
    records = {r["request_id"]: r for r in _records(path)}
    assert set(records) == {"ok", "fixed"}
    assert records["ok"] == {
        "instruction": "sort the list of numbers", "output": "sorted(numbers)", "domain": "code",
        "request_id": "ok", "model_version": "3", "outcome": "accepted",
    }  # fmt: skip
    assert records["fixed"]["output"] == "The mean of 2 and 4 is 3."  # the correction, not "about 5"
    counts = collection.counts
    assert (counts["accepted"], counts["corrected"], counts["rejected"]) == (3, 1, 1)
    assert (counts["skipped_no_domain"], counts["skipped_no_response"]) == (1, 1)
    assert path.parent == tmp_path / "raw" and path.name.startswith("feedback-")


def test_collecting_twice_writes_no_pair_twice(store: Path, tmp_path: Path) -> None:
    collect_feedback(store, tmp_path / "raw", DOMAINS)
    with pytest.raises(UserError, match="already_collected=2"):
        collect_feedback(store, tmp_path / "raw", DOMAINS)
    FeedbackLog(store).record_feedback("silent", "accepted")
    path, _ = collect_feedback(store, tmp_path / "raw", DOMAINS)
    assert [r["request_id"] for r in _records(path)] == ["silent"]
    assert len(list((tmp_path / "raw").glob("feedback-*.jsonl"))) == 2


def test_an_empty_store_is_one_clear_error_and_no_file(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(UserError, match=r"no new accepted or corrected answer.*\(empty\); nothing written"):
        collect_feedback(tmp_path / "store", tmp_path / "raw", DOMAINS)
    assert not (tmp_path / "raw").exists()


def test_an_all_rejected_store_is_one_clear_error_and_no_file(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "store")
    log.record_response("r", "m", "1", "code", "sort it", "no")
    log.record_feedback("r", "rejected")
    with pytest.raises(UserError, match="rejected=1"):
        collect_feedback(tmp_path / "store", tmp_path / "raw", DOMAINS)
    assert not (tmp_path / "raw").exists()


def test_a_missing_store_names_the_serving_switch(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="feedback.record"):
        collect_feedback(tmp_path / "nowhere", tmp_path / "raw", DOMAINS)


def test_the_script_exits_2_with_one_line_on_an_empty_store_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    script = Path(__file__).resolve().parents[3] / "scripts" / "collect_feedback.py"
    result = subprocess.run(
        [sys.executable, str(script), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "raw")],
        capture_output=True, text=True, timeout=120, check=False, cwd=script.parents[1],
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nothing written" in result.stderr
    assert not (tmp_path / "raw").exists()
