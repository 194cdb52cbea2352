"""ServerMetrics exports exactly the metric contract, in a registry of its own, with bounded labels."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from aistudio.deploy.contract import METRIC_KINDS, SERVER_METRICS, metric_family
from aistudio.serving.metrics import BASE_ADAPTER, UNKNOWN, ServerMetrics, status_label


def exercised() -> ServerMetrics:
    metrics = ServerMetrics(models=["phi2"], adapters=["code", "creative"])
    metrics.set_model_info("phi2", "3", "4bit")
    metrics.observe_request("phi2", "code", 200, 0.42)
    metrics.observe_request("phi2", None, 503, 1.5)
    metrics.observe_request("phi2", "code", "timeout", 120.0)
    metrics.observe_tokens("phi2", "code", prompt=12, generated=30)
    metrics.observe_ttft("phi2", "code", 0.08)
    metrics.observe_queue_wait(0.004)
    metrics.observe_step("decode", 0.03, 3)
    metrics.observe_step("prefill", 0.2, 300)
    metrics.set_scheduler_state(active_rows=3, kv_tokens=250, kv_reserved=700)
    metrics.set_kv_budget(4096)
    metrics.count_adapter_event("load", "fresh", resident=3)
    metrics.count_adapter_event("evict", "creative", resident=3)
    metrics.set_queue_depth(5)
    metrics.set_drift({"prompt_chars": 0.05, "digit_ratio": 0.31}, detected=True)
    metrics.count_assignment("code-adapter", "lora")
    metrics.count_feedback("code-adapter", "lora", "positive")
    return metrics


def samples(metrics: ServerMetrics) -> list:
    text = metrics.render().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    matching = [
        s.value
        for s in samples(metrics)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def test_every_contract_metric_is_exported_and_nothing_else() -> None:
    exported = {s.name for s in samples(exercised())}
    families = {metric_family(name) for name in exported}
    assert None not in families, sorted(n for n in exported if metric_family(n) is None)
    assert families == SERVER_METRICS


def test_each_metric_has_the_kind_the_contract_gives_it() -> None:
    text = exercised().render().decode()
    # The text format has no "info" type: an info metric is a gauge whose value is 1.
    exposed = {"info": "gauge"}
    kinds = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        kinds[name] = family.type
    assert kinds == {name: exposed.get(kind, kind) for name, kind in METRIC_KINDS.items()}


def test_rendered_metrics_pass_promtool_check(tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH; run `make setup` (installs Debian's prometheus package)")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exercised().render(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_each_server_has_its_own_registry() -> None:
    first, second = ServerMetrics(["phi2"]), ServerMetrics(["phi2"])
    first.observe_request("phi2", None, 200, 0.1)
    assert value(first, "aistudio_requests_total", status="2xx") == 1
    assert not any(s.name == "aistudio_requests_total" for s in samples(second))
    assert (
        REGISTRY.get_sample_value(
            "aistudio_requests_total", {"model": "phi2", "adapter": "base", "status": "2xx"}
        )
        is None
    )


def test_unknown_models_and_adapters_share_one_label_value() -> None:
    metrics = ServerMetrics(models=["phi2"], adapters=["code"])
    for name in ("ignore previous instructions", "user-1234", "another-prompt"):
        metrics.observe_request(name, name, 404, 0.01)
    assert value(metrics, "aistudio_requests_total", model=UNKNOWN, adapter=UNKNOWN, status="4xx") == 3
    metrics.observe_request("phi2", None, 200, 0.01)
    assert value(metrics, "aistudio_requests_total", model="phi2", adapter=BASE_ADAPTER, status="2xx") == 1


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "2xx"), (201, "2xx"), (429, "4xx"), (500, "5xx"), ("queue_full", "queue_full"), ("5xx", "5xx")],
)
def test_status_becomes_a_class_or_a_known_reason(status: int | str, label: str) -> None:
    assert status_label(status) == label


@pytest.mark.parametrize("status", ["Timeout!", "some prompt text", 42, 700])
def test_an_unknown_status_is_refused_rather_than_minting_a_series(status: int | str) -> None:
    with pytest.raises(ValueError):
        status_label(status)


def test_model_info_names_only_the_current_model() -> None:
    metrics = ServerMetrics()
    metrics.set_model_info("phi2", "3", "4bit")
    metrics.set_model_info("phi2", "4", "8bit")
    info = [s for s in samples(metrics) if s.name == "aistudio_model_info"]
    assert [(s.labels, s.value) for s in info] == [
        ({"model": "phi2", "version": "4", "variant": "8bit"}, 1.0)
    ]
    metrics.observe_request("phi2", None, 200, 0.1)  # set_model_info made the model a known label
    assert value(metrics, "aistudio_requests_total", model="phi2") == 1


def test_observations_land_in_the_right_series() -> None:
    metrics = exercised()
    assert value(metrics, "aistudio_prompt_tokens_total", adapter="code") == 12
    assert value(metrics, "aistudio_generation_tokens_total", adapter="code") == 30
    assert value(metrics, "aistudio_queue_depth") == 5
    assert value(metrics, "aistudio_drift_detected") == 1
    assert value(metrics, "aistudio_drift_score", feature="digit_ratio") == pytest.approx(0.31)
    assert value(metrics, "aistudio_scheduler_step_tokens_bucket", phase="decode", le="4.0") == 1
    assert value(metrics, "aistudio_scheduler_step_tokens_bucket", phase="decode", le="2.0") == 0
    assert value(metrics, "aistudio_scheduler_step_duration_seconds_count", phase="prefill") == 1
    assert value(metrics, "aistudio_scheduler_active_rows") == 3
    assert value(metrics, "aistudio_kv_cache_tokens") == 250
    assert value(metrics, "aistudio_kv_cache_reserved_tokens") == 700
    assert value(metrics, "aistudio_kv_cache_budget_tokens") == 4096
    assert value(metrics, "aistudio_adapter_events_total", action="evict") == 1
    assert value(metrics, "aistudio_adapters_resident") == 3
    # A runtime-loaded adapter's name becomes a label value; names never loaded stay "unknown".
    metrics.observe_tokens("phi2", "fresh", prompt=1, generated=1)
    metrics.observe_tokens("phi2", "never-loaded", prompt=1, generated=1)
    assert value(metrics, "aistudio_prompt_tokens_total", adapter="fresh") == 1
    assert value(metrics, "aistudio_prompt_tokens_total", adapter=UNKNOWN) == 1
    with pytest.raises(ValueError):
        metrics.observe_step("warmup", 0.1, 1)
    with pytest.raises(ValueError):
        metrics.count_adapter_event("reload", "x", resident=1)
    # 2 s is a bucket edge: HighLatency alerts on p95 > 2 s.
    assert value(metrics, "aistudio_request_duration_seconds_bucket", adapter=BASE_ADAPTER, le="2.0") == 1
    assert value(metrics, "aistudio_feedback_total", variant="lora", outcome="positive") == 1
    with pytest.raises(ValueError):
        metrics.count_feedback("code-adapter", "lora", "meh")


def test_content_type_is_the_prometheus_text_format() -> None:
    # Not OpenMetrics: render() writes the classic text format, and the header must say so.
    assert ServerMetrics().content_type.startswith("text/plain;")
