"""The schema for configs/monitoring_config.yaml: drift detection, A/B experiments, retrain
thresholds and where Prometheus is. Loaded once at server (or monitor) start-up, validated once.

Problems read like every other config error in the project, one line each:
``monitoring_config.yaml: drift.psi_threshold must be > 0 (got -1)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from aistudio.config import ClosedUnit, OpenUnit, Strict, read_yaml, validate
from aistudio.layout import MONITORING_CONFIG_FILE

# The numeric input features the drift detector computes for every request (see
# aistudio.serving.drift.input_features), and the categorical one. Defined here, below the
# serving layer, so the config can reject a misspelt feature before a server starts.
NUMERIC_DRIFT_FEATURES: tuple[str, ...] = (
    "prompt_chars",
    "token_count",
    "unknown_token_rate",
    "alpha_ratio",
    "digit_ratio",
    "whitespace_ratio",
    "punct_ratio",
    "non_ascii_ratio",
)
CATEGORICAL_DRIFT_FEATURES: tuple[str, ...] = ("domain",)
DRIFT_FEATURES: tuple[str, ...] = NUMERIC_DRIFT_FEATURES + CATEGORICAL_DRIFT_FEATURES

# A request names an experiment as its model: `"model": "ab:<experiment>"` (or one of the
# experiment's aliases).
AB_MODEL_PREFIX = "ab:"
# What a user can say about an answer (POST /v1/feedback, aistudio_feedback_total{outcome}).
FEEDBACK_OUTCOMES: tuple[str, ...] = ("positive", "negative")
# Experiment and variant names become Prometheus label values: a plain identifier alphabet.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _plain_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _positive(value: float) -> float:
    # Field(gt=0) would report "must be > 0.0"; the config files write the bound as people do.
    if not value > 0:
        raise ValueError("must be > 0")
    return value


PlainName = Annotated[str, AfterValidator(_plain_name)]
Positive = Annotated[float, AfterValidator(_positive)]


class DriftConfig(Strict):
    """When and how the server compares recent prompts with the training-data reference profile."""

    window_size: int = Field(500, ge=10)
    # PSI over ~10 bins has a sampling noise of about 9 / n: with 50 prompts that is already
    # near the 0.2 threshold, with 200 it is a fifth of it.
    min_samples: int = Field(200, ge=10)
    evaluate_every: int = Field(50, ge=1)
    psi_threshold: Positive = 0.2
    # Family-wise over the numeric features: each feature's KS test uses this divided by their
    # number (Bonferroni), so monitoring more features does not raise the false-alarm rate.
    ks_pvalue_threshold: OpenUnit = 0.01
    # A KS p-value alone flags differences too small to matter once windows are large; the
    # two-sample KS statistic (the largest gap between the two CDFs) must also reach this.
    ks_min_statistic: ClosedUnit = 0.1
    features: list[str] = Field(default_factory=lambda: list(DRIFT_FEATURES), min_length=1)

    @field_validator("features")
    @classmethod
    def _features_known(cls, features: list[str]) -> list[str]:
        unknown = [f for f in features if f not in DRIFT_FEATURES]
        if unknown:
            raise ValueError(f"names unknown feature(s) {unknown}, expected some of {list(DRIFT_FEATURES)}")
        if len(set(features)) != len(features):
            raise ValueError("lists a feature more than once")
        return features

    @model_validator(mode="after")
    def _window_holds_min_samples(self) -> DriftConfig:
        if self.min_samples > self.window_size:
            raise ValueError(f"min_samples ({self.min_samples}) must be <= window_size ({self.window_size})")
        return self


class VariantConfig(Strict):
    """One arm of an experiment: what serves it (an adapter name or a base model id) and its share."""

    name: PlainName
    model: str = Field(min_length=1)
    weight: Positive


class ExperimentConfig(Strict):
    """An A/B experiment. Weights are relative and normalised per experiment: 9 and 1 mean 90 % /
    10 %, as do 0.9 and 0.1, so a ramp is edited in one place without re-balancing the others."""

    name: PlainName
    variants: list[VariantConfig] = Field(min_length=2)
    sticky_by: Literal["user", "header"] = "user"
    header: str | None = None
    aliases: list[str] = Field(default_factory=list)

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER.fullmatch(value):
            raise ValueError("must be an HTTP header name (letters, digits and '-')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        problems = []
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"variants repeat name(s) {duplicates}")
        if self.sticky_by == "header" and self.header is None:
            problems.append(
                "sticky_by: header needs header (the request header whose value picks the variant)"
            )
        if self.sticky_by == "user" and self.header is not None:
            problems.append("header is only read with sticky_by: header")
        for alias in self.aliases:
            if alias.startswith(AB_MODEL_PREFIX):
                problems.append(
                    f"alias '{alias}' must not start with '{AB_MODEL_PREFIX}' (that form is implicit)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def shares(self) -> list[float]:
        """Each variant's traffic share, in order; they sum to 1."""
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]


class ABConfig(Strict):
    experiments: list[ExperimentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names_and_aliases(self) -> ABConfig:
        names = [exp.name for exp in self.experiments]
        problems = [
            f"experiment '{n}' is defined more than once"
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
        owners: dict[str, str] = {}
        for exp in self.experiments:
            for alias in exp.aliases:
                if alias in owners and owners[alias] != exp.name:
                    problems.append(
                        f"alias '{alias}' is claimed by experiments '{owners[alias]}' and '{exp.name}'"
                    )
                owners.setdefault(alias, exp.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RetrainConfig(Strict):
    """Thresholds the monitor compares production against; crossing any one asks for a retrain."""

    max_drift_score: Positive = 0.25
    max_error_rate: ClosedUnit = 0.05
    max_p95_latency_s: Positive = 2.0
    min_positive_feedback_rate: ClosedUnit = 0.7
    # Below this many ratings the feedback rate is noise (the alert rules use the same floor).
    min_feedback: int = Field(20, ge=1)


class PrometheusConfig(Strict):
    url: str = "http://127.0.0.1:9090"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class MonitoringConfig(Strict):
    """The whole of configs/monitoring_config.yaml."""

    drift: DriftConfig = DriftConfig()
    ab: ABConfig = ABConfig()
    retrain: RetrainConfig = RetrainConfig()
    prometheus: PrometheusConfig = PrometheusConfig()


def load_monitoring_config(path: Path | str = MONITORING_CONFIG_FILE) -> MonitoringConfig:
    """Read and validate the monitoring config; every problem is one line of a UserError."""
    path = Path(path)
    return validate(MonitoringConfig, read_yaml(path), path.name)
