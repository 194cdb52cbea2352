"""Names and selectors that must resolve inside the same render and namespace: Service,
PodDisruptionBudget and NetworkPolicy selectors match a pod template; a Rollout's strategy Services,
AnalysisTemplates and their required args, HPA targets, ServiceAccounts and ConfigMaps exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aistudio.deploy.validation.objects import containers, object_ref, pod_labels, pod_spec_of


def _labels_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def _analysis_blocks(strategy: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    canary = strategy.get("canary") or {}
    if isinstance(canary.get("analysis"), dict):
        yield "strategy.canary.analysis", canary["analysis"]
    for i, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and isinstance(step.get("analysis"), dict):
            yield f"strategy.canary.steps[{i}].analysis", step["analysis"]
    blue_green = strategy.get("blueGreen") or {}
    for field in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if isinstance(blue_green.get(field), dict):
            yield f"strategy.blueGreen.{field}", blue_green[field]


def _strategy_services(strategy: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for kind in ("canary", "blueGreen"):
        block = strategy.get(kind) or {}
        for field in ("canaryService", "stableService", "activeService", "previewService"):
            if block.get(field):
                yield f"strategy.{kind}.{field}", block[field]
        for field in ("pingService", "pongService"):
            if (block.get("pingPong") or {}).get(field):
                yield f"strategy.{kind}.pingPong.{field}", block["pingPong"][field]


class _RenderIndex:
    """Lookups over one render: objects by (kind, namespace, name), and every pod template's labels."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self._objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self._pod_labels: list[tuple[str | None, dict[str, str]]] = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            self._objects[(obj.get("kind", ""), meta.get("namespace"), meta.get("name", ""))] = obj
            labels = pod_labels(obj)
            if labels is not None:
                self._pod_labels.append((meta.get("namespace"), labels))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._objects.get((kind, namespace, name))

    def selects_pods(self, namespace: str | None, selector: dict[str, str]) -> bool:
        return any(ns == namespace and selector.items() <= labels.items() for ns, labels in self._pod_labels)


def check_references(objects: list[dict[str, Any]]) -> list[str]:
    """Names and selectors that must resolve inside the same render (and namespace)."""
    index = _RenderIndex(objects)
    problems = []
    for obj in objects:
        ref, kind, spec = object_ref(obj), obj.get("kind"), obj.get("spec") or {}
        namespace = (obj.get("metadata") or {}).get("namespace")
        selector = {
            "Service": spec.get("selector"),
            "PodDisruptionBudget": (spec.get("selector") or {}).get("matchLabels"),
            # An empty podSelector (default deny) selects every pod on purpose.
            "NetworkPolicy": (spec.get("podSelector") or {}).get("matchLabels"),
        }.get(kind or "")
        if selector and not index.selects_pods(namespace, selector):
            problems.append(f"{ref}: selector {_labels_text(selector)} matches no pod template in the render")
        if kind == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef") or {}
            if index.get(target.get("kind", ""), namespace, target.get("name", "")) is None:
                problems.append(
                    f"{ref}: scaleTargetRef {target.get('kind')}/{target.get('name')} is not in the render"
                )
        if kind == "Rollout":
            problems += _rollout_references(ref, namespace, spec, index)
        pod = pod_spec_of(obj)
        if isinstance(pod, dict):
            problems += _pod_references(ref, namespace, pod, index)
    return problems


def _rollout_references(
    ref: str, namespace: str | None, spec: dict[str, Any], index: _RenderIndex
) -> list[str]:
    problems = []
    strategy = spec.get("strategy") or {}
    for where, service in _strategy_services(strategy):
        if index.get("Service", namespace, service) is None:
            problems.append(f"{ref}: {where} names Service {service}, which is not in the render")
    for where, analysis in _analysis_blocks(strategy):
        passed = {arg.get("name") for arg in analysis.get("args") or []}
        for template_ref in analysis.get("templates") or []:
            name = template_ref.get("templateName", "")
            cluster_scope = bool(template_ref.get("clusterScope"))
            kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
            template = index.get(kind, None if cluster_scope else namespace, name)
            if template is None:
                problems.append(f"{ref}: {where} references {kind} {name}, which is not in the render")
                continue
            for arg in (template.get("spec") or {}).get("args") or []:
                if "value" not in arg and "valueFrom" not in arg and arg.get("name") not in passed:
                    problems.append(
                        f"{ref}: {where} does not pass arg {arg.get('name')} that {kind}/{name} requires"
                    )
    return problems


def _pod_references(ref: str, namespace: str | None, pod: dict[str, Any], index: _RenderIndex) -> list[str]:
    problems = []
    account = pod.get("serviceAccountName")
    if account and account != "default" and index.get("ServiceAccount", namespace, account) is None:
        problems.append(f"{ref}: serviceAccountName {account} is not a ServiceAccount in the render")
    config_maps = [
        volume["configMap"]
        for volume in pod.get("volumes") or []
        if isinstance(volume.get("configMap"), dict)
    ]
    for _, container in containers(pod):
        config_maps += [
            (env.get("valueFrom") or {}).get("configMapKeyRef") or {} for env in container.get("env") or []
        ]
        config_maps += [source.get("configMapRef") or {} for source in container.get("envFrom") or []]
    for config_map in config_maps:
        name = config_map.get("name")
        if name and not config_map.get("optional") and index.get("ConfigMap", namespace, name) is None:
            problems.append(f"{ref}: ConfigMap {name} is referenced but not in the render")
    return list(dict.fromkeys(problems))
