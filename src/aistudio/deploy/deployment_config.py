"""The schema for configs/deployment_config.yaml, and how its values land on a render.

The overlays (k8s/overlays/<env>) define each environment's shape; this file its values:
strategy, canary steps, analysis thresholds, replicas, HPA bounds and the server's resources.
`apply_deployment` writes them onto the objects `kubectl kustomize` rendered, so the render is
the only place they meet, and a value lives in one file. Problems read like every other config
error, one line each, e.g. ``configs/deployment_config.yaml: environments.production.canary:
steps.2.setWeight 5 must be greater than the previous setWeight 10 (weights only increase)``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, model_validator

from aistudio.config import ClosedUnit, Strict, read_yaml, validate
from aistudio.errors import UserError
from aistudio.layout import DEPLOYMENT_CONFIG_FILE

Strategy = Literal["rolling", "blueGreen", "canary"]

# The AnalysisTemplate args (k8s/base/analysis-templates.yaml) each threshold sets. A Rollout
# that passed one of them itself would override this file silently, so the render refuses it.
THRESHOLD_ARGS: dict[str, str] = {
    "min_success_rate": "min-success-rate",
    "max_p95_latency_seconds": "max-p95-seconds",
    "min_requests": "min-requests",
    "measurements": "measurements",
    "inconclusive_limit": "inconclusive-limit",
}

# Argo Rollouts durations: a number of seconds, or Go-style parts with units (10m, 1h, 1m30s).
_DURATION = re.compile(r"^(?:[0-9]+|(?:[0-9]+[hms])+)$")
_DURATION_PART = re.compile(r"([0-9]+)([hms]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
# A Kubernetes resource quantity: 500m, 2, 1.5, 16Gi, 1e3.
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][0-9]+|[KMGTPE]i|[mkMGTPE])?$")


def duration_seconds(value: str | int) -> int:
    text = str(value)
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    if isinstance(value, bool) or not _DURATION.match(text) or seconds == 0:
        raise ValueError(
            f"is not a duration: give seconds or a number with s, m or h, e.g. 10m (got {value!r})"
        )
    return seconds


def _duration(value: str | int) -> str | int:
    duration_seconds(value)
    return value


def _quantity(value: Any) -> str:
    # YAML reads `cpu: 1` as an int; the manifests carry quantities as strings either way.
    text = str(value)
    if isinstance(value, bool) or not _QUANTITY.match(text):
        raise ValueError(f"is not a Kubernetes quantity such as 500m, 2 or 16Gi (got {value!r})")
    return text


Quantity = Annotated[str, BeforeValidator(_quantity)]
Duration = Annotated[str | int, AfterValidator(_duration)]


class Resources(Strict):
    """The server container's requests and limits, as the Pod spec takes them."""

    requests: dict[str, Quantity]
    limits: dict[str, Quantity]

    @model_validator(mode="after")
    def _cpu_and_memory_set(self) -> Resources:
        for side in ("requests", "limits"):
            missing = [name for name in ("cpu", "memory") if name not in getattr(self, side)]
            if missing:
                raise ValueError(f"{side} must set {' and '.join(missing)}")
        return self


class Hpa(Strict):
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Hpa:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} must be >= min_replicas {self.min_replicas}")
        return self


class Pause(Strict):
    duration: Duration


class CanaryStep(Strict):
    """One step of Argo's canary, spelt as Argo spells it: `setWeight: 10` or `pause: {duration: 10m}`."""

    setWeight: int | None = Field(default=None, gt=0, le=100)  # noqa: N815 - Argo's field name
    pause: Pause | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_pause_has_no_duration(cls, data: Any) -> Any:
        # `- pause:` reads as None; say what it lacks instead of "a step is setWeight or pause".
        if isinstance(data, dict) and "pause" in data and data["pause"] is None:
            return {**data, "pause": {}}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> CanaryStep:
        if (self.setWeight is None) == (self.pause is None):
            raise ValueError("a step is either setWeight: <percent> or pause: {duration: <time>}")
        return self

    def manifest(self) -> dict[str, Any]:
        if self.pause is not None:
            return {"pause": {"duration": self.pause.duration}}
        return {"setWeight": self.setWeight}


