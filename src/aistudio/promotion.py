"""Gated promotion: a person's `promote` is held to the same gates as the pipeline's.

The gates are re-run from what the registry stored with the version (its evaluation summary and
gate set, tag `aistudio.evaluation`) against the *current* champion, so a version that passed when
it was evaluated but regresses against a champion promoted since is refused too. An override
needs `force` and a reason; refusals and overrides are both in the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aistudio.config import EvaluationConfig, GatesConfig
from aistudio.errors import UserError
from aistudio.evaluation.gates import PLUMBING, QUALITY, GateReport, check_gates
from aistudio.registry import CHAMPION, TAG_EVALUATION, ModelRegistry


def gates_by_set(evaluation: EvaluationConfig) -> dict[str, GatesConfig]:
    return {QUALITY: evaluation.gates, PLUMBING: evaluation.plumbing_gates}


def _stored_summary(registry: ModelRegistry, name: str, version: int) -> Mapping[str, Any]:
    raw = registry.show(name, version).tags.get(TAG_EVALUATION)
    try:
        summary = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        summary = None
    if not isinstance(summary, dict):
        raise UserError(
            f"registered model '{name}' v{version} has no stored evaluation ({TAG_EVALUATION} tag); "
            "register it through the evaluate stage, or pass --force --reason"
        )
    return summary


def recheck_gates(
    registry: ModelRegistry, name: str, version: int, gates: Mapping[str, GatesConfig]
) -> tuple[GateReport, int | None]:
    """The version's gates re-run against the current champion → (report, champion version)."""
    summary = _stored_summary(registry, name, version)
    gate_set = str(summary.get("gate_set", QUALITY))
    if gate_set not in gates:
        raise UserError(
            f"registered model '{name}' v{version}: unknown gate set '{gate_set}' (known: {', '.join(gates)})"
        )
    champion = registry.aliases(name).get(CHAMPION)
    champion_summary = None
    if champion is not None and champion != version:
        champion_summary = registry.champion_summary(name)
    return check_gates(summary, gates[gate_set], champion_summary, gate_set), champion


def _failures(report: GateReport) -> list[str]:
    return [f"{r.name}{f'[{r.domain}]' if r.domain else ''}: {r.reason}" for r in report.failures]


def promote_gated(
    registry: ModelRegistry,
    name: str,
    version: int,
    gates: Mapping[str, GatesConfig],
    force: bool = False,
    reason: str = "",
) -> str:
    """Make `version` champion if it passes its gates now; else refuse (UserError), or override if forced.

    Returns the outcome recorded: "ok" (passed) or "forced".
    """
    if force and not reason.strip():
        raise UserError('--force needs --reason "why this version goes out despite its gates"')
    try:
        report, champion = recheck_gates(registry, name, version, gates)
    except UserError:
        if not force:
            raise
        report, champion = None, registry.aliases(name).get(CHAMPION)
    failed = _failures(report) if report is not None else ["no stored evaluation"]
    details: dict[str, Any] = {
        "gate_report": f"models:/{name}/{version} tag {TAG_EVALUATION}",
        "gate_set": report.gate_set if report is not None else None,
        "champion_at_check": champion,
        "failed_gates": failed,
    }
    if report is not None and report.passed:
        registry.promote(name, version, reason or "passed every gate on re-check", "ok", details)
        return "ok"
    if not force:
        registry.audit.record("promote", name, version, details, reason, "refused")
        raise UserError(
            f"registered model '{name}' v{version} fails {len(failed)} gate(s): {'; '.join(failed)} "
            '— nothing changed; fix the model, or override with --force --reason "..."'
        )
    registry.promote(name, version, reason, "forced", details)
    return "forced"
