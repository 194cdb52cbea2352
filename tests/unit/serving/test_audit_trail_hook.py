"""Runtime adapter changes reach the registry's hash-chained audit trail, naming key ids only."""

from __future__ import annotations

from pathlib import Path

from aistudio.audit import AuditTrail, FileAuditStore
from aistudio.serving.audit_trail import trail_audit_hook


def test_loads_unloads_and_evictions_are_audited_with_source_digest_and_key_id(tmp_path: Path) -> None:
    trail = AuditTrail(FileAuditStore(tmp_path / "audit.jsonl"))
    seen: list[dict] = []
    hook = trail_audit_hook(trail, "aistudio-smollm2", "4", also=lambda e: seen.append(dict(e)))
    hook(
        {"action": "load", "adapter": "legal", "caller": "ops-admin", "source": "models:/x/2", "sha256": "ab"}
    )
    hook(
        {
            "action": "evict",
            "adapter": "code",
            "caller": "ops-admin",
            "reason": "LRU, to make room for 'legal'",
        }
    )
    hook({"action": "unload", "adapter": "legal", "caller": "ops-admin"})
    entries = trail.entries()
    assert [(e.action, e.details["server_action"]) for e in entries] == [
        ("adapter_load", "load"), ("adapter_unload", "evict"), ("adapter_unload", "unload"),
    ]  # fmt: skip
    load = entries[0]
    assert (load.model, load.version, load.actor["api_key_id"]) == ("aistudio-smollm2", 4, "ops-admin")
    assert (load.details["source"], load.details["sha256"], load.details["adapter"]) == (
        "models:/x/2",
        "ab",
        "legal",
    )
    assert entries[1].reason == "LRU, to make room for 'legal'"
    assert len(seen) == 3 and trail.verify().ok


def test_a_local_version_label_is_kept_in_the_details(tmp_path: Path) -> None:
    trail = AuditTrail(FileAuditStore(tmp_path / "audit.jsonl"))
    trail_audit_hook(trail, "aistudio-smollm2", "local")({"action": "unload", "adapter": "a", "caller": "k"})
    (entry,) = trail.entries()
    assert entry.version is None and entry.details["model_version"] == "local"
