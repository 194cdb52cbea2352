"""Offline checks of who may use the Kubernetes API in a render (k8s/base/rbac.yaml).

The rules a render must keep, each a problem string '<Kind>/<name>: <what>' when broken:
  - only namespaced Roles: a ClusterRole or ClusterRoleBinding reaches past the environment;
  - no wildcards in apiGroups, resources or verbs, no access to Secrets, and none of the verbs
    that create, delete or grant (`create`, `delete`, `deletecollection`, `escalate`, `bind`,
    `impersonate`, `update`): CI steers releases by patching, it does not own the namespace;
  - a RoleBinding names a Role and ServiceAccounts that are in the same render;
  - every ServiceAccount sets automountServiceAccountToken: false, no pod template turns it back
    on, and no Role is bound to a service account a workload runs as: the model server holds no
    API token and has no API access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

PodSpecOf = Callable[[dict[str, Any]], "dict[str, Any] | None"]

CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding")
FORBIDDEN_VERBS = frozenset(
    {"create", "delete", "deletecollection", "escalate", "bind", "impersonate", "update"}
)
WILDCARD = "*"


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _namespace(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def _rule_problems(ref: str, index: int, rule: dict[str, Any]) -> list[str]:
    where = f"{ref}: rules[{index}]"
    problems = [
        f"{where}.{field} contains '*'; name the {field} this role needs"
        for field in ("apiGroups", "resources", "verbs")
        if WILDCARD in (rule.get(field) or [])
    ]
    resources = [r.split("/")[0] for r in rule.get("resources") or []]
    if "secrets" in resources:
        problems.append(f"{where} grants access to secrets; API keys and credentials stay out of every role")
    forbidden = sorted(set(rule.get("verbs") or []) & FORBIDDEN_VERBS)
    if forbidden:
        problems.append(f"{where} grants {', '.join(forbidden)}; roles here may only read and patch")
    return problems


def _pod_accounts(
    objects: Iterable[dict[str, Any]], pod_spec_of: PodSpecOf
) -> dict[tuple[str | None, str], str]:
    """(namespace, service account) → the workload running as it."""
    accounts = {}
    for obj in objects:
        pod = pod_spec_of(obj)
        if isinstance(pod, dict):
            accounts[(_namespace(obj), pod.get("serviceAccountName") or "default")] = _ref(obj)
    return accounts


def check_rbac(objects: list[dict[str, Any]], pod_spec_of: PodSpecOf) -> list[str]:
    """Every rule of the module docstring over one render; `pod_spec_of` finds a workload's pod spec."""
    problems: list[str] = []
    roles = {(_namespace(o), o["metadata"]["name"]) for o in objects if o.get("kind") == "Role"}
    accounts = {(_namespace(o), o["metadata"]["name"]) for o in objects if o.get("kind") == "ServiceAccount"}
    workloads = _pod_accounts(objects, pod_spec_of)
    for obj in objects:
        ref, kind = _ref(obj), obj.get("kind")
        if kind in CLUSTER_KINDS:
            problems.append(f"{ref}: cluster-wide RBAC in a model-server render; use a namespaced Role")
        if kind in ("Role", "ClusterRole"):
            for index, rule in enumerate(obj.get("rules") or []):
                problems += _rule_problems(ref, index, rule)
        if kind == "ServiceAccount" and obj.get("automountServiceAccountToken") is not False:
            problems.append(f"{ref}: set automountServiceAccountToken: false; no pod here needs an API token")
        pod = pod_spec_of(obj)
        if isinstance(pod, dict) and pod.get("automountServiceAccountToken") is True:
            problems.append(
                f"{ref}: pod template mounts a service account token; remove automountServiceAccountToken"
            )
        if kind == "RoleBinding":
            problems += _binding_problems(ref, obj, roles, accounts, workloads)
    return problems


def _binding_problems(
    ref: str,
    binding: dict[str, Any],
    roles: set[tuple[str | None, str]],
    accounts: set[tuple[str | None, str]],
    workloads: dict[tuple[str | None, str], str],
) -> list[str]:
    problems = []
    namespace = _namespace(binding)
    role = binding.get("roleRef") or {}
    if role.get("kind") != "Role" or (namespace, role.get("name")) not in roles:
        problems.append(f"{ref}: roleRef {role.get('kind')}/{role.get('name')} is not a Role in the render")
    for subject in binding.get("subjects") or []:
        if subject.get("kind") != "ServiceAccount":
            continue
        key = (subject.get("namespace") or namespace, subject.get("name", ""))
        if key not in accounts:
            problems.append(f"{ref}: subject ServiceAccount {key[1]} is not in the render's namespace")
        if key in workloads:
            problems.append(
                f"{ref}: binds a role to {key[1]}, which {workloads[key]} runs as; workloads get no API"
            )
    return problems
