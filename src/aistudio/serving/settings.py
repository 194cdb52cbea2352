"""Server settings: configs/serving.yaml (or $AISTUDIO_SERVING_CONFIG), overridden by AISTUDIO_* env vars.

Precedence, lowest first: defaults here → the YAML file → environment. Nested keys use `__` in
the environment: `AISTUDIO_BATCHING__MAX_BATCH_SIZE=16`, `AISTUDIO_QUEUE__MAX_DEPTH=128`.

API keys never come from a config file (it is committed, or a ConfigMap anyone can read): only
from `AISTUDIO_API_KEYS` (comma list) or from the file `AISTUDIO_API_KEY_FILE` names (one key per
line, `#` comments), which in Kubernetes is a mounted Secret.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from aistudio.config import Strict, format_validation_error, read_yaml
from aistudio.errors import UserError
from aistudio.layout import SERVING_CONFIG_FILE

CONFIG_ENV = "AISTUDIO_SERVING_CONFIG"
ENV_PREFIX = "AISTUDIO_"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


class BatchingSettings(Strict):
    # Rows (prompts x n) per forward pass; the batch waits at most max_wait_ms to fill up.
    max_batch_size: int = Field(8, ge=1, le=256)
    max_wait_ms: float = Field(10.0, ge=0, le=1000)


class QueueSettings(Strict):
    # A full queue answers 503 + Retry-After at once instead of letting latency grow unbounded.
    max_depth: int = Field(64, ge=1)
    # A request that waited this long without reaching the engine gets 503 (queue_timeout).
    timeout_s: float = Field(30.0, gt=0)


class GenerationSettings(Strict):
    max_new_tokens: int = Field(512, ge=1)  # the cap on a request's max_tokens
    default_max_tokens: int = Field(16, ge=1)  # OpenAI's default for completions
    max_prompt_tokens: int = Field(1024, ge=1)
    max_n: int = Field(4, ge=1)
    max_prompts: int = Field(16, ge=1)  # entries of a list `prompt` on /v1/completions
    request_timeout_s: float = Field(120.0, gt=0)
    # One mixed base+adapters batch before /readyz turns ready, so the first user request does
    # not pay for lazy initialisation.
    warmup: bool = True

    @model_validator(mode="after")
    def _default_within_cap(self) -> GenerationSettings:
        if self.default_max_tokens > self.max_new_tokens:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) must be <= "
                f"max_new_tokens ({self.max_new_tokens})"
            )
        return self


class EngineSettings(Strict):
    # torch's intra-op threads. null: torch's default, one per core of the *machine*, which in a
    # container limited to fewer cores (or beside other busy processes) makes every small op wait
    # in a spinning thread barrier; set it to the cores the server may really use.
    torch_threads: int | None = Field(None, ge=1)


class RateLimitSettings(Strict):
    """Token bucket per API key (per client address when auth is off); 0 turns it off."""

    requests_per_second: float = Field(10.0, ge=0)
    burst: int = Field(50, ge=1)


class LimitSettings(Strict):
    max_body_bytes: int = Field(1_048_576, ge=1024)
    rate_limit: RateLimitSettings = RateLimitSettings()


class AuthSettings(Strict):
    # Probes and Prometheus usually cannot present a bearer key; protect them only when the
    # network cannot be trusted to keep them private.
    protect_health: bool = False
    protect_metrics: bool = False


class MonitoringSettings(Strict):
    metrics: bool = True
    drift: bool = True
    # Drift and A/B settings live in the monitoring config; a missing file at the default path
    # means defaults (no experiments), an explicitly configured one must exist.
    config: Path | None = None
    # Default: reference_profile.json inside the bundle; no profile means no drift detection.
    reference_profile: Path | None = None


class DriftOverrides(Strict):
    """Deployment overrides of monitoring_config.yaml's drift section, for a pod that mounts only
    this file (k8s/base/serving.yaml): window → drift.window_size, threshold → drift.psi_threshold."""

    window: int | None = Field(None, ge=10)
    threshold: float | None = Field(None, gt=0)


class LoggingSettings(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Prompts are personal data: off by default, and scrubbed of PII when switched on.
    log_prompts: bool = False


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, validate_default=True
    )

    served_model_name: str | None = Field(None, min_length=1, pattern=r"^[^:\s]+$")
    batching: BatchingSettings = BatchingSettings()
    queue: QueueSettings = QueueSettings()
    generation: GenerationSettings = GenerationSettings()
    engine: EngineSettings = EngineSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    drift: DriftOverrides = DriftOverrides()
    logging: LoggingSettings = LoggingSettings()
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_key_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):  # type: ignore[no-untyped-def]
        # The file's values arrive as init kwargs; the environment wins over them.
        return (env_settings, init_settings)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    def all_api_keys(self) -> list[str]:
        """Keys from AISTUDIO_API_KEYS plus those in api_key_file; read when the server starts."""
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_key_file is not None:
            if not self.api_key_file.is_file():
                raise UserError(
                    f"api_key_file {self.api_key_file} not found "
                    "(set AISTUDIO_API_KEY_FILE to a readable file)"
                )
            for line in self.api_key_file.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(line)
        short = [i for i, k in enumerate(keys) if len(k) < 16]
        if short:
            raise UserError(
                f"{len(short)} API key(s) are shorter than 16 characters; "
                "use long random keys (openssl rand -hex 32)"
            )
        return keys


def load_settings(path: Path | None = None) -> ServingSettings:
    """The file at `path` (or $AISTUDIO_SERVING_CONFIG, or configs/serving.yaml when it exists)
    with AISTUDIO_* overrides; every problem is one line of a UserError."""
    explicit = path
    if explicit is None and os.environ.get(CONFIG_ENV):
        explicit = Path(os.environ[CONFIG_ENV])
    source = explicit or SERVING_CONFIG_FILE
    data: dict[str, Any] = {}
    if explicit is not None or SERVING_CONFIG_FILE.exists():
        data = read_yaml(source)
    if "api_keys" in data:
        raise UserError(
            f"{source.name}: api_keys must not be in a config file; "
            "set AISTUDIO_API_KEYS or AISTUDIO_API_KEY_FILE"
        )
    try:
        return ServingSettings(**data)
    except ValidationError as exc:
        problems = format_validation_error(f"{source.name} (or {ENV_PREFIX}* environment)", exc)
        raise UserError(problems) from None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: list[str], insecure_no_auth: bool) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if keys or insecure_no_auth or is_loopback(host):
        return
    raise UserError(
        f"refusing to serve on {host} without API keys: set AISTUDIO_API_KEYS or AISTUDIO_API_KEY_FILE, "
        "bind to 127.0.0.1, or pass --insecure-no-auth"
    )
