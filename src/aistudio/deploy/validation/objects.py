"""Lookups every check shares: an object's name for a problem line, and a workload's pod template,
pod spec, pod labels and containers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Rollout": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def object_ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (its metadata + spec); a bare Pod is its own template."""
    if obj.get("kind") == "Pod":
        return obj
    node: Any = obj if obj.get("kind") in POD_TEMPLATE_PATHS else None
    for key in POD_TEMPLATE_PATHS.get(obj.get("kind", ""), ()):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    template = pod_template(obj)
    spec = template.get("spec") if template else None
    return spec if isinstance(spec, dict) else None


def pod_labels(obj: dict[str, Any]) -> dict[str, str] | None:
    template = pod_template(obj)
    return None if template is None else (template.get("metadata") or {}).get("labels") or {}


def containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field, label in (("initContainers", "init container"), ("containers", "container")):
        for container in pod.get(field) or []:
            yield f"{label} {container.get('name', '?')}", container
