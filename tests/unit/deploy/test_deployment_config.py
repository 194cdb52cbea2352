"""aistudio.deploy.deployment_config: configs/deployment_config.yaml is validated once, and the
render of every overlay (the real kustomize) carries its values; bad input is exit 2 and one line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aistudio.deploy.deployment_config import DeploymentConfig, load_deployment_config
from aistudio.deploy.render import render_overlay
from aistudio.deploy.validate import check_objects
from aistudio.errors import UserError

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
CONFIG = REPO / "configs" / "deployment_config.yaml"
OVERLAYS = ("dev", "staging", "production")


def changed(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the committed config with `change` applied to its mapping."""
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path = tmp_path / "deployment_config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(path: Path) -> DeploymentConfig:
    return load_deployment_config(path, OVERLAYS)


def one(objects: list[dict[str, Any]], kind: str, name: str = "model-server") -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def template_args(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    return {a["name"]: a.get("value") for a in one(objects, "AnalysisTemplate", name)["spec"]["args"]}


def server_resources(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Rollout")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "server")["resources"]


def production_objects(config: DeploymentConfig) -> list[dict[str, Any]]:
    return render_overlay(K8S, "production", deployment=config)


# --- the committed config ----------------------------------------------------------------------------


def test_the_committed_config_validates_with_one_entry_per_overlay() -> None:
    config = load(CONFIG)
    assert sorted(config.environments) == sorted(OVERLAYS)
    assert {name: env.strategy for name, env in config.environments.items()} == {
        "dev": "rolling",
        "staging": "blueGreen",
        "production": "canary",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_render_passes_the_offline_checks(overlay: str) -> None:
    assert check_objects(render_overlay(K8S, overlay, deployment=load(CONFIG))) == []


def test_the_committed_values_are_what_each_environment_ran_before_the_config() -> None:
    config = load(CONFIG)
    prod = render_overlay(K8S, "production", deployment=config)
    assert one(prod, "Rollout")["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 10},
        {"pause": {"duration": "10m"}},
        {"setWeight": 50},
        {"pause": {"duration": "10m"}},
        {"setWeight": 100},
    ]
    assert one(prod, "Rollout")["spec"]["replicas"] == 4
    hpa = one(prod, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (4, 12)
    assert template_args(prod, "model-server-success-rate") | {"namespace": None, "canary-hash": None} == {
        "namespace": None,
        "canary-hash": None,
        "min-success-rate": "0.99",
        "min-requests": "20",
        "measurements": "30",
        "inconclusive-limit": "3",
    }
    assert server_resources(prod)["limits"] == {"cpu": "8", "memory": "24Gi", "nvidia.com/gpu": "1"}
    staging = render_overlay(K8S, "staging", deployment=config)
    assert template_args(staging, "model-server-latency-p95")["max-p95-seconds"] == "2"
    assert template_args(staging, "model-server-latency-p95")["measurements"] == "10"
    dev = render_overlay(K8S, "dev", deployment=config)
    assert one(dev, "Rollout")["spec"]["replicas"] == 1
    assert one(dev, "Rollout")["spec"]["strategy"] == {"canary": {"steps": [{"setWeight": 100}]}}
    assert server_resources(dev) == {
        "requests": {"cpu": "1", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


# --- a changed value shows in the render -------------------------------------------------------------


def test_a_changed_canary_weight_shows_in_the_rendered_rollout(tmp_path: Path) -> None:
    path = changed(
        tmp_path, lambda d: d["environments"]["production"]["canary"]["steps"][0].update(setWeight=25)
    )
    steps = one(production_objects(load(path)), "Rollout")["spec"]["strategy"]["canary"]["steps"]
    assert [s.get("setWeight") for s in steps] == [25, None, 50, None, 100]


def test_changed_thresholds_show_in_the_analysis_templates(tmp_path: Path) -> None:
    def stricter(data: dict[str, Any]) -> None:
        data["environments"]["production"]["analysis"].update(
            min_success_rate=0.995, max_p95_latency_seconds=1.5, min_requests=1_000_000
        )

    objects = production_objects(load(changed(tmp_path, stricter)))
    assert template_args(objects, "model-server-success-rate")["min-success-rate"] == "0.995"
    assert template_args(objects, "model-server-latency-p95")["max-p95-seconds"] == "1.5"
    assert template_args(objects, "model-server-latency-p95")["min-requests"] == "1000000"  # not 1e+06
    # Only production changed: staging renders into its own namespace with its own values.
    staging = render_overlay(K8S, "staging", deployment=load(changed(tmp_path, stricter)))
    assert template_args(staging, "model-server-success-rate")["min-success-rate"] == "0.99"


def test_changed_replicas_hpa_and_resources_show_in_the_render(tmp_path: Path) -> None:
    def bigger(data: dict[str, Any]) -> None:
        env = data["environments"]["production"]
        env.update(replicas=6, hpa={"min_replicas": 6, "max_replicas": 20})
        env["resources"]["limits"]["nvidia.com/gpu"] = 2

    objects = production_objects(load(changed(tmp_path, bigger)))
    assert one(objects, "Rollout")["spec"]["replicas"] == 6
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 20
    assert server_resources(objects)["limits"]["nvidia.com/gpu"] == "2"


# --- bad input: exit 2, one line naming file and key ---------------------------------------------------


def cli_error(config: Path) -> str:
    script = REPO / "scripts" / "deploy_models.py"
    result = subprocess.run(
        [sys.executable, str(script), "validate", "--deployment-config", str(config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def steps_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["environments"]["production"]["canary"]["steps"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: steps_of(d)[2].update(setWeight=5),
            "environments.production.canary: steps.2.setWeight 5 must be greater than the previous "
            "setWeight 10 (weights only increase)",
        ),
        (
            lambda d: steps_of(d)[1].update(pause={}),
            "environments.production.canary.steps.1.pause.duration is required",
        ),
        (
            lambda d: steps_of(d)[1].update(pause=None),
            "environments.production.canary.steps.1.pause.duration is required",
        ),
        (
            lambda d: d["environments"].update(qa=d["environments"]["dev"]),
            "environments.qa is not an environment: the overlays are dev, production, staging",
        ),
        (
            lambda d: d["environments"]["staging"].update(replica=3),
            "environments.staging.replica is not a known key",
        ),
        (
            lambda d: d["environments"]["production"]["analysis"].update(max_error_rate=0.01),
            "environments.production.analysis.max_error_rate is not a known key",
        ),
    ],
    ids=["weights-not-increasing", "pause-without-duration", "bare-pause", "unknown-environment",
         "unknown-key", "unknown-threshold"],
)  # fmt: skip
def test_bad_config_is_exit_2_with_one_line_naming_file_and_key(
    tmp_path: Path, change: Callable, problem: str
) -> None:
    path = changed(tmp_path, change)
    assert cli_error(path) == f"error: {path}: {problem}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: steps_of(d)[1].update(pause={"duration": "ten minutes"}),
            "environments.production.canary.steps.1.pause.duration is not a duration: give seconds or a "
            "number with s, m or h, e.g. 10m (got 'ten minutes')",
        ),
        (
            lambda d: d["environments"].pop("dev"),
            "environments.dev is required: overlay dev renders from it",
        ),
        (
            lambda d: d["environments"]["dev"].update(canary={"steps": [{"setWeight": 100}]}),
            "environments.dev: canary is only for strategy canary (strategy is rolling)",
        ),
        (
            lambda d: d["environments"]["staging"].pop("analysis"),
            "environments.staging: analysis is required for strategy blueGreen",
        ),
        (
            lambda d: d["environments"]["production"].update(replicas=20),
            "environments.production: replicas 20 must lie within hpa.min_replicas..hpa.max_replicas (4..12)",
        ),
        (
            lambda d: d["environments"]["dev"]["resources"]["limits"].pop("memory"),
            "environments.dev.resources: limits must set memory",
        ),
    ],
)
def test_the_schema_names_the_key_and_the_fix(tmp_path: Path, change: Callable, problem: str) -> None:
    path = changed(tmp_path, change)
    with pytest.raises(UserError) as refused:
        load(path)
    assert refused.value.problems == [f"{path}: {problem}"]


# --- a config that does not fit its overlay ---------------------------------------------------------


def test_a_strategy_the_overlay_does_not_wire_is_refused(tmp_path: Path) -> None:
    def canary_in_staging(data: dict[str, Any]) -> None:
        data["environments"]["staging"].update(strategy="canary", canary={"steps": [{"setWeight": 100}]})

    path = changed(tmp_path, canary_in_staging)
    with pytest.raises(UserError) as refused:
        render_overlay(K8S, "staging", deployment=load(path))
    assert refused.value.problems == [
        f"{path}: environments.staging.strategy is canary but k8s/overlays/staging wires blueGreen; the "
        "overlay shapes the strategy (Services, analysis), this file sets its values: make them agree"
    ]


def test_validate_renders_each_overlay_with_its_config_and_refuses_one_that_does_not_fit(
    tmp_path: Path,
) -> None:
    path = changed(
        tmp_path, lambda d: d["environments"]["dev"].update(hpa={"min_replicas": 1, "max_replicas": 2})
    )
    assert cli_error(path) == (
        f"error: {path}: environments.dev.hpa is set but k8s/overlays/dev renders no "
        "HorizontalPodAutoscaler/model-server"
    )


def test_too_few_measurements_for_the_pauses_are_refused(tmp_path: Path) -> None:
    path = changed(tmp_path, lambda d: d["environments"]["production"]["analysis"].update(measurements=15))
    expected = r"measurements 15 x 1m .* ends before the canary's 20 min of pauses; raise it to at least 20"
    with pytest.raises(UserError, match=expected):
        production_objects(load(path))


def test_an_overlay_passing_a_threshold_arg_itself_is_refused(tmp_path: Path) -> None:
    k8s = Path(shutil.copytree(K8S, tmp_path / "k8s"))
    kustomization = k8s / "overlays" / "production" / "kustomization.yaml"
    text = kustomization.read_text()
    tail = "                    podTemplateHashValue: Latest\n"
    assert text.endswith(tail)
    kustomization.write_text(text + '                - name: measurements\n                  value: "30"\n')
    with pytest.raises(UserError) as refused:
        render_overlay(k8s, "production", deployment=load(CONFIG))
    assert refused.value.problems == [
        f"{CONFIG}: environments.production.analysis sets measurements, but k8s/overlays/production passes "
        "it as a Rollout analysis arg too, which would override this file; remove it from the overlay"
    ]


def test_an_hpa_for_an_overlay_that_drops_it_is_refused(tmp_path: Path) -> None:
    path = changed(
        tmp_path, lambda d: d["environments"]["dev"].update(hpa={"min_replicas": 1, "max_replicas": 2})
    )
    with pytest.raises(UserError) as refused:
        render_overlay(K8S, "dev", deployment=load(path))
    assert refused.value.problems == [
        f"{path}: environments.dev.hpa is set but k8s/overlays/dev renders no "
        "HorizontalPodAutoscaler/model-server"
    ]
