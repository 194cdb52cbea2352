"""The model registry over MLflow: register a serving bundle, move aliases, promote, roll back, download.

Aliases, not stages (stages are deprecated in MLflow 3):
  challenger          the version registered last, waiting for a promotion decision
  champion            the version the server loads (`models:/<name>@champion`)
  previous-champion   the champion before the last promotion; `rollback` returns to it

A bundle (aistudio.bundle) is logged as plain artifacts of the evaluating run under `bundle/`, and
the model version's source is that artifact directory. Not `mlflow.transformers.log_model`: it
reloads a PeftModel with random adapter weights. Not `register_model("runs:/...")`: in MLflow 3 it
looks for a LoggedModel, which plain artifacts are not. Every version is tagged with the sha256 of
its manifest, so a download is checked against what was registered, not only against itself.

Every write (register, gate decision, promote, rollback) is appended to the audit trail
(aistudio.audit) kept in the same tracking store; a log that does not verify blocks the write.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aistudio.audit import AuditTrail, MlflowAuditStore, default_artifact_location
from aistudio.bundle import BUNDLE_FORMAT, MANIFEST, Manifest, sha256_file, verify_bundle
from aistudio.errors import UserError
from aistudio.tracking_store import check_reachable

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
BUNDLE_ARTIFACT = "bundle"

TAG_EVALUATION = "aistudio.evaluation"
TAG_MANIFEST_SHA256 = "aistudio.manifest_sha256"
TAG_PROMOTION = "aistudio.promotion"
# MLflow's limit on a model version tag value (mlflow/utils/validation.py).
MAX_TAG_VALUE_CHARS = 100_000

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))/?$")
_USER_FIXABLE = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS"}


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    aliases: tuple[str, ...]
    source: str
    run_id: str | None
    tags: dict[str, str]
    created_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RegisteredModelInfo:
    name: str
    versions: tuple[int, ...]
    aliases: dict[str, int]
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_model_uri(uri: str) -> tuple[str, int | None, str | None]:
    """'models:/<name>@<alias>' or 'models:/<name>/<version>' → (name, version, alias)."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise UserError(f"model URI '{uri}' must be models:/<name>@<alias> or models:/<name>/<version>")
    version = match["version"]
    return match["name"], int(version) if version else None, match["alias"]


def _message(exc: MlflowException) -> str:
    return re.sub(r"^[A-Z_]+: ", "", exc.message)


def version_tags(manifest: Manifest, manifest_sha256: str) -> dict[str, str]:
    """What a model version carries: the bundle's identity, lineage and evaluation summary."""
    evaluation = json.dumps(manifest.evaluation, sort_keys=True)
    if len(evaluation) > MAX_TAG_VALUE_CHARS:
        raise UserError(
            f"bundle evaluation summary is {len(evaluation)} characters; MLflow keeps at most "
            f"{MAX_TAG_VALUE_CHARS} per tag — put per-sample results in a run artifact, not the summary"
        )
    lineage = manifest.lineage
    return {
        "aistudio.bundle_format": BUNDLE_FORMAT,
        "aistudio.model": manifest.model,
        "aistudio.family": manifest.family,
        "aistudio.variant": manifest.variant,
        "aistudio.adapters": ",".join(manifest.adapters),
        "aistudio.git_commit": lineage.git_commit,
        "aistudio.data_hash": lineage.data_hash,
        "aistudio.params_hash": lineage.params_hash,
        "aistudio.run_ids": json.dumps(lineage.run_ids, sort_keys=True),
        TAG_EVALUATION: evaluation,
        TAG_MANIFEST_SHA256: manifest_sha256,
    }


