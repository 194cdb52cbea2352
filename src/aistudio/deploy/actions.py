"""The kubectl commands that ship a rendered environment and steer its rollout.

Everything here builds argument lists; nothing runs them. `scripts/deploy_models.py` prints
them (the default, a dry run) or runs them with `--yes`, so what a dry run shows is exactly what
the real run executes.

Rollout steering uses the Argo Rollouts kubectl plugin when `kubectl-argo-rollouts` is on PATH.
Without it, the same changes are made with plain `kubectl patch`, mirroring what the plugin
sends (argo-rollouts pkg/kubectl-argo-rollouts/cmd/{promote,abort,undo}):

  promote   merge-patch the status subresource `{"status":{"pauseConditions":null}}` (a canary
            paused at a step, or a blue-green waiting before promotion, moves on), then the
            spec `{"spec":{"paused":false}}` (a rollout paused by hand). The plugin also
            advances a canary whose current step is an analysis rather than a pause; the patch
            does not, so promote such a rollout with the plugin.
  abort     merge-patch the status subresource `{"status":{"abort":true}}`: all traffic back to
            the stable ReplicaSet; spec.template still names the new version.
  rollback  the plugin's `undo`: find the Rollout's ReplicaSet with the second-highest
            `rollout.argoproj.io/revision` and JSON-patch its pod template (minus the
            rollouts-pod-template-hash label) over the Rollout's spec.template.
  status    a read: the plugin's `get rollout` tree, or the Rollout's phase, step and hashes.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from aistudio.deploy.render import ROLLOUT_NAME, overlay_dir
from aistudio.errors import UserError

ARGO_PLUGIN = "kubectl-argo-rollouts"
ROLLOUT_RESOURCE = "rollouts.argoproj.io"
ROLLOUT_SELECTOR = "app.kubernetes.io/name=model-server"  # the Rollout's spec.selector, k8s/base/rollout.yaml
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"

PROMOTE_STATUS_PATCH = '{"status":{"pauseConditions":null}}'
PROMOTE_SPEC_PATCH = '{"spec":{"paused":false}}'
ABORT_STATUS_PATCH = '{"status":{"abort":true}}'
# What a dry run shows for the rollback patch: its value exists only once the cluster is read.
UNDO_PATCH_PREVIEW = (
    '[{"op":"replace","path":"/spec/template","value":<pod template of the previous revision>}]'
)
STATUS_COLUMNS = (
    "NAME:.metadata.name,PHASE:.status.phase,STEP:.status.currentStepIndex,"
    "STABLE:.status.stableRS,CURRENT:.status.currentPodHash,READY:.status.readyReplicas,"
    "MESSAGE:.status.message"
)

RolloutAction = Literal["status", "promote", "abort", "rollback"]
ROLLOUT_ACTIONS: tuple[RolloutAction, ...] = ("status", "promote", "abort", "rollback")
# Actions that only read: they run without --yes.
READ_ONLY_ACTIONS: frozenset[str] = frozenset({"status"})

Command = list[str]


def show(command: Command) -> str:
    """The command as a shell line, quoted so that it can be pasted back as is."""
    return shlex.join(command)


def require_context(action: str, context: str | None) -> str:
    """Every cluster command names its kubeconfig context: the current one is never assumed."""
    if not context:
        raise UserError(f"{action} needs --context (the kubeconfig context of the target cluster)")
    return context


def overlay_namespace(k8s_root: Path, overlay: str) -> str:
    """The namespace an overlay deploys into, from its kustomization.yaml."""
    path = overlay_dir(k8s_root, overlay) / "kustomization.yaml"
    namespace = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise UserError(f"{path}: sets no namespace; every overlay must deploy into its own namespace")
    return namespace


def argo_plugin_available() -> bool:
    return shutil.which(ARGO_PLUGIN) is not None


# --- apply ------------------------------------------------------------------------------------------


def apply_command(rendered: Path, context: str) -> Command:
    return ["kubectl", "apply", "-f", str(rendered), "--context", context]


def object_names(objects: Iterable[dict[str, Any]]) -> list[str]:
    """Objects as `kubectl apply -o name` prints them: kind[.group]/name."""
    names = []
    for obj in objects:
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        kind = str(obj.get("kind", "?")).lower()
        names.append(f"{kind}{'.' + group if group else ''}/{(obj.get('metadata') or {}).get('name', '?')}")
    return names


# --- rollout steering ------------------------------------------------------------------------------------


def _target(namespace: str, context: str) -> Command:
    return ["-n", namespace, "--context", context]


def _patch(namespace: str, context: str, patch: str, status: bool = False, kind: str = "merge") -> Command:
    subresource = ["--subresource=status"] if status else []
    return [
        "kubectl", "patch", ROLLOUT_RESOURCE, ROLLOUT_NAME, *_target(namespace, context),
        *subresource, f"--type={kind}", "-p", patch,
    ]  # fmt: skip


def list_replicasets_command(namespace: str, context: str) -> Command:
    return [
        "kubectl",
        "get",
        "replicasets",
        *_target(namespace, context),
        "-l",
        ROLLOUT_SELECTOR,
        "-o",
        "json",
    ]


@dataclass(frozen=True)
class RolloutPlan:
    """What an action runs. `needs_history`: rollback without the plugin; its commands are the
    ReplicaSet listing and a preview of the patch, which `undo_patch_command` builds for real
    from that listing's output."""

    commands: list[Command]
    needs_history: bool = False


