"""scripts/monitor_models.py against a real Prometheus scraping real metrics endpoints.

Two endpoints serve the model server's own metrics code (aistudio.serving.metrics.ServerMetrics)
and drift detector (aistudio.serving.drift.DriftMonitor), driven with observations: a healthy
replica and a degraded one (30 % server errors, slow, unhappy users, drifted prompts). A real
server could not be pushed into those states on purpose. Prometheus scrapes both every second and
labels them namespace=healthy / namespace=degraded, so one Prometheus serves every case.

Counters are driven in two phases: `increase()` only sees growth between scrapes, so every series
is created first (phase 0), scraped, and only then does the traffic under test arrive (phase 1).
Prometheus extrapolates increases a little, hence the small tolerances on ratios.

`dvc` is a recorded stand-in first on PATH: a real `dvc repro` here would retrain everything.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aistudio.deploy.contract import metric_family
from aistudio.deploy.monitor import find_breaches, histogram_quantile, promql_queries
from aistudio.monitoring_config import DriftConfig, RetrainConfig, load_monitoring_config
from aistudio.serving.drift import DriftMonitor, build_reference_profile, input_features
from aistudio.serving.metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "monitoring_config.yaml"
MODEL = "tiny-phi"
WAIT_S = 60.0
WORDS = ("sort", "count", "merge", "the", "list", "table", "file", "word", "number", "and", "return", "print")


def normal_prompt(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))


def drifted_prompt(rng: random.Random) -> str:
    return " ".join(
        f"0x{rng.getrandbits(32):08X}::{rng.randint(0, 99999)}!!" for _ in range(rng.randint(8, 20))
    )


def features(prompt: str) -> dict[str, float | str]:
    return input_features(prompt, token_ids=list(range(len(prompt.split()))), domain="code")


def drift_monitor(prompt_of: Any, seed: int) -> DriftMonitor:
    """A DriftMonitor over 300 prompts from `prompt_of`, evaluated against the normal reference."""
    reference = build_reference_profile(features(normal_prompt(random.Random(i))) for i in range(2000))
    monitor = DriftMonitor(reference, DriftConfig(window_size=300, min_samples=300, evaluate_every=300))
    rng = random.Random(seed)
    for _ in range(300):
        monitor.observe(features(prompt_of(rng)))
    assert monitor.evaluations == 1
    return monitor


@dataclass
class Replica:
    """One metrics endpoint: its ServerMetrics, drift monitor, URL and expected values."""

    metrics: ServerMetrics
    drift: DriftMonitor
    url: str = ""

    def drift_report(self) -> dict[str, Any]:
        return {"enabled": True, **self.drift.report()}


def new_replica(drifted: bool) -> Replica:
    metrics = ServerMetrics(models=[MODEL])
    metrics.set_model_info(MODEL, "2", "fp32")
    monitor = drift_monitor(drifted_prompt if drifted else normal_prompt, seed=7)
    metrics.set_drift(monitor.scores(), monitor.detected)
    return Replica(metrics, monitor)


def phase0(replica: Replica, degraded: bool) -> None:
    """Create every series this replica will grow (see the module docstring)."""
    m = replica.metrics
    m.observe_request(MODEL, None, 200, 0.05)
    if degraded:
        m.observe_request(MODEL, None, 500, 4.0)
    m.count_feedback("code-adapter", "control", "positive")
    m.count_feedback("code-adapter", "control", "negative")


def phase1(replica: Replica, degraded: bool) -> None:
    m = replica.metrics
    if degraded:
        for _ in range(70):
            m.observe_request(MODEL, None, 200, 0.1)
        for _ in range(30):
            m.observe_request(MODEL, None, 500, 4.0)
        outcomes = ["positive"] * 10 + ["negative"] * 15
    else:
        for _ in range(100):
            m.observe_request(MODEL, None, 200, 0.1)
        outcomes = ["positive"] * 24 + ["negative"] * 1
    for outcome in outcomes:
        m.count_feedback("code-adapter", "control", outcome)


def instant(prometheus: str, expr: str) -> float | None:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_until(condition: Any, what: str, deadline: float) -> None:
    """Poll `condition` every 0.2 s until it holds; fail the test at `deadline` (monotonic)."""
    while True:
        try:
            if condition():
                return
        except OSError:
            pass  # Prometheus still starting
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Scraped:
    prometheus: str
    healthy: Replica
    degraded: Replica


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, deploy_kit: Any) -> Iterator[Scraped]:
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus is not on PATH; run `make setup` (installs Debian's prometheus package)")
    healthy, degraded = new_replica(drifted=False), new_replica(drifted=True)
    phase0(healthy, degraded=False)
    phase0(degraded, degraded=True)
    work = tmp_path_factory.mktemp("prometheus")
    with (
        deploy_kit.metrics_endpoint(healthy.metrics, healthy.drift_report()) as healthy.url,
        deploy_kit.metrics_endpoint(degraded.metrics, degraded.drift_report()) as degraded.url,
    ):
        targets = [
            {"targets": [replica.url.removeprefix("http://")], "labels": {"namespace": name}}
            for name, replica in (("healthy", healthy), ("degraded", degraded))
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "model-server", "static_configs": targets}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = deploy_kit.free_port()
        prometheus = f"http://127.0.0.1:{port}"
        log = (work / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + WAIT_S
            wait_until(
                lambda: instant(prometheus, 'count(up{job="model-server"} == 1)') == 2,
                "both targets up",
                deadline,
            )
            wait_until(
                lambda: instant(prometheus, "count(aistudio_feedback_total)") == 4,
                "phase 0 scraped",
                deadline,
            )
            time.sleep(1.5)  # one more scrape of phase 0, so every series has a sample before the jump
            phase1(healthy, degraded=False)
            phase1(degraded, degraded=True)
            wait_until(
                lambda: (
                    instant(prometheus, "sum(aistudio_requests_total)") == 1 + 2 + 100 + 100
                    and instant(prometheus, "sum(aistudio_feedback_total)") == 4 + 50
                ),
                "phase 1 scraped",
                deadline,
            )
            yield Scraped(prometheus, healthy, degraded)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def monitor_models(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "monitor_models.py"), "--config", str(CONFIG), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})}, cwd=cwd or REPO,
    )  # fmt: skip


@pytest.fixture
def dvc(tmp_path: Path, deploy_kit: Any) -> Any:
    return deploy_kit.make_recorded_binary(tmp_path / "bin", "dvc")


# A retrain imports mlflow and appends to the audit trail; a fresh sqlite store first migrates
# its schema (~30 s on a loaded machine), so the retrain tests share one and wait longer.
RETRAIN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit")


def isolated_audit(audit_dir: Path) -> tuple[str, ...]:
    """A retrain is audited and may snapshot feedback: both away from the checkout under test."""
    return (
        "--tracking-uri", f"sqlite:///{audit_dir / 'mlflow.db'}",
        "--audit-mirror", str(audit_dir / "audit.jsonl"), "--feedback", str(audit_dir / "no-feedback"),
    )  # fmt: skip


def retrain_entries(audit_dir: Path) -> list[dict[str, Any]]:
    lines = (audit_dir / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["action"] == "retrain_trigger"]


def path_with(binary: Any) -> dict[str, str]:
    return {"PATH": f"{binary.bin_dir}{os.pathsep}{os.environ['PATH']}"}


# --- against Prometheus ---------------------------------------------------------------------------------


def test_a_degraded_namespace_breaches_every_threshold(scraped: Scraped, tmp_path: Path) -> None:
    out = tmp_path / "monitoring.json"
    result = monitor_models(
        "--prometheus", scraped.prometheus, "--namespace", "degraded", "--window", "5m", "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    values = report["values"]
    assert values["drift_score"] == max(scraped.degraded.drift.scores().values())
    assert values["error_rate"] == pytest.approx(0.30, abs=0.02)
    # 70 requests at 0.1 s, 30 at 4 s: rank 95 lies in the (3, 5] bucket, 25 of its 30 in.
    assert values["p95_latency_s"] == pytest.approx(3.0 + 2.0 * 25 / 30, abs=0.15)
    assert values["positive_feedback_rate"] == pytest.approx(10 / 25, abs=0.02)
    # increase() extrapolates towards the window's ends: with series seconds old, counts come out
    # high (never low); the ratios above divide that out.
    assert 25 <= values["feedback_count"] < 40
    assert {b["signal"] for b in report["breaches"]} == {
        "drift_score", "error_rate", "p95_latency_s", "positive_feedback_rate",
    }  # fmt: skip
    assert report["retrain_recommended"] is True and report["retrain"] is None
    assert report["thresholds"] == load_monitoring_config(CONFIG).retrain.model_dump()
    assert report["source"] == {
        "kind": "prometheus", "url": scraped.prometheus, "window": "5m", "namespace": "degraded",
    }  # fmt: skip
    assert "retrain recommended" in result.stdout


def test_a_healthy_namespace_breaches_nothing(scraped: Scraped, tmp_path: Path) -> None:
    out = tmp_path / "monitoring.json"
    result = monitor_models(
        "--prometheus", scraped.prometheus, "--namespace", "healthy", "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    values = report["values"]
    assert values["drift_score"] == max(scraped.healthy.drift.scores().values()) < 0.25
    assert values["error_rate"] == 0.0  # no failed series at all: `or vector(0)`, not "no data"
    assert values["p95_latency_s"] < 0.2
    assert values["positive_feedback_rate"] == pytest.approx(24 / 25, abs=0.02)
    assert report["breaches"] == [] and report["not_evaluated"] == {}
    assert report["retrain_recommended"] is False


def test_retrain_runs_dvc_repro_only_when_a_threshold_is_crossed(
    scraped: Scraped, dvc: Any, tmp_path: Path, audit_dir: Path
) -> None:
    out = tmp_path / "monitoring.json"
    common = (
        "--prometheus",
        scraped.prometheus,
        "--output",
        str(out),
        "--retrain",
        *isolated_audit(audit_dir),
    )
    healthy = monitor_models(*common, "--namespace", "healthy", env=path_with(dvc))
    assert healthy.returncode == 0, healthy.stderr
    assert dvc.calls() == []
    assert json.loads(out.read_text())["retrain"] is None

    degraded = monitor_models(
        *common, "--namespace", "degraded", env=path_with(dvc), timeout=RETRAIN_TIMEOUT_S
    )
    assert degraded.returncode == 0, degraded.stderr
    assert dvc.calls() == [["repro"]]
    assert json.loads(out.read_text())["retrain"]["command"] == ["dvc", "repro"]
    assert json.loads(out.read_text())["retrain"]["returncode"] == 0
    # Audited before and after: who, why (the breaches), which data (no new feedback: HEAD).
    started, finished = retrain_entries(audit_dir)[-2:]
    breaches = json.loads(out.read_text())["breaches"]
    assert started["reason"] == "; ".join(b["message"] for b in breaches) != ""
    assert started["details"]["data_version"] == finished["details"]["data_version"]
    assert finished["details"]["returncode"] == 0 and finished["outcome"] == "ok"


def test_retrain_as_an_experiment_runs_dvc_exp_run(
    scraped: Scraped, dvc: Any, tmp_path: Path, audit_dir: Path
) -> None:
    result = monitor_models(
        "--prometheus", scraped.prometheus, "--namespace", "degraded", "--retrain", "--exp",
        "--output", str(tmp_path / "m.json"), *isolated_audit(audit_dir), env=path_with(dvc),
        timeout=RETRAIN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert dvc.calls() == [["exp", "run"]]


def test_every_query_reads_only_metrics_the_server_exports() -> None:
    import re

    for name, expr in promql_queries("1h", 'ns-with-"quote').items():
        for series in re.findall(r"\baistudio_\w+", expr):
            assert metric_family(series) is not None, f"{name}: {series}"
        assert 'namespace="ns-with-\\"quote"' in expr


# --- against one server ---------------------------------------------------------------------------


def test_server_mode_reads_the_drift_endpoint_and_the_servers_own_metrics(
    scraped: Scraped, tmp_path: Path
) -> None:
    out = tmp_path / "monitoring.json"
    result = monitor_models("--server", scraped.degraded.url, "--output", str(out))
    assert result.returncode == 0, result.stderr
    values = json.loads(out.read_text())["values"]
    assert values["drift_score"] == max(scraped.degraded.drift.scores().values())
    # Totals since start: phase 0 and 1 together, exactly (no rate, no extrapolation).
    assert values["request_count"] == 102
    assert values["error_rate"] == pytest.approx(31 / 102)
    assert values["positive_feedback_rate"] == pytest.approx(11 / 27)
    # The same cumulative buckets through Prometheus' own histogram_quantile.
    buckets = 'aistudio_request_duration_seconds_bucket{namespace="degraded"}'
    lifetime = f"histogram_quantile(0.95, sum by (le) ({buckets}))"
    assert values["p95_latency_s"] == pytest.approx(instant(scraped.prometheus, lifetime), rel=1e-9)


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--prometheus", "--server"])
def test_an_unreachable_source_is_one_line_and_exit_2(flag: str, deploy_kit: Any, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{deploy_kit.free_port()}"  # bound and released: nothing listens there
    result = monitor_models(flag, url, "--output", str(tmp_path / "m.json"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    what = "Prometheus" if flag == "--prometheus" else "model server"
    assert lines[0].startswith(f"error: {what} at {url} is unreachable: ")
    assert "Connection refused" in lines[0]
    assert not (tmp_path / "m.json").exists()


def test_a_bad_window_is_rejected_before_any_query(tmp_path: Path) -> None:
    result = monitor_models("--prometheus", "http://127.0.0.1:1", "--window", "an hour")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: --window 'an hour' is not a Prometheus duration (e.g. 30m, 1h, 1d)"
    )


# --- the threshold rules --------------------------------------------------------------------------


def test_few_ratings_leave_the_feedback_rate_unjudged() -> None:
    breaches, skipped = find_breaches(
        {
            "drift_score": 0.1,
            "error_rate": 0.0,
            "p95_latency_s": 0.5,
            "positive_feedback_rate": 0.1,
            "feedback_count": 5,
        },
        RetrainConfig(),
    )
    assert breaches == []
    assert skipped == {"positive_feedback_rate": "5 ratings < min_feedback 20"}


def test_values_at_the_threshold_do_not_breach() -> None:
    cfg = RetrainConfig()
    values = {
        "drift_score": cfg.max_drift_score,
        "error_rate": cfg.max_error_rate,
        "p95_latency_s": cfg.max_p95_latency_s,
        "positive_feedback_rate": cfg.min_positive_feedback_rate,
        "feedback_count": cfg.min_feedback,
    }
    assert find_breaches(values, cfg) == ([], {})


def test_histogram_quantile_matches_prometheus_at_the_edges() -> None:
    inf = float("inf")
    assert histogram_quantile(0.95, [(1.0, 0.0), (inf, 0.0)]) is None  # no observations
    assert histogram_quantile(0.5, [(1.0, 10.0), (2.0, 10.0), (inf, 10.0)]) == 0.5  # first bucket from 0
    assert (
        histogram_quantile(0.99, [(1.0, 5.0), (2.0, 5.0), (inf, 10.0)]) == 2.0
    )  # +Inf: highest finite bound