class CanaryConfig(Strict):
    steps: list[CanaryStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights_increase(self) -> CanaryConfig:
        previous = 0
        for i, step in enumerate(self.steps):
            if step.setWeight is None:
                continue
            if step.setWeight <= previous:
                raise ValueError(
                    f"steps.{i}.setWeight {step.setWeight} must be greater than the previous setWeight "
                    f"{previous} (weights only increase)"
                )
            previous = step.setWeight
        return self

    def pause_seconds(self) -> int:
        return sum(duration_seconds(s.pause.duration) for s in self.steps if s.pause is not None)


class AnalysisThresholds(Strict):
    """The success conditions of the Prometheus AnalysisTemplates, per environment."""

    min_success_rate: ClosedUnit
    max_p95_latency_seconds: float = Field(gt=0)
    min_requests: int = Field(ge=1)
    measurements: int = Field(ge=1)
    inconclusive_limit: int = Field(ge=0)

    def template_args(self) -> dict[str, str]:
        """Arg name -> value, as AnalysisTemplate args take them (strings: 2, not 2.0 or 1e+06)."""
        return {arg: _arg_text(getattr(self, key)) for key, arg in THRESHOLD_ARGS.items()}


def _arg_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class EnvironmentDeployment(Strict):
    strategy: Strategy
    replicas: int = Field(ge=1)
    hpa: Hpa | None = None
    resources: Resources
    canary: CanaryConfig | None = None
    analysis: AnalysisThresholds | None = None

    @model_validator(mode="after")
    def _strategy_has_its_sections(self) -> EnvironmentDeployment:
        if (self.canary is not None) != (self.strategy == "canary"):
            raise ValueError(
                "canary.steps is required for strategy canary"
                if self.canary is None
                else f"canary is only for strategy canary (strategy is {self.strategy})"
            )
        if (self.analysis is not None) != (self.strategy != "rolling"):
            raise ValueError(
                f"analysis is required for strategy {self.strategy}"
                if self.analysis is None
                else "analysis is not for strategy rolling: a rolling update runs no analysis"
            )
        if self.hpa is not None and not self.hpa.min_replicas <= self.replicas <= self.hpa.max_replicas:
            raise ValueError(
                f"replicas {self.replicas} must lie within hpa.min_replicas..hpa.max_replicas "
                f"({self.hpa.min_replicas}..{self.hpa.max_replicas})"
            )
        return self


class DeploymentConfig(Strict):
    environments: dict[str, EnvironmentDeployment]
    _source: str = PrivateAttr(default=str(DEPLOYMENT_CONFIG_FILE))

    @property
    def source(self) -> str:
        return self._source

    def environment(self, name: str) -> EnvironmentDeployment:
        if name not in self.environments:
            raise UserError(f"{self.source}: environments.{name} is required: overlay {name} renders from it")
        return self.environments[name]


def load_deployment_config(
    path: Path | str = DEPLOYMENT_CONFIG_FILE, environments: Iterable[str] | None = None
) -> DeploymentConfig:
    """The validated file; with `environments` (the overlay names), also exactly those entries."""
    path = Path(path)
    config = validate(DeploymentConfig, read_yaml(path), str(path))
    config._source = str(path)
    if environments is not None:
        known = sorted(environments)
        problems = [
            f"{path}: environments.{name} is not an environment: the overlays are {', '.join(known)}"
            for name in config.environments
            if name not in known
        ]
        problems += [
            f"{path}: environments.{name} is required: overlay {name} renders from it"
            for name in known
            if name not in config.environments
        ]
        if problems:
            raise UserError(problems)
    return config


# --- applying it to a render ----------------------------------------------------------------------


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next(
        (o for o in objects if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name),
        None,
    )


def _analysis_blocks(strategy: dict[str, Any]) -> list[dict[str, Any]]:
    canary = strategy.get("canary") or {}
    blocks = [canary.get("analysis")]
    blocks += [step.get("analysis") for step in canary.get("steps") or [] if isinstance(step, dict)]
    blue_green = strategy.get("blueGreen") or {}
    blocks += [blue_green.get("prePromotionAnalysis"), blue_green.get("postPromotionAnalysis")]
    return [block for block in blocks if isinstance(block, dict)]


def _wired_strategy(strategy: dict[str, Any]) -> str:
    if "blueGreen" in strategy:
        return "blueGreen"
    return "canary" if _analysis_blocks(strategy) else "rolling"


def _set_strategy(strategy: dict[str, Any], env: EnvironmentDeployment, key: str, where: str) -> list[str]:
    """Steps into the strategy; the names of the AnalysisTemplates it runs."""
    wired = _wired_strategy(strategy)
    if wired != env.strategy:
        raise UserError(
            f"{key}.strategy is {env.strategy} but {where} wires {wired}; the overlay shapes the "
            "strategy (Services, analysis), this file sets its values: make them agree"
        )
    if env.strategy == "rolling":
        strategy.setdefault("canary", {})["steps"] = [{"setWeight": 100}]
    elif env.canary is not None:
        strategy["canary"]["steps"] = [step.manifest() for step in env.canary.steps]
    templates = []
    for block in _analysis_blocks(strategy):
        passed = sorted(
            arg.get("name") for arg in block.get("args") or [] if arg.get("name") in THRESHOLD_ARGS.values()
        )
        if passed:
            raise UserError(
                f"{key}.analysis sets {', '.join(passed)}, but {where} passes it as a Rollout analysis "
                "arg too, which would override this file; remove it from the overlay"
            )
        templates += [t.get("templateName") for t in block.get("templates") or []]
    return templates


def _set_thresholds(
    objects: list[dict[str, Any]],
    templates: list[str],
    analysis: AnalysisThresholds,
    canary: CanaryConfig | None,
    key: str,
) -> None:
    values = analysis.template_args()
    for name in templates:
        template = _one(objects, "AnalysisTemplate", name)
        if template is None:  # aistudio.deploy.validate reports the dangling reference
            continue
        for arg in (template.get("spec") or {}).get("args") or []:
            if arg.get("name") in values:
                arg["value"] = values[arg["name"]]
        if canary is None:
            continue
        # Background analysis ends after `measurements` intervals; pauses beyond that go unwatched.
        pauses = canary.pause_seconds()
        for metric in (template.get("spec") or {}).get("metrics") or []:
            try:
                interval = duration_seconds(str(metric.get("interval", "1m")))
            except ValueError as exc:
                raise UserError(
                    f"AnalysisTemplate/{name} metric {metric.get('name')} interval {exc}"
                ) from None
            if analysis.measurements * interval < pauses:
                raise UserError(
                    f"{key}.analysis.measurements {analysis.measurements} x {metric.get('interval')} "
                    f"(AnalysisTemplate/{name} metric {metric.get('name')}) ends before the canary's "
                    f"{_minutes(pauses)} of pauses; raise it to at least {-(-pauses // interval)}"
                )


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def apply_deployment(
    objects: list[dict[str, Any]],
    config: DeploymentConfig,
    overlay: str,
    *,
    rollout: str,
    container: str,
) -> list[dict[str, Any]]:
    """A copy of a render with `overlay`'s values of `config` written on (the input is unchanged).

    A config that does not fit the render (another strategy kind, an HPA on one side only) is a
    UserError naming the key: a value that cannot land must not be dropped silently.
    """
    env = config.environment(overlay)
    key = f"{config.source}: environments.{overlay}"
    where = f"k8s/overlays/{overlay}"
    objects = copy.deepcopy(objects)
    workload = _one(objects, "Rollout", rollout)
    if workload is None:
        raise UserError(f"{key}: {where} renders no Rollout/{rollout} to configure")
    spec = workload.setdefault("spec", {})
    spec["replicas"] = env.replicas
    pod = (spec.get("template") or {}).get("spec") or {}
    server = next((c for c in pod.get("containers") or [] if c.get("name") == container), None)
    if server is None:
        raise UserError(f"{key}.resources: {where}'s Rollout/{rollout} has no container '{container}'")
    server["resources"] = env.resources.model_dump()
    templates = _set_strategy(spec.setdefault("strategy", {}), env, key, where)
    if env.analysis is not None:
        _set_thresholds(objects, templates, env.analysis, env.canary, key)
    hpa = _one(objects, "HorizontalPodAutoscaler", rollout)
    if (hpa is None) != (env.hpa is None):
        raise UserError(
            f"{key}.hpa is set but {where} renders no HorizontalPodAutoscaler/{rollout}"
            if hpa is None
            else f"{key}.hpa is required: {where} renders HorizontalPodAutoscaler/{rollout}"
        )
    if hpa is not None and env.hpa is not None:
        hpa["spec"]["minReplicas"] = env.hpa.min_replicas
        hpa["spec"]["maxReplicas"] = env.hpa.max_replicas
    return objects