class ModelRegistry:
    """Registered models of one MLflow tracking store, addressed by name, version and alias."""

    def __init__(self, tracking_uri: str, audit_mirror: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        store = MlflowAuditStore(self.client, default_artifact_location(tracking_uri))
        self.audit = AuditTrail(store, audit_mirror)

    # --- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """MLflow's 'not found' / 'invalid' answers become one-line UserErrors naming `what`.

        Reachability is checked on every entry, not once per object: a server that went down
        since the last call must fail in seconds, not after MLflow's minutes of retries.
        """
        check_reachable(self.tracking_uri)
        try:
            yield
        except MlflowException as exc:
            if exc.error_code in _USER_FIXABLE:
                raise UserError(f"{what}: {_message(exc)}") from None
            if "failed with exception" in exc.message:  # the REST client gave up on the connection
                unreachable = f"MLflow tracking server at {self.tracking_uri} is unreachable"
                raise UserError(f"{unreachable}: {_message(exc)}") from None
            raise

    def _model_version(self, name: str, version_or_alias: int | str) -> Any:
        ref = str(version_or_alias)
        with self._errors(f"registered model '{name}'"):
            if ref.isdigit():
                return self.client.get_model_version(name, ref)
            return self.client.get_model_version_by_alias(name, ref)

    # --- reading ---------------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        with self._errors(f"registered model '{name}'"):
            model = self.client.get_registered_model(name)
        return {alias: int(version) for alias, version in sorted(model.aliases.items())}

    def _versions(self, name: str) -> list[Any]:
        found, token = [], None
        while True:
            page = self.client.search_model_versions(f"name = '{name}'", max_results=200, page_token=token)
            found += list(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda mv: int(mv.version))

    def list_models(self) -> list[RegisteredModelInfo]:
        models, token = [], None
        with self._errors(f"MLflow registry at {self.tracking_uri}"):
            while True:
                page = self.client.search_registered_models(max_results=100, page_token=token)
                models += list(page)
                token = page.token
                if not token:
                    break
            return [
                RegisteredModelInfo(
                    name=m.name,
                    versions=tuple(int(mv.version) for mv in self._versions(m.name)),
                    aliases={a: int(v) for a, v in sorted(m.aliases.items())},
                    tags=dict(m.tags),
                )
                for m in sorted(models, key=lambda m: m.name)
            ]

    def show(self, name: str, version_or_alias: int | str) -> ModelVersionInfo:
        mv = self._model_version(name, version_or_alias)
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            aliases=tuple(sorted(mv.aliases)),
            source=mv.source,
            run_id=mv.run_id,
            tags=dict(sorted(mv.tags.items())),
            created_ms=int(mv.creation_timestamp or 0),
        )

    def champion_summary(self, name: str) -> Mapping[str, Any] | None:
        """The evaluation summary registered with the champion; None when there is no champion yet."""
        check_reachable(self.tracking_uri)
        try:
            champion = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code in _USER_FIXABLE:  # no such model, or no champion alias yet
                return None
            raise
        return json.loads(champion.tags.get(TAG_EVALUATION, "{}"))

    # --- writing ---------------------------------------------------------------------------------

    def register_bundle(
        self,
        registered_name: str,
        bundle_dir: Path,
        run_id: str,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> int:
        """Log the bundle under the run's `bundle/` artifacts, create a version there, alias it challenger.

        The bundle is verified and the store's reachability checked before anything is written,
        so a broken bundle or a down server leaves no artifacts and no registered model behind.
        """
        bundle_dir = Path(bundle_dir)
        manifest = verify_bundle(bundle_dir)
        new_tags = {**(tags or {}), **version_tags(manifest, sha256_file(bundle_dir / MANIFEST))}
        with self._errors(f"run {run_id}"):
            self.audit.require_intact()
            run = self.client.get_run(run_id)
            if self.client.list_artifacts(run_id, BUNDLE_ARTIFACT):
                raise UserError(
                    f"run {run_id} already holds a {BUNDLE_ARTIFACT}/ artifact; "
                    "register each bundle from its own run"
                )
        with self._errors(f"registered model '{registered_name}'"):
            self.client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT)
            created = self._ensure_registered_model(registered_name, tags or {})
            try:
                version = self.client.create_model_version(
                    registered_name,
                    source=f"{run.info.artifact_uri.rstrip('/')}/{BUNDLE_ARTIFACT}",
                    run_id=run_id,
                    tags=new_tags,
                    description=description
                    or f"{manifest.model} {manifest.variant} bundle, adapters: "
                    f"{', '.join(manifest.adapters) or 'none'}",
                )
            except BaseException:
                if created:  # no empty registered model left behind by a failed first version
                    self.client.delete_registered_model(registered_name)
                raise
            self.client.set_registered_model_alias(registered_name, CHALLENGER, str(version.version))
            self.audit.record(
                "register",
                registered_name,
                int(version.version),
                {
                    "manifest_sha256": new_tags[TAG_MANIFEST_SHA256],
                    "run_id": run_id,
                    "variant": manifest.variant,
                    "alias": CHALLENGER,
                },
            )
        return int(version.version)

    def describe(self, name: str, description: str, version: int | None = None) -> None:
        """Set the markdown description MLflow shows for the registered model, or for one version."""
        with self._errors(f"registered model '{name}'"):
            if version is None:
                self.client.update_registered_model(name, description=description)
            else:
                self.client.update_model_version(name, str(version), description=description)

    def _ensure_registered_model(self, name: str, tags: Mapping[str, str]) -> bool:
        try:
            self.client.get_registered_model(name)
            return False
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        self.client.create_registered_model(name, tags=dict(tags))
        return True

    def promote(
        self,
        name: str,
        version: int,
        reason: str = "",
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """champion → `version`; the old champion becomes previous-champion; a challenger alias on it goes.

        Recorded in the audit trail with `reason`, `outcome` ("forced" for an override) and `details`.
        """
        version = int(self._model_version(name, version).version)
        aliases = self.aliases(name)
        current = aliases.get(CHAMPION)
        with self._errors(f"registered model '{name}'"):
            self.audit.require_intact()
            if current is not None and current != version:
                # previous-champion first: a crash in between leaves the old champion serving.
                self.client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(current))
            self.client.set_registered_model_alias(name, CHAMPION, str(version))
            if aliases.get(CHALLENGER) == version:
                self.client.delete_registered_model_alias(name, CHALLENGER)
            moved = {"from_champion": current, "manifest_sha256": self._manifest_sha256(name, version)}
            self.audit.record("promote", name, version, {**moved, **(details or {})}, reason, outcome)

    def _manifest_sha256(self, name: str, version: int) -> str:
        return self.client.get_model_version(name, str(version)).tags.get(TAG_MANIFEST_SHA256, "")

    def rollback(self, name: str, reason: str) -> int:
        """champion ← previous-champion, which is then cleared: a second rollback needs a new promotion.

        A rollback is an incident decision: it needs a reason, recorded in the audit trail.
        """
        if not reason.strip():
            raise UserError(f"rollback of '{name}' needs a reason: pass --reason \"why the champion goes\"")
        aliases = self.aliases(name)
        previous = aliases.get(PREVIOUS_CHAMPION)
        if previous is None:
            shown = ", ".join(f"{a}=v{v}" for a, v in aliases.items()) or "none"
            raise UserError(
                f"registered model '{name}' has no {PREVIOUS_CHAMPION} to roll back to (aliases: {shown})"
            )
        demoted = aliases.get(CHAMPION)
        with self._errors(f"registered model '{name}'"):
            self.audit.require_intact()
            self.client.set_registered_model_alias(name, CHAMPION, str(previous))
            self.client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
            if demoted is not None and demoted != previous:
                note = f"rolled back to v{previous}"
                self.client.set_model_version_tag(name, str(demoted), TAG_PROMOTION, note)
            details = {"from_champion": demoted, "manifest_sha256": self._manifest_sha256(name, previous)}
            self.audit.record("rollback", name, previous, details, reason)
        return previous

    def promote_if_better(self, name: str, version: int, gate_passed: bool, beats_champion: bool) -> str:
        """Promote only a version that passed its gates and beats the champion; the decision is tagged."""
        champion = self.aliases(name).get(CHAMPION)
        if not gate_passed:
            decision = "held: failed the evaluation gates"
        elif not beats_champion:
            decision = f"held: does not beat champion {f'v{champion}' if champion else '(none registered)'}"
        elif champion == int(version):
            decision = f"held: v{version} is already champion"
        else:
            decision = "promoted"
        outcome = "ok" if decision == "promoted" else "refused"
        with self._errors(f"registered model '{name}'"):
            details = {"gate_passed": gate_passed, "beats_champion": beats_champion, "decision": decision}
            self.audit.record("gate_decision", name, version, details, "", outcome)
        if decision == "promoted":
            self.promote(name, version, reason="passed every gate and beats the champion")
        with self._errors(f"registered model '{name}'"):
            self.client.set_model_version_tag(name, str(version), TAG_PROMOTION, decision)
        return decision

    def download(self, model_uri: str, dst: Path) -> Path:
        """Download the bundle of `model_uri` into `dst` (new or empty) and verify every file.

        It lands in a temp directory beside `dst` first, so a bundle that fails verification never
        appears at `dst`. Resolving the URI ourselves (not via `models:/` artifact repositories)
        keeps this registry's tracking URI instead of MLflow's process-global one.
        """
        name, version, alias = parse_model_uri(model_uri)
        mv = self._model_version(name, alias or version)
        dst = Path(dst)
        if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
            raise UserError(f"{dst} already exists and is not empty; choose a new or empty --dst")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{dst.name}.", dir=dst.parent) as scratch:
            import mlflow.artifacts

            with self._errors(model_uri):
                source = self.client.get_model_version_download_uri(name, str(mv.version))
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=source, dst_path=scratch, tracking_uri=self.tracking_uri
                    )
                )
            where = f"{model_uri} (v{mv.version})"
            try:
                verify_bundle(local)
            except UserError as err:
                raise UserError([p.replace(str(local), where) for p in err.problems]) from None
            registered = mv.tags.get(TAG_MANIFEST_SHA256)
            if registered and sha256_file(local / MANIFEST) != registered:
                raise UserError(
                    f"bundle {where}: manifest.json differs from the one registered with this version "
                    "— refusing to load"
                )
            if dst.exists():
                dst.rmdir()
            os.replace(local, dst)
        return dst
