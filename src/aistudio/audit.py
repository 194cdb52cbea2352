"""An append-only, hash-chained audit trail of registry and deploy actions.

Each entry is one JSON line: who (a resolved identity, never a secret), when (UTC), what (action,
model, version, details such as the manifest sha256, overlay or image digest), why (a gate report
reference or the given reason) and the outcome. Its `hash` is the sha256 of the entry's canonical
JSON without `hash`, and that JSON includes `prev`, the previous entry's hash: editing, deleting
or reordering one entry breaks the chain at that entry or the next, and `verify` names it.

A chain alone cannot show that its *last* entries were cut off, so the store also keeps the head
(the last hash and sequence number) apart from the log, and a local mirror keeps a copy the store
must extend: a log rewritten wholesale with fresh hashes no longer starts with the mirror's lines.

Stored beside the registry — the `audit.jsonl` artifact of one dedicated MLflow run, the head in
that run's tags — so every user of a shared tracking server appends to, and reads, the same log.
Writes are read-modify-write of one artifact: two writers at the same instant can lose an entry,
which the next `verify` reports as a head/sequence mismatch rather than hiding it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aistudio.errors import UserError

AUDIT_EXPERIMENT = "aistudio-audit"
AUDIT_RUN_NAME = "audit-trail"
AUDIT_ARTIFACT = "audit.jsonl"
TAG_AUDIT_RUN = "aistudio.audit_trail"
TAG_HEAD_HASH = "aistudio.audit.head_hash"
TAG_HEAD_SEQ = "aistudio.audit.head_seq"
GENESIS = "0" * 64
# Set in the pod by the downward API (spec.serviceAccountName); the token itself is never read.
SERVICE_ACCOUNT_ENV = "AISTUDIO_SERVICE_ACCOUNT"
POD_NAMESPACE_ENV = "AISTUDIO_POD_NAMESPACE"
# The id (never the secret) of the API key a server-side action was authorised with.
API_KEY_ID_ENV = "AISTUDIO_API_KEY_ID"

# What the log records (issue 14 item 1); an unknown action is a bug in the caller.
ACTIONS = frozenset(
    {
        "register",
        "gate_decision",
        "promote",
        "rollback",
        "alias_move",
        "deploy_render",
        "deploy_apply",
        "deploy_promote",
        "deploy_abort",
        "deploy_rollback",
        "adapter_load",
        "adapter_unload",
        "retrain_trigger",
    }
)
OUTCOMES = frozenset({"ok", "refused", "forced", "failed"})


# --- identity -------------------------------------------------------------------------------------


def _git_identity(cwd: Path | None) -> str | None:
    def config(key: str) -> str:
        try:
            done = subprocess.run(
                ["git", "config", "--get", key], cwd=cwd, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    name, email = config("user.name"), config("user.email")
    if not name and not email:
        return None
    return f"{name} <{email}>" if email else name


def resolve_identity(
    env: Mapping[str, str] | None = None, api_key_id: str | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """Who is acting: OS user, git identity, k8s service account and API-key id, where known."""
    env = os.environ if env is None else env
    who: dict[str, str] = {}
    try:
        who["os_user"] = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        who["os_user"] = f"uid:{os.getuid()}"
    git = _git_identity(cwd)
    if git:
        who["git"] = git
    if env.get(SERVICE_ACCOUNT_ENV):
        namespace = env.get(POD_NAMESPACE_ENV)
        account = env[SERVICE_ACCOUNT_ENV]
        who["k8s_service_account"] = f"system:serviceaccount:{namespace}:{account}" if namespace else account
    key = api_key_id or env.get(API_KEY_ID_ENV)
    if key:
        who["api_key_id"] = key
    return who


def describe_actor(actor: Mapping[str, str]) -> str:
    return actor.get("git") or actor.get("k8s_service_account") or actor.get("api_key_id") or actor["os_user"]


# --- entries --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    actor: dict[str, str]
    action: str
    model: str
    version: int | None
    details: dict[str, Any]
    reason: str
    outcome: str
    prev: str
    hash: str = ""

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("hash")
        return data

    def computed_hash(self) -> str:
        canonical = json.dumps(self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)


_FIELDS = set(AuditEntry.__dataclass_fields__)


def parse_log(text: str, where: str) -> list[AuditEntry]:
    """JSONL → entries; a line that is not an entry is a UserError naming its line."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or set(data) != _FIELDS:
                raise ValueError(f"fields {sorted(data) if isinstance(data, dict) else type(data).__name__}")
            entries.append(AuditEntry(**data))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}:{number}: not an audit entry ({exc}); the log was edited") from None
    return entries


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    entries: Sequence[AuditEntry], head: Head | None, mirror: Sequence[AuditEntry] = ()
) -> Verification:
    """The first broken entry (edited, deleted, reordered), a cut tail, or a divergence from the mirror."""
    prev, problems = GENESIS, []
    for index, entry in enumerate(entries):
        where = f"entry {index + 1} (seq {entry.seq}, {entry.action} {entry.model})"
        if entry.computed_hash() != entry.hash:
            problems.append(f"{where}: its content does not match its hash — the entry was edited")
        elif entry.seq != index + 1:
            problems.append(f"{where}: expected seq {index + 1} — an entry before it was deleted or moved")
        elif entry.prev != prev:
            problems.append(
                f"{where}: does not follow the entry before it — entries were deleted or reordered"
            )
        if problems:
            return Verification(len(entries), problems)
        prev = entry.hash
    last = Head(len(entries), prev)
    if head is not None and head != last:
        problems.append(
            f"the log ends at seq {last.seq} but its recorded head is seq {head.seq} "
            f"({head.hash[:12]}) — entries were removed from the end or a write was lost"
        )
    for index, kept in enumerate(mirror):
        if index >= len(entries) or entries[index].hash != kept.hash:
            problems.append(
                f"entry {index + 1} (seq {kept.seq}): the stored log differs from the local mirror — "
                "the stored log was rewritten"
            )
            break
    return Verification(len(entries), problems)


