"""Keep k8s/monitoring-stack.yaml in step with the plain monitoring files it embeds.

The alert rules (configs/monitoring/alert_rules.yml) and the Grafana dashboard
(configs/monitoring/grafana_dashboard.json) are written once, as plain files that promtool and
a local Prometheus/Grafana use directly. The cluster needs them wrapped in a PrometheusRule and
a ConfigMap; `render_monitoring_stack` regenerates exactly those two documents of
k8s/monitoring-stack.yaml and leaves every other document (the hand-written ServiceMonitor,
with its comments) as it is.

    python -m aistudio.deploy.monitoring --write   # regenerate after editing the plain files
    python -m aistudio.deploy.monitoring --check   # exit 1 if the manifest is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from aistudio.errors import UserError
from aistudio.layout import ALERT_RULES, DASHBOARD, MONITORING_STACK

MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_RULE_NAME = "aistudio-model-server"
DASHBOARD_CONFIGMAP_NAME = "aistudio-grafana-dashboard"
DASHBOARD_KEY = "aistudio-model-server.json"
# kube-prometheus-stack selects rules by this label; see the header of monitoring-stack.yaml.
SELECTOR_LABELS = {"app.kubernetes.io/part-of": "aistudio", "release": "kube-prometheus-stack"}

_GENERATED_NOTE = (
    "# GENERATED from {source} by `python -m aistudio.deploy.monitoring --write`.\n"
    "# Edit {source} instead; a test fails when this document is out of date.\n"
)
_DOCUMENT_SEPARATOR = "---\n"


class _BlockStyleDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, dashboard JSON) as literal blocks a reviewer can read."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_BlockStyleDumper, sort_keys=False, width=4096, allow_unicode=True)


def load_alert_groups(path: Path) -> list[dict[str, Any]]:
    """The `groups` of a Prometheus rules file; a file without a list of groups is a UserError."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read alert rules ({exc})") from exc
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not groups:
        raise UserError(f"{path}: expected a top-level `groups:` list of rule groups")
    return groups


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule carrying `groups` unchanged."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": PROMETHEUS_RULE_NAME,
            "namespace": MONITORING_NAMESPACE,
            "labels": dict(SELECTOR_LABELS),
        },
        "spec": {"groups": groups},
    }


def dashboard_configmap(dashboard_json: str) -> dict[str, Any]:
    """The ConfigMap the Grafana sidecar loads; the JSON text is embedded byte for byte."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DASHBOARD_CONFIGMAP_NAME,
            "namespace": MONITORING_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "aistudio", "grafana_dashboard": "1"},
        },
        "data": {DASHBOARD_KEY: dashboard_json},
    }


def is_dashboard_configmap(document: dict[str, Any]) -> bool:
    labels = (document.get("metadata") or {}).get("labels") or {}
    return document.get("kind") == "ConfigMap" and labels.get("grafana_dashboard") == "1"


def _split_documents(text: str) -> list[str]:
    chunks, current = [], []
    for line in text.splitlines(keepends=True):
        if line == _DOCUMENT_SEPARATOR:
            chunks.append("".join(current))
            current = []
        else:
            current.append(line)
    chunks.append("".join(current))
    return [chunk for chunk in chunks if chunk.strip()]


def render_monitoring_stack(root: Path = Path(".")) -> str:
    """The text monitoring-stack.yaml should have: its own documents, with the generated two
    replaced (or appended, the first time) from the plain files under configs/monitoring."""
    stack_path = root / MONITORING_STACK
    groups = load_alert_groups(root / ALERT_RULES)
    dashboard_text = (root / DASHBOARD).read_text(encoding="utf-8")
    generated = {
        "PrometheusRule": _GENERATED_NOTE.format(source=ALERT_RULES) + _dump(prometheus_rule(groups)),
        "dashboard": _GENERATED_NOTE.format(source=DASHBOARD) + _dump(dashboard_configmap(dashboard_text)),
    }
    kept: list[str] = []
    for chunk in _split_documents(stack_path.read_text(encoding="utf-8")):
        document = yaml.safe_load(chunk) or {}
        if document.get("kind") == "PrometheusRule" or is_dashboard_configmap(document):
            continue
        kept.append(chunk)
    return _DOCUMENT_SEPARATOR.join([*kept, generated["PrometheusRule"], generated["dashboard"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate k8s/monitoring-stack.yaml")
    mode.add_argument("--check", action="store_true", help="exit 1 if k8s/monitoring-stack.yaml is stale")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    args = parser.parse_args(argv)

    expected = render_monitoring_stack(args.root)
    stack_path = args.root / MONITORING_STACK
    if args.write:
        stack_path.write_text(expected, encoding="utf-8")
        print(f"wrote {stack_path}")
        return 0
    if stack_path.read_text(encoding="utf-8") != expected:
        print(
            f"{stack_path} is out of date with {ALERT_RULES} / {DASHBOARD}; "
            "run: python -m aistudio.deploy.monitoring --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    from aistudio.cli import run_cli

    run_cli(main)
