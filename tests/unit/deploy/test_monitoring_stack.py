"""aistudio.deploy.monitoring: the generated documents follow their sources; hand-written ones
are left exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aistudio.deploy.monitoring import (
    ALERT_RULES,
    DASHBOARD,
    MONITORING_STACK,
    load_alert_groups,
    main,
    render_monitoring_stack,
)
from aistudio.errors import UserError

SERVICE_MONITOR = """\
# Hand-written: this comment must survive regeneration.
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: demo
spec:
  selector: {}
  endpoints: []
"""
RULES = """\
groups:
  - name: demo
    rules:
      - alert: Demo
        expr: |
          aistudio_queue_depth > 1
        for: 1m
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for relative, text in (
        (ALERT_RULES, RULES),
        (DASHBOARD, json.dumps({"uid": "demo", "panels": []}, indent=2) + "\n"),
        (MONITORING_STACK, SERVICE_MONITOR),
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    return tmp_path


def kinds(text: str) -> list[str]:
    return [doc["kind"] for doc in yaml.safe_load_all(text) if doc]


def test_first_render_appends_the_rule_and_dashboard_after_hand_written_documents(root: Path) -> None:
    text = render_monitoring_stack(root)
    assert text.startswith(SERVICE_MONITOR)
    assert kinds(text) == ["ServiceMonitor", "PrometheusRule", "ConfigMap"]


def test_rendering_is_idempotent(root: Path) -> None:
    (root / MONITORING_STACK).write_text(render_monitoring_stack(root))
    assert render_monitoring_stack(root) == (root / MONITORING_STACK).read_text()


def test_an_edited_rules_file_replaces_the_embedded_rules(root: Path) -> None:
    (root / MONITORING_STACK).write_text(render_monitoring_stack(root))
    (root / ALERT_RULES).write_text(RULES.replace("> 1", "> 2"))
    text = render_monitoring_stack(root)
    assert kinds(text) == ["ServiceMonitor", "PrometheusRule", "ConfigMap"]
    rule = next(doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"][0]["expr"] == "aistudio_queue_depth > 2\n"


def test_promql_is_written_as_a_readable_block(root: Path) -> None:
    assert "expr: |\n" in render_monitoring_stack(root)


def test_check_mode_fails_on_a_stale_stack_and_write_mode_fixes_it(
    root: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--check", "--root", str(root)]) == 1
    assert "python -m aistudio.deploy.monitoring --write" in capsys.readouterr().err
    assert main(["--write", "--root", str(root)]) == 0
    assert main(["--check", "--root", str(root)]) == 0


def test_a_rules_file_without_groups_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("rules: []\n")
    with pytest.raises(UserError, match="expected a top-level `groups:` list"):
        load_alert_groups(path)