def new_entry(
    previous: Sequence[AuditEntry],
    action: str,
    model: str,
    version: int | None,
    actor: Mapping[str, str],
    details: Mapping[str, Any] | None = None,
    reason: str = "",
    outcome: str = "ok",
    now: datetime | None = None,
) -> AuditEntry:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    entry = AuditEntry(
        seq=len(previous) + 1,
        ts=when.replace("+00:00", "Z"),
        actor=dict(actor),
        action=action,
        model=model,
        version=None if version is None else int(version),
        details=dict(details or {}),
        reason=reason,
        outcome=outcome,
        prev=previous[-1].hash if previous else GENESIS,
    )
    return AuditEntry(**{**asdict(entry), "hash": entry.computed_hash()})


# --- storage --------------------------------------------------------------------------------------


class AuditStore(Protocol):
    def read(self) -> tuple[list[AuditEntry], Head | None]: ...

    def write(self, entries: Sequence[AuditEntry]) -> None: ...


def default_artifact_location(tracking_uri: str) -> str | None:
    """Beside a sqlite store's file (MLflow would use ./mlruns of whatever directory a tool runs in);
    None — the server's default — for every other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()


class MlflowAuditStore:
    """The log as the `audit.jsonl` artifact of one run in the `aistudio-audit` experiment."""

    def __init__(self, client: Any, artifact_location: str | None = None) -> None:
        self.client = client
        self.artifact_location = artifact_location
        self._run_id: str | None = None

    def _find_run(self, create: bool) -> str | None:
        if self._run_id:
            return self._run_id
        experiment = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
        if experiment is None:
            if not create:
                return None
            experiment_id = self.client.create_experiment(
                AUDIT_EXPERIMENT, artifact_location=self.artifact_location, tags={TAG_AUDIT_RUN: "true"}
            )
        else:
            experiment_id = experiment.experiment_id
        runs = self.client.search_runs(
            [experiment_id], f"tags.`{TAG_AUDIT_RUN}` = 'true'", order_by=["attributes.start_time ASC"]
        )
        if runs:
            self._run_id = runs[0].info.run_id
        elif create:
            run = self.client.create_run(experiment_id, tags={TAG_AUDIT_RUN: "true"}, run_name=AUDIT_RUN_NAME)
            # A holder of artifacts, not a job: FINISHED, so the UI does not show it running forever.
            self.client.set_terminated(run.info.run_id)
            self._run_id = run.info.run_id
        return self._run_id

    def read(self) -> tuple[list[AuditEntry], Head | None]:
        run_id = self._find_run(create=False)
        if run_id is None:
            return [], None
        tags = self.client.get_run(run_id).data.tags
        head = Head(int(tags[TAG_HEAD_SEQ]), tags[TAG_HEAD_HASH]) if TAG_HEAD_HASH in tags else None
        if not any(f.path == AUDIT_ARTIFACT for f in self.client.list_artifacts(run_id)):
            return [], head
        with tempfile.TemporaryDirectory(prefix="aistudio-audit-") as scratch:
            local = self.client.download_artifacts(run_id, AUDIT_ARTIFACT, scratch)
            text = Path(local).read_text(encoding="utf-8")
        return parse_log(text, f"run {run_id} artifact {AUDIT_ARTIFACT}"), head

    def write(self, entries: Sequence[AuditEntry]) -> None:
        run_id = self._find_run(create=True)
        assert run_id is not None
        with tempfile.TemporaryDirectory(prefix="aistudio-audit-") as scratch:
            path = Path(scratch) / AUDIT_ARTIFACT
            path.write_text("".join(e.to_line() + "\n" for e in entries), encoding="utf-8")
            self.client.log_artifact(run_id, str(path))
        # The head after the log: a crash in between leaves a log one entry ahead of its head,
        # which verify reports; the other order would leave a head pointing at nothing.
        self.client.set_tag(run_id, TAG_HEAD_SEQ, str(len(entries)))
        self.client.set_tag(run_id, TAG_HEAD_HASH, entries[-1].hash if entries else GENESIS)


class FileAuditStore:
    """A JSONL file; the head is the file's own last line (used for the local mirror and in tests)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> tuple[list[AuditEntry], Head | None]:
        if not self.path.exists():
            return [], None
        return parse_log(self.path.read_text(encoding="utf-8"), str(self.path)), None

    def write(self, entries: Sequence[AuditEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        scratch.write_text("".join(e.to_line() + "\n" for e in entries), encoding="utf-8")
        os.replace(scratch, self.path)


class AuditTrail:
    """Append to and verify the stored log, keeping the local mirror in step."""

    def __init__(self, store: AuditStore, mirror: Path | None = None) -> None:
        self.store = store
        self.mirror = FileAuditStore(mirror) if mirror is not None else None

    def _mirror_entries(self) -> list[AuditEntry]:
        return self.mirror.read()[0] if self.mirror else []

    def verify(self) -> Verification:
        entries, head = self.store.read()
        return verify_chain(entries, head, self._mirror_entries())

    def require_intact(self) -> None:
        """Raise before an action that would be recorded on a log that does not verify."""
        check = self.verify()
        if not check.ok:
            raise UserError(
                f"audit log does not verify ({check.problems[0]}); nothing changed — "
                "investigate with `scripts/registry.py audit verify`"
            )

    def entries(self, model: str | None = None) -> list[AuditEntry]:
        """The stored log (refreshing the mirror when it verifies), optionally one model's entries."""
        entries, head = self.store.read()
        if self.mirror and verify_chain(entries, head, self._mirror_entries()).ok:
            self.mirror.write(entries)
        return [e for e in entries if model is None or e.model == model]

    def record(
        self,
        action: str,
        model: str,
        version: int | None = None,
        details: Mapping[str, Any] | None = None,
        reason: str = "",
        outcome: str = "ok",
        actor: Mapping[str, str] | None = None,
    ) -> AuditEntry:
        """Append one entry. A log that does not verify is never extended: that would bury the break."""
        entries, head = self.store.read()
        check = verify_chain(entries, head, self._mirror_entries())
        if not check.ok:
            raise UserError(
                f"audit log does not verify ({check.problems[0]}); nothing recorded — "
                "investigate with `scripts/registry.py audit verify`"
            )
        entry = new_entry(
            entries, action, model, version, actor or resolve_identity(), details, reason, outcome
        )
        written = [*entries, entry]
        self.store.write(written)
        if self.mirror:
            self.mirror.write(written)
        return entry


def format_entry(entry: AuditEntry) -> str:
    version = f" v{entry.version}" if entry.version is not None else ""
    why = f"  why: {entry.reason}" if entry.reason else ""
    extra = " ".join(f"{k}={v}" for k, v in sorted(entry.details.items()))
    return (
        f"{entry.seq:>4} {entry.ts} {describe_actor(entry.actor)}: {entry.action} {entry.model}{version} "
        f"[{entry.outcome}]{why}" + (f"  ({extra})" if extra else "")
    )


def format_log(entries: Iterable[AuditEntry]) -> str:
    return "\n".join(format_entry(e) for e in entries)
