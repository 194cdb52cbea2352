"""The audit trail's hash chain: every kind of quiet edit is found, and named by its entry."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aistudio.audit import (
    API_KEY_ID_ENV,
    GENESIS,
    POD_NAMESPACE_ENV,
    SERVICE_ACCOUNT_ENV,
    AuditTrail,
    FileAuditStore,
    Head,
    format_entry,
    new_entry,
    parse_log,
    resolve_identity,
    verify_chain,
)
from aistudio.errors import UserError

ACTOR = {"os_user": "ana", "git": "Ana <ana@example.com>"}


def _chain(n: int = 4):
    entries = []
    for i in range(n):
        action = ("register", "promote", "rollback", "deploy_apply")[i % 4]
        when = datetime(2026, 12, 1, 12, i, tzinfo=UTC)
        entries.append(
            new_entry(entries, action, "aistudio-smollm2", i + 1, ACTOR, {"n": i}, f"r{i}", now=when)
        )
    return entries


def test_a_fresh_chain_verifies_and_links_each_entry_to_the_one_before() -> None:
    entries = _chain()
    assert verify_chain(entries, Head(4, entries[-1].hash)).ok
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert entries[0].ts == "2026-12-01T12:00:00.000Z"


def test_an_edited_entry_is_named_as_edited() -> None:
    entries = _chain()
    entries[1] = replace(entries[1], reason="nobody asked")
    [problem] = verify_chain(entries, None).problems
    assert problem.startswith(
        "entry 2 (seq 2, promote aistudio-smollm2): its content does not match its hash"
    )


def test_an_edit_with_a_recomputed_hash_breaks_the_next_entry() -> None:
    entries = _chain()
    forged = replace(entries[1], version=9)
    entries[1] = replace(forged, hash=forged.computed_hash())
    [problem] = verify_chain(entries, None).problems
    assert problem.startswith(
        "entry 3 (seq 3, rollback aistudio-smollm2): does not follow the entry before it"
    )


def test_a_deleted_entry_is_found_at_the_gap() -> None:
    entries = _chain()
    del entries[1]
    [problem] = verify_chain(entries, None).problems
    assert problem.startswith("entry 2 (seq 3, rollback aistudio-smollm2): expected seq 2")


def test_reordered_entries_are_found() -> None:
    entries = _chain()
    entries[1], entries[2] = entries[2], entries[1]
    assert verify_chain(entries, None).problems[0].startswith("entry 2 (seq 3, rollback aistudio-smollm2)")


def test_a_cut_tail_is_found_by_the_recorded_head() -> None:
    entries = _chain()
    [problem] = verify_chain(entries[:3], Head(4, entries[-1].hash)).problems
    assert problem.startswith("the log ends at seq 3 but its recorded head is seq 4")


def test_a_log_rewritten_wholesale_is_found_by_the_mirror() -> None:
    kept = _chain()
    rewritten = []
    for e in kept:
        rewritten.append(
            new_entry(rewritten, e.action, e.model, e.version, e.actor, e.details, "new", now=None)
        )
    result = verify_chain(rewritten, Head(4, rewritten[-1].hash), mirror=kept)
    assert result.problems == [
        "entry 1 (seq 1): the stored log differs from the local mirror — the stored log was rewritten"
    ]


def test_a_line_that_is_no_entry_names_its_line(tmp_path: Path) -> None:
    good = _chain(1)[0].to_line()
    with pytest.raises(UserError, match=r"^audit\.jsonl:2: not an audit entry"):
        parse_log(good + "\n" + json.dumps({"seq": 2}) + "\n", "audit.jsonl")


def test_a_trail_refuses_to_extend_a_broken_log(tmp_path: Path) -> None:
    store = FileAuditStore(tmp_path / "log.jsonl")
    trail = AuditTrail(store, mirror=tmp_path / "mirror.jsonl")
    trail.record("register", "m", 1, actor=ACTOR)
    trail.record("promote", "m", 1, reason="passed", actor=ACTOR)
    lines = store.path.read_text().splitlines()
    store.path.write_text(lines[0].replace('"m"', '"other"') + "\n" + lines[1] + "\n")
    before = store.path.read_text()
    with pytest.raises(UserError, match=r"^audit log does not verify \(entry 1 .*edited\); nothing recorded"):
        trail.record("rollback", "m", 1, reason="x", actor=ACTOR)
    assert store.path.read_text() == before
    assert [e.action for e in FileAuditStore(tmp_path / "mirror.jsonl").read()[0]] == ["register", "promote"]


def test_unknown_actions_and_outcomes_are_bugs_not_entries() -> None:
    with pytest.raises(ValueError, match="unknown audit action 'delete'"):
        new_entry([], "delete", "m", None, ACTOR)
    with pytest.raises(ValueError, match="unknown audit outcome 'maybe'"):
        new_entry([], "promote", "m", None, ACTOR, outcome="maybe")


def test_identity_names_the_service_account_and_key_id_never_a_secret(tmp_path: Path) -> None:
    env = {SERVICE_ACCOUNT_ENV: "ci-deployer", POD_NAMESPACE_ENV: "aistudio", API_KEY_ID_ENV: "ops-1"}
    who = resolve_identity(env, cwd=tmp_path)
    assert who["k8s_service_account"] == "system:serviceaccount:aistudio:ci-deployer"
    assert who["api_key_id"] == "ops-1"
    assert who["os_user"]
    assert resolve_identity({}, api_key_id="k-9", cwd=tmp_path)["api_key_id"] == "k-9"


def test_a_printed_entry_says_who_did_what_to_which_version_and_why() -> None:
    entry = _chain(2)[1]
    assert format_entry(entry) == (
        "   2 2026-12-01T12:01:00.000Z Ana <ana@example.com>: "
        "promote aistudio-smollm2 v2 [ok]  why: r1  (n=1)"
    )
