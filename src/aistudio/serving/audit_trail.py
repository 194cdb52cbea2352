"""Runtime adapter loads, unloads and evictions → the registry's audit trail (aistudio.audit).

The adapter pool calls its audit hook after every change; `trail_audit_hook` appends each to the
hash-chained trail that registry and deploy actions go to, so "who put which adapter into the
production server, from where, and when" is answered in one place: the actor is the API key's id
(never the key) with the pod's service account, the details the adapter's source and sha256.
The trail's write is synchronous on an admin route that already takes seconds (loading weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aistudio.audit import AuditTrail, resolve_identity
from aistudio.serving.adapters import AuditHook

TRAIL_ACTIONS = {"load": "adapter_load", "unload": "adapter_unload", "evict": "adapter_unload"}


def trail_audit_hook(trail: AuditTrail, model: str, version: str, also: AuditHook | None = None) -> AuditHook:
    """A hook recording each adapter change of the server for `model` (registered name) `version`."""
    number = int(version) if version.isdigit() else None

    def record(event: Mapping[str, Any]) -> None:
        if also is not None:
            also(event)
        action = TRAIL_ACTIONS.get(str(event.get("action")))
        if action is None:
            return
        details = {k: v for k, v in event.items() if k not in ("action", "caller", "reason")}
        details["server_action"] = event["action"]
        if number is None:
            details["model_version"] = version
        trail.record(
            action,
            model,
            number,
            details,
            reason=str(event.get("reason") or f"{event['action']} requested through the API"),
            actor=resolve_identity(api_key_id=str(event.get("caller") or "") or None),
        )

    return record
