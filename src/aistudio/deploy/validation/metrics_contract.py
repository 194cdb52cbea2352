"""The metric contract: every `aistudio_*` name in an AnalysisTemplate query, alert rule, HPA custom
metric or Grafana dashboard is exported by the server (aistudio.deploy.contract.SERVER_METRICS), and
every Prometheus analysis guards an empty result so a quiet canary is inconclusive."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from aistudio.deploy.contract import metric_family
from aistudio.deploy.validation.objects import object_ref

SERVER_METRIC_NAME = re.compile(r"\baistudio_[A-Za-z0-9_:]*")


def _queries(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query an object carries; for an HPA, the custom metric names."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "AnalysisTemplate":
        for metric in spec.get("metrics") or []:
            query = ((metric.get("provider") or {}).get("prometheus") or {}).get("query")
            if query:
                yield f"metric {metric.get('name')}", query
    elif kind == "HorizontalPodAutoscaler":
        for metric in spec.get("metrics") or []:
            field = {"Pods": "pods", "Object": "object", "External": "external"}.get(metric.get("type", ""))
            name = ((metric.get(field) or {}).get("metric") or {}).get("name") if field else None
            if name:
                yield f"{metric['type']} metric", name
    elif kind == "PrometheusRule":
        for group in spec.get("groups") or []:
            for rule in group.get("rules") or []:
                yield f"rule {rule.get('alert') or rule.get('record')}", str(rule.get("expr", ""))
    elif (
        kind == "ConfigMap"
        and ((obj.get("metadata") or {}).get("labels") or {}).get("grafana_dashboard") == "1"
    ):
        for key, text in (obj.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                yield f"dashboard {key}", ""
                continue
            yield from _dashboard_queries(key, dashboard)


def _dashboard_queries(key: str, node: Any, title: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        title = node.get("title", title) if isinstance(node.get("title"), str) else title
        for field in ("expr", "definition"):
            if isinstance(node.get(field), str):
                yield f"dashboard {key} panel '{title}'", node[field]
        for value in node.values():
            yield from _dashboard_queries(key, value, title)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_queries(key, item, title)


def check_metric_names(obj: dict[str, Any]) -> list[str]:
    """Every aistudio_* series a query (or an HPA custom metric) names must be one the server exports."""
    ref = object_ref(obj)
    problems = []
    for where, query in _queries(obj):
        if not query:
            problems.append(f"{ref}: {where} is not valid JSON")
            continue
        for name in dict.fromkeys(SERVER_METRIC_NAME.findall(query)):
            if metric_family(name) is None:
                problems.append(
                    f"{ref}: {where} queries {name}, which the model server does not export "
                    "(aistudio.deploy.contract.SERVER_METRICS)"
                )
    return problems


def check_analysis_guards(obj: dict[str, Any]) -> list[str]:
    """A Prometheus analysis must treat an empty result as Inconclusive: `result[0]` on an empty
    vector is an evaluation error, and enough errors abort a healthy but quiet canary."""
    if obj.get("kind") != "AnalysisTemplate":
        return []
    problems = []
    for metric in (obj.get("spec") or {}).get("metrics") or []:
        if "prometheus" not in (metric.get("provider") or {}):
            continue
        conditions = [metric.get("successCondition") or "", metric.get("failureCondition") or ""]
        if not all("len(result)" in condition for condition in conditions):
            problems.append(
                f"{object_ref(obj)}: metric {metric.get('name')} must check len(result) in both "
                "successCondition and failureCondition, so an empty result (a quiet canary) is Inconclusive"
            )
    return problems
