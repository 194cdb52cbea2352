"""The alert rules and dashboard: valid for the real promtool, unit-tested, and embedded
unchanged in the Kubernetes monitoring stack.

promtool is a required tool here, not an optional one: without it these tests fail and say how
to install it, so a missing tool can never pass as a green run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aistudio.deploy.monitoring import (
    ALERT_RULES,
    DASHBOARD,
    DASHBOARD_KEY,
    MONITORING_STACK,
    is_dashboard_configmap,
    load_alert_groups,
    render_monitoring_stack,
)

REPO = Path(__file__).resolve().parents[3]
RULES_TEST = REPO / "configs" / "monitoring" / "alert_rules_test.yml"
PROMETHEUS_CONFIG = REPO / "configs" / "monitoring" / "prometheus.yml"
EXPECTED_ALERTS = {
    "ModelAccuracyDrop",
    "HighLatency",
    "HighErrorRate",
    "DataDriftDetected",
    "ModelServerDown",
    "QueueSaturation",
    "KVCacheBudgetExhausted",
    "GPUMemoryHigh",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH; run `make setup` (installs Debian's prometheus package)")
    return path


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def stack_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all((REPO / MONITORING_STACK).read_text()) if doc]


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", str(RULES_TEST.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_prometheus_config_is_valid_and_loads_the_rules(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_the_rules_file_defines_exactly_the_agreed_alerts() -> None:
    groups = load_alert_groups(REPO / ALERT_RULES)
    assert {rule["alert"] for group in groups for rule in group["rules"]} == EXPECTED_ALERTS


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    cases = [
        case for test in yaml.safe_load(RULES_TEST.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    stays_silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert fires == EXPECTED_ALERTS
    assert stays_silent == EXPECTED_ALERTS


def test_the_prometheus_rule_carries_the_plain_rules_file_unchanged() -> None:
    rules = [doc for doc in stack_documents() if doc["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    assert rules[0]["spec"]["groups"] == load_alert_groups(REPO / ALERT_RULES)


def test_the_dashboard_configmap_carries_the_dashboard_file_byte_for_byte() -> None:
    config_maps = [doc for doc in stack_documents() if is_dashboard_configmap(doc)]
    assert len(config_maps) == 1
    embedded = config_maps[0]["data"][DASHBOARD_KEY]
    assert embedded == (REPO / DASHBOARD).read_text()
    assert json.loads(embedded)["uid"] == "aistudio-model-server"


def test_the_monitoring_stack_is_up_to_date_with_its_sources() -> None:
    """Fails after editing configs/monitoring/* without `python -m aistudio.deploy.monitoring --write`."""
    assert (REPO / MONITORING_STACK).read_text() == render_monitoring_stack(REPO)
