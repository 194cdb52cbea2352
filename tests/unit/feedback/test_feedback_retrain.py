"""The feedback data version is a commit of the new files alone; the trigger is audited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aistudio.audit import AuditTrail, FileAuditStore
from aistudio.feedback.retrain import pending_feedback, run_retrain, snapshot_feedback

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
RAW = Path("data/raw/feedback")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.name", "test"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.email", "test@localhost"], cwd=root, check=True)
    (root / "README").write_text("x\n")
    subprocess.run([*GIT, "add", "README"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "start"], cwd=root, check=True)
    return root


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_new_feedback_files_are_committed_alone_and_the_commit_is_the_data_version(repo: Path) -> None:
    (repo / RAW).mkdir(parents=True)
    (repo / RAW / "feedback-1.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (repo / "README").write_text("a user's unrelated edit\n")
    subprocess.run(["git", "add", "README"], cwd=repo, check=True)  # staged, but not feedback
    assert pending_feedback(repo, RAW) == ["data/raw/feedback/feedback-1.jsonl"]
    version = snapshot_feedback(repo, RAW, "feedback data")
    assert version.is_new and version.commit == _git(repo, "rev-parse", "HEAD")
    assert _git(repo, "show", "--name-only", "--format=", "HEAD") == "data/raw/feedback/feedback-1.jsonl"
    assert "README" in _git(repo, "diff", "--cached", "--name-only")  # the user's staging is untouched
    assert len(version.sha256["data/raw/feedback/feedback-1.jsonl"]) == 64
    assert pending_feedback(repo, RAW) == []


def test_no_new_feedback_means_the_current_head_and_no_commit(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    version = snapshot_feedback(repo, RAW, "feedback data")
    assert (version.commit, version.is_new) == (head, False)
    assert _git(repo, "rev-parse", "HEAD") == head


def test_the_retrain_trigger_and_its_end_are_audited_with_who_why_and_data_version(
    repo: Path, tmp_path: Path
) -> None:
    (repo / RAW).mkdir(parents=True)
    (repo / RAW / "feedback-1.jsonl").write_text("{}\n")
    version = snapshot_feedback(repo, RAW, "feedback data")
    trail = AuditTrail(FileAuditStore(tmp_path / "audit.jsonl"))
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert run_retrain(failing, repo, trail, "2 new feedback files", version) == 3
    started, finished = trail.entries()
    assert started.action == finished.action == "retrain_trigger"
    assert started.reason == "2 new feedback files" and started.actor["os_user"]
    assert started.details["data_version"] == version.commit
    assert started.details["feedback_files"] == ["data/raw/feedback/feedback-1.jsonl"]
    assert (finished.outcome, finished.details["returncode"]) == ("failed", 3)
    assert trail.verify().ok
