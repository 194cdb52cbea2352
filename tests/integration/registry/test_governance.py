"""Gated promotion and the audit trail on a real MLflow sqlite store.

Versions carry gate summaries as the evaluate stage stores them (tag `aistudio.evaluation`); the
promotion re-runs the gates against the current champion. The audit log is tampered with where
it lives — the artifact file of the audit run — and `registry.py audit verify` must say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aistudio.audit import AUDIT_ARTIFACT, AUDIT_EXPERIMENT
from aistudio.config import GatesConfig
from aistudio.errors import UserError
from aistudio.evaluation.gates import PLUMBING, QUALITY
from aistudio.promotion import promote_gated
from aistudio.registry import TAG_EVALUATION, TAG_MANIFEST_SHA256, ModelRegistry

pytestmark = pytest.mark.slow

NAME = "aistudio-gov"
REPO_ROOT = Path(__file__).resolve().parents[3]
GATES = {QUALITY: GatesConfig(), PLUMBING: GatesConfig()}


def _summary(perplexity: float) -> dict[str, Any]:
    return {
        "domains": {"general": {"perplexity": perplexity, "p95_s": 0.1}},
        "base": {"general": {"perplexity": 12.0}},
        "behaviour": {"general": {"invariance_share": 1.0, "functionality_pass_rate": 1.0}},
        "quantized_perplexity_increase": 0.0,
        "gate_set": QUALITY,
    }


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", audit_mirror=tmp_path / "mirror.jsonl")


def _version(registry: ModelRegistry, perplexity: float) -> int:
    client = registry.client
    experiment = client.get_experiment_by_name("gov-test")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("gov-test")
    run = client.create_run(experiment_id)
    try:
        client.get_registered_model(NAME)
    except Exception:
        client.create_registered_model(NAME)
    tags = {TAG_EVALUATION: json.dumps(_summary(perplexity)), TAG_MANIFEST_SHA256: f"{int(perplexity):064d}"}
    mv = client.create_model_version(NAME, f"{run.info.artifact_uri}/bundle", run.info.run_id, tags=tags)
    return int(mv.version)


def _cli(registry: ModelRegistry, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    common = ["--tracking-uri", registry.tracking_uri, "--audit-mirror", str(tmp_path / "mirror.jsonl")]
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "registry.py"), *args, *common],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _log_file(registry: ModelRegistry) -> Path:
    client = registry.client
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id])
    return Path(run.info.artifact_uri.removeprefix("file://")) / AUDIT_ARTIFACT


def test_a_version_that_regresses_against_the_champion_is_refused_unless_forced_with_a_reason(
    registry: ModelRegistry,
) -> None:
    good, worse = _version(registry, 10.0), _version(registry, 12.0)
    assert promote_gated(registry, NAME, good, GATES) == "ok"
    assert registry.aliases(NAME) == {"champion": good}

    with pytest.raises(UserError) as refused:
        promote_gated(registry, NAME, worse, GATES)
    [line] = refused.value.problems
    assert line.startswith(
        f"registered model '{NAME}' v{worse} fails 1 gate(s): max_regression_vs_champion: "
    )
    assert "rise +20.00% > 5.00%" in line and line.endswith('override with --force --reason "..."')
    assert registry.aliases(NAME) == {"champion": good}
    with pytest.raises(UserError, match="^--force needs --reason"):
        promote_gated(registry, NAME, worse, GATES, force=True)

    assert (
        promote_gated(registry, NAME, worse, GATES, force=True, reason="latency fix for incident 7")
        == "forced"
    )
    assert registry.aliases(NAME) == {"champion": worse, "previous-champion": good}
    trail = registry.audit.entries(NAME)
    assert [(e.action, e.version, e.outcome) for e in trail] == [
        ("promote", good, "ok"),
        ("promote", worse, "refused"),
        ("promote", worse, "forced"),
    ]
    forced = trail[-1]
    assert forced.reason == "latency fix for incident 7"
    assert forced.details["champion_at_check"] == good and forced.details["from_champion"] == good
    assert forced.details["failed_gates"][0].startswith("max_regression_vs_champion: ")
    assert forced.details["gate_report"] == f"models:/{NAME}/{worse} tag {TAG_EVALUATION}"
    assert forced.details["manifest_sha256"] == f"{12:064d}"
    assert forced.actor["os_user"]


def test_audit_answers_who_promoted_what_when_and_why(registry: ModelRegistry, tmp_path: Path) -> None:
    version = _version(registry, 10.0)
    promoted = _cli(
        registry, tmp_path, "promote", NAME, "--version", str(version), "--reason", "weekly release"
    )
    assert promoted.returncode == 0, promoted.stderr
    shown = _cli(registry, tmp_path, "audit", "--model", NAME)
    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.strip().splitlines()
    assert f": promote {NAME} v{version} [ok]  why: weekly release" in line
    assert line.split()[1].endswith("Z")  # UTC
    [entry] = [json.loads(x) for x in _cli(registry, tmp_path, "audit", "--json").stdout.splitlines()]
    assert entry["action"] == "promote" and entry["reason"] == "weekly release"
    assert _cli(registry, tmp_path, "audit", "--model", "someone-else").stdout.strip() == "(no entries)"
    intact = _cli(registry, tmp_path, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == "audit log: 1 entry, hash chain intact"


def _three_entries(registry: ModelRegistry) -> Path:
    v1, v2 = _version(registry, 10.0), _version(registry, 9.0)
    promote_gated(registry, NAME, v1, GATES)
    promote_gated(registry, NAME, v2, GATES)
    registry.rollback(NAME, reason="v2 fails on the canary")
    return _log_file(registry)


def _edit(lines: list[str]) -> list[str]:
    entry = json.loads(lines[1])
    entry["reason"] = "nothing to see"
    return [lines[0], json.dumps(entry, sort_keys=True), lines[2]]


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_edit, "entry 2 (seq 2, promote aistudio-gov): its content does not match its hash"),
        (lambda lines: [lines[0], lines[2]], "entry 2 (seq 3, rollback aistudio-gov): expected seq 2"),
        (lambda lines: [lines[0], lines[2], lines[1]], "entry 2 (seq 3, rollback aistudio-gov)"),
        (lambda lines: lines[:2], "the log ends at seq 2 but its recorded head is seq 3"),
    ],
    ids=["edit", "delete", "reorder", "truncate"],
)
def test_audit_verify_names_the_first_broken_entry_and_blocks_further_moves(
    registry: ModelRegistry, tmp_path: Path, tamper, named: str
) -> None:
    log = _three_entries(registry)
    assert registry.audit.verify().ok and registry.audit.verify().entries == 3

    log.write_text("\n".join(tamper(log.read_text().splitlines())) + "\n")
    broken = _cli(registry, tmp_path, "audit", "verify")
    assert broken.returncode == 2
    [line] = broken.stderr.strip().splitlines()
    assert line.startswith(f"error: audit log: {named}")

    aliases = registry.aliases(NAME)
    with pytest.raises(UserError, match=r"^audit log does not verify .*nothing changed"):
        registry.rollback(NAME, reason="x") if "previous-champion" in aliases else registry.promote(NAME, 2)
    assert registry.aliases(NAME) == aliases


def test_a_stored_log_rewritten_with_fresh_hashes_differs_from_the_mirror(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    from aistudio.audit import AuditTrail, MlflowAuditStore, new_entry

    log = _three_entries(registry)
    forged: list = []
    for e in registry.audit.store.read()[0][:2]:
        forged.append(new_entry(forged, e.action, e.model, e.version, e.actor, e.details, "rewritten"))
    MlflowAuditStore(registry.client).write(forged)  # head tag rewritten as well
    assert log.read_text().count("rewritten") == 2
    problems = AuditTrail(registry.audit.store, tmp_path / "mirror.jsonl").verify().problems
    assert problems == [
        "entry 1 (seq 1): the stored log differs from the local mirror — the stored log was rewritten"
    ]