def rollout_plan(
    action: RolloutAction, namespace: str, context: str, plugin: bool, watch: bool = False
) -> RolloutPlan:
    if action not in ROLLOUT_ACTIONS:
        raise UserError(f"unknown rollout action '{action}' (one of {', '.join(ROLLOUT_ACTIONS)})")
    target = _target(namespace, context)
    if plugin:
        verb = {
            "status": ["get", "rollout"],
            "promote": ["promote"],
            "abort": ["abort"],
            "rollback": ["undo"],
        }
        extra = ["--watch"] if watch and action == "status" else []
        return RolloutPlan([["kubectl", "argo", "rollouts", *verb[action], ROLLOUT_NAME, *target, *extra]])
    if action == "status":
        extra = ["--watch"] if watch else []
        get = [
            "kubectl",
            "get",
            ROLLOUT_RESOURCE,
            ROLLOUT_NAME,
            *target,
            "-o",
            f"custom-columns={STATUS_COLUMNS}",
        ]
        return RolloutPlan([[*get, *extra]])
    if action == "promote":
        return RolloutPlan(
            [
                _patch(namespace, context, PROMOTE_STATUS_PATCH, status=True),
                _patch(namespace, context, PROMOTE_SPEC_PATCH),
            ]
        )
    if action == "abort":
        return RolloutPlan([_patch(namespace, context, ABORT_STATUS_PATCH, status=True)])
    return RolloutPlan(
        [
            list_replicasets_command(namespace, context),
            _patch(namespace, context, UNDO_PATCH_PREVIEW, kind="json"),
        ],
        needs_history=True,
    )


def _owned_by_rollout(replicaset: dict[str, Any]) -> bool:
    return any(
        ref.get("kind") == "Rollout" and ref.get("name") == ROLLOUT_NAME and ref.get("controller")
        for ref in (replicaset.get("metadata") or {}).get("ownerReferences") or []
    )


def previous_pod_template(replicasets: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(revision, pod template) of the Rollout's second-newest ReplicaSet, as `undo` picks it."""
    revisions: list[tuple[int, dict[str, Any]]] = []
    for rs in replicasets.get("items") or []:
        value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "")
        if _owned_by_rollout(rs) and str(value).isdigit():
            revisions.append((int(value), rs))
    revisions.sort(key=lambda pair: pair[0])
    if len(revisions) < 2:
        raise UserError(
            f"Rollout/{ROLLOUT_NAME} has {len(revisions)} revision(s) in the cluster; nothing earlier to "
            "roll back to"
        )
    revision, rs = revisions[-2]
    template = json.loads(json.dumps((rs.get("spec") or {}).get("template") or {}))
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return revision, template


def undo_patch_command(namespace: str, context: str, replicasets: dict[str, Any]) -> tuple[int, Command]:
    """The plugin's `undo` as a plain JSON patch, from `kubectl get replicasets -o json` output."""
    revision, template = previous_pod_template(replicasets)
    patch = json.dumps(
        [{"op": "replace", "path": "/spec/template", "value": template}], separators=(",", ":")
    )
    return revision, _patch(namespace, context, patch, kind="json")
