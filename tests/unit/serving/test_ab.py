"""A/B routing is sticky and honours the weights; feedback is attributed to the variant that answered."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from aistudio.config import validate
from aistudio.errors import UserError
from aistudio.monitoring_config import ExperimentConfig, MonitoringConfig, load_monitoring_config
from aistudio.serving.ab import ABRouter, Assignment, FeedbackAlreadyRecorded, FeedbackStore, bucket


def experiment(name: str = "exp", weights: tuple[float, ...] = (1, 1), **extra) -> ExperimentConfig:
    variants = [{"name": f"v{i}", "model": f"adapter-{i}", "weight": w} for i, w in enumerate(weights)]
    return ExperimentConfig.model_validate({"name": name, "variants": variants, **extra})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- routing -----------------------------------------------------------------------------------------


def test_the_same_user_keeps_the_same_variant() -> None:
    router = ABRouter([experiment(weights=(1, 1, 1))])
    for user in (f"user-{i}" for i in range(200)):
        first = router.route("ab:exp", user=user, header_value=None)
        assert all(router.route("ab:exp", user=user, header_value=None) == first for _ in range(5))


def test_assignment_is_the_same_in_another_process() -> None:
    router = ABRouter([experiment(weights=(1, 1, 1))])
    users = [f"user-{i}" for i in range(50)]
    here = [router.assign("exp", u) for u in users]
    code = (
        "from aistudio.monitoring_config import ExperimentConfig\n"
        "from aistudio.serving.ab import ABRouter\n"
        "v = [{'name': f'v{i}', 'model': f'adapter-{i}', 'weight': 1} for i in range(3)]\n"
        "r = ABRouter([ExperimentConfig.model_validate({'name': 'exp', 'variants': v})])\n"
        f"print(','.join(r.assign('exp', f'user-{{i}}') for i in range({len(users)})))\n"
    )
    # A fresh interpreter has a different str hash seed: only a real hash keeps users in place.
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert there.stdout.strip().split(",") == here


@pytest.mark.parametrize("weights", [(1, 1), (9, 1), (0.2, 0.3, 0.5)])
def test_shares_match_the_weights_over_20k_users(weights: tuple[float, ...]) -> None:
    router = ABRouter([experiment(weights=weights)])
    n = 20_000
    counts: dict[str, int] = {}
    for i in range(n):
        variant = router.assign("exp", f"user-{i}")
        counts[variant] = counts.get(variant, 0) + 1
    total = sum(weights)
    for i, weight in enumerate(weights):
        p = weight / total
        # Four binomial standard deviations: a deterministic hash fails this ~1 time in 15,000.
        tolerance = 4 * math.sqrt(n * p * (1 - p))
        assert abs(counts.get(f"v{i}", 0) - n * p) < tolerance, (counts, weights)


def test_buckets_are_uniform_and_salted_by_experiment() -> None:
    points = [bucket("exp", str(i)) for i in range(10_000)]
    assert all(0.0 <= x < 1.0 for x in points)
    assert abs(sum(points) / len(points) - 0.5) < 0.01
    assert [bucket("other", str(i)) for i in range(100)] != points[:100]


def test_route_decides_the_variants_model_and_ignores_ordinary_models() -> None:
    router = ABRouter([experiment(aliases=["assistant"])])
    assignment = router.route("ab:exp", user="alice", header_value=None)
    assert isinstance(assignment, Assignment)
    assert assignment.experiment == "exp"
    assert assignment.model == f"adapter-{assignment.variant[1:]}"
    assert router.route("assistant", user="alice", header_value=None) == assignment
    assert router.route("code", user="alice", header_value=None) is None
    with pytest.raises(KeyError, match="unknown experiment 'nope'"):
        router.route("ab:nope", user="alice", header_value=None)


def test_header_sticky_experiments_key_on_the_header_value() -> None:
    router = ABRouter([experiment(sticky_by="header", header="X-Session-Id")])
    by_header = {router.route("ab:exp", user=None, header_value=f"s{i}").variant for i in range(64)}
    assert by_header == {"v0", "v1"}
    same = {router.route("ab:exp", user=f"u{i}", header_value="s1").variant for i in range(20)}
    assert len(same) == 1  # the user does not matter, the header does


def test_a_request_without_a_key_is_still_assigned_by_the_weights() -> None:
    router = ABRouter([experiment(weights=(3, 1))])
    assert router.route("ab:exp", None, None, fallback_key="req-1") == router.route(
        "ab:exp", None, None, "req-1"
    )
    drawn = [router.route("ab:exp", user=None, header_value=None).variant for _ in range(400)]
    assert 0.6 < drawn.count("v0") / 400 < 0.9


def test_unknown_variant_models_are_reported_for_the_startup_check() -> None:
    router = ABRouter([experiment()])
    assert router.unknown_models(["adapter-0", "adapter-1"]) == []
    (problem,) = router.unknown_models(["adapter-0", "base"])
    assert "variant 'v1' uses model 'adapter-1'" in problem


# --- config --------------------------------------------------------------------------------------------


def test_the_shipped_monitoring_config_is_valid(repo_root) -> None:
    cfg = load_monitoring_config(repo_root / "configs" / "monitoring_config.yaml")
    assert cfg.ab.experiments and cfg.drift.psi_threshold == 0.2
    assert ABRouter(cfg.ab.experiments).experiment_for("ab:" + cfg.ab.experiments[0].name)


def test_weights_are_relative_and_normalised() -> None:
    assert experiment(weights=(9, 1)).shares() == pytest.approx([0.9, 0.1])
    assert experiment(weights=(0.9, 0.1)).shares() == pytest.approx([0.9, 0.1])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"drift": {"psi_threshold": -1}},
            "monitoring_config.yaml: drift.psi_threshold must be > 0 (got -1)",
        ),
        (
            {
                "ab": {
                    "experiments": [
                        {
                            "name": "e",
                            "variants": [
                                {"name": "a", "model": "m", "weight": 0},
                                {"name": "b", "model": "m", "weight": 1},
                            ],
                        }
                    ]
                }
            },
            "monitoring_config.yaml: ab.experiments.0.variants.0.weight must be > 0 (got 0)",
        ),
        (
            {"ab": {"experiments": [{"name": "e", "variants": [{"name": "a", "model": "m", "weight": 1}]}]}},
            "monitoring_config.yaml: ab.experiments.0.variants must have at least 2 item(s)",
        ),
        (
            {
                "ab": {
                    "experiments": [
                        {
                            "name": "e",
                            "sticky_by": "header",
                            "variants": [
                                {"name": "a", "model": "m", "weight": 1},
                                {"name": "b", "model": "m", "weight": 1},
                            ],
                        }
                    ]
                }
            },
            "monitoring_config.yaml: ab.experiments.0: sticky_by: header needs header",
        ),
        (
            {"drift": {"min_samples": 600}},
            "monitoring_config.yaml: drift: min_samples (600) must be <= window_size (500)",
        ),
        (
            {"drift": {"features": ["prompt_length"]}},
            "monitoring_config.yaml: drift.features names unknown feature(s) ['prompt_length']",
        ),
        (
            {"retrain": {"max_error_rate": 2}},
            "monitoring_config.yaml: retrain.max_error_rate must be in [0, 1] (got 2)",
        ),
        (
            {"prometheus": {"url": "prometheus:9090"}},
            "monitoring_config.yaml: prometheus.url must be an http:// or https:// URL",
        ),
        ({"alerts": {}}, "monitoring_config.yaml: alerts is not a known key"),
    ],
)
def test_config_errors_name_the_file_and_the_key(data: dict, message: str) -> None:
    with pytest.raises(UserError) as raised:
        validate(MonitoringConfig, data, "monitoring_config.yaml")
    assert any(line.startswith(message) for line in raised.value.problems), raised.value.problems


# --- feedback ---------------------------------------------------------------------------------------------


def test_feedback_is_counted_for_the_variant_that_answered() -> None:
    exp = experiment()
    store = FeedbackStore([exp])
    store.record_assignment("r1", Assignment("exp", "v0", "adapter-0"))
    store.record_assignment("r2", Assignment("exp", "v1", "adapter-1"))
    store.record_assignment("r3", Assignment("exp", "v1", "adapter-1"))
    assert store.record_feedback("r1", "positive") == ("exp", "v0")
    assert store.record_feedback("r2", "negative") == ("exp", "v1")
    assert store.record_feedback("r3", "positive") == ("exp", "v1")
    summary = store.summary()["experiments"]["exp"]
    assert summary["v0"] == {
        "model": "adapter-0",
        "assignments": 1,
        "positive": 1,
        "negative": 0,
        "feedback": 1,
        "positive_rate": 1.0,
    }
    assert summary["v1"]["positive_rate"] == 0.5 and summary["v1"]["assignments"] == 2


def test_variants_without_traffic_are_listed_with_zero_counts() -> None:
    summary = FeedbackStore([experiment()]).summary()["experiments"]["exp"]
    assert summary["v0"]["assignments"] == 0 and summary["v0"]["positive_rate"] is None


def test_unknown_request_ids_are_key_errors() -> None:
    with pytest.raises(KeyError):
        FeedbackStore().record_feedback("never-seen", "positive")


def test_a_request_is_rated_once_and_outcomes_are_checked() -> None:
    store = FeedbackStore()
    store.record_assignment("r1", Assignment("exp", "v0", "m"))
    with pytest.raises(ValueError, match="outcome"):
        store.record_feedback("r1", "meh")
    store.record_feedback("r1", "negative")
    with pytest.raises(FeedbackAlreadyRecorded):
        store.record_feedback("r1", "positive")
    assert store.summary()["experiments"]["exp"]["v0"]["negative"] == 1


def test_entries_expire_after_the_ttl_but_the_totals_remain() -> None:
    clock = FakeClock()
    store = FeedbackStore(ttl_s=60, clock=clock)
    store.record_assignment("old", Assignment("exp", "v0", "m"))
    clock.now += 61
    with pytest.raises(KeyError):
        store.record_feedback("old", "positive")
    assert store.summary()["experiments"]["exp"]["v0"]["assignments"] == 1


def test_the_store_never_holds_more_than_max_entries() -> None:
    store = FeedbackStore(max_entries=100)
    for i in range(1000):
        store.record_assignment(f"r{i}", Assignment("exp", "v0", "m"))
    assert len(store) == 100
    with pytest.raises(KeyError):
        store.record_feedback("r0", "positive")  # the oldest went first
    assert store.record_feedback("r999", "positive") == ("exp", "v0")
