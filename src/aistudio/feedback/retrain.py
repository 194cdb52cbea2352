"""A retrain that learns from production: the collected feedback becomes a data version first.

The raw corpus is git-tracked and `data/raw` is prepare_data's dependency in dvc.yaml, so the
data version of collected feedback is a git commit of its new files: `dvc repro` then sees a
changed dependency and re-runs prepare_data and everything downstream, and every stage's lineage
(the git commit, the data hash) names that version. `dvc add` would put the files in DVC's cache
instead, but it would also make `data/raw/feedback` a second owner of paths inside the `data/raw`
dependency and need a remote for what git holds today: one tracker for the raw data is simpler.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aistudio.audit import AuditTrail, resolve_identity
from aistudio.errors import UserError

RETRAIN_AUDIT_MODEL = "pipeline"  # a retrain concerns every model the DAG builds, not one


@dataclass(frozen=True)
class DataVersion:
    """The commit that holds the feedback data, and the files it added (empty: nothing new)."""

    commit: str
    files: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def is_new(self) -> bool:
        return bool(self.files)


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError("git is not on PATH; the feedback data version is a git commit") from None
    if done.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def pending_feedback(root: Path, raw_dir: Path) -> list[str]:
    """The new or changed collected-feedback files under `raw_dir` that no commit holds yet."""
    if not (root / raw_dir).is_dir():
        return []
    pending = _git(root, "status", "--porcelain", "--untracked-files=all", "--", raw_dir.as_posix())
    return sorted(line[3:] for line in pending.splitlines() if line[3:].endswith(".jsonl"))


def snapshot_feedback(root: Path, raw_dir: Path, message: str) -> DataVersion:
    """Commit the new or changed files under `raw_dir` (relative to the repository `root`) alone,
    whatever else is staged; the commit is the data version. No new file: the current HEAD."""
    files = pending_feedback(root, raw_dir)
    if not files:
        return DataVersion(_git(root, "rev-parse", "HEAD"))
    _git(root, "add", "--", *files)
    # `--only` with paths commits these files and nothing else a user had staged.
    _git(root, "commit", "--quiet", "--only", "-m", message, "--", *files)
    digests = {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files}
    return DataVersion(_git(root, "rev-parse", "HEAD"), files, digests)


def run_retrain(command: Sequence[str], root: Path, trail: AuditTrail, reason: str, data: DataVersion) -> int:
    """Audit the trigger (who, why, data version), run the retrain, audit how it ended; its exit code."""
    details = {"command": " ".join(command), "data_version": data.commit, "feedback_files": data.files}
    if data.sha256:
        details["feedback_sha256"] = data.sha256
    actor = resolve_identity(cwd=root)  # the git identity of the repository that retrains
    trail.record("retrain_trigger", RETRAIN_AUDIT_MODEL, details=details, reason=reason, actor=actor)
    try:
        code = subprocess.run(list(command), cwd=root, check=False).returncode
    except FileNotFoundError:
        raise UserError(
            f"{command[0]} is not on PATH; run `make setup` (it installs dvc into .venv)"
        ) from None
    trail.record(
        "retrain_trigger",
        RETRAIN_AUDIT_MODEL,
        details={**details, "returncode": code},
        reason=reason,
        outcome="ok" if code == 0 else "failed",
        actor=actor,
    )
    return code
