"""Server settings: configs/serving.yaml (or $AISTUDIO_SERVING_CONFIG), overridden by AISTUDIO_* env vars.

Precedence, lowest first: defaults here → the YAML file → environment. Nested keys use `__` in
the environment: `AISTUDIO_SCHEDULER__MAX_ROWS=16`, `AISTUDIO_QUEUE__MAX_DEPTH=128`.

API keys never come from a config file (it is committed, or a ConfigMap anyone can read): only
from the key file `AISTUDIO_API_KEY_FILE` names (lines `id:roles:sha256`, see
aistudio.serving.auth), which in Kubernetes is a mounted Secret, or from `AISTUDIO_API_KEYS`
(comma list of raw keys, which get every role but admin). The same holds for the feedback token
secret: `feedback.secret_file` (a mounted Secret) or `AISTUDIO_FEEDBACK_SECRET`, never the file.
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
from aistudio.feedback.tokens import read_secret
from aistudio.layout import FEEDBACK_STORE_DIR, SERVING_CONFIG_FILE
from aistudio.serving.auth import MIN_KEY_LENGTH, ApiKey, parse_key_file

CONFIG_ENV = "AISTUDIO_SERVING_CONFIG"
ENV_PREFIX = "AISTUDIO_"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


class SchedulerSettings(Strict):
    """The iteration-level scheduler (aistudio.serving.scheduler)."""

    # Rows (choices) generating at once: the decode batch's upper bound and the KV cache's slots.
    max_rows: int = Field(32, ge=1, le=512)
    # Tokens one step may process: one per decoding row, the rest for prefill chunks, so a long
    # prompt cannot stall the rows that are decoding.
    max_step_tokens: int = Field(512, ge=8)
    # At most this many tokens of one prompt per step (chunked prefill).
    prefill_chunk: int = Field(256, ge=8)
    # The KV budget: each admitted row reserves prompt + max_tokens of it; a request that could
    # never fit is refused at once (400), one that fits later waits in the queue.
    max_kv_tokens: int = Field(32768, ge=64)


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
    max_top_logprobs: int = Field(20, ge=0, le=20)  # OpenAI's own cap is 20
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
    # Weights and KV cache in this dtype; "auto": bfloat16 where the CPU multiplies it natively
    # (AVX512-BF16 / AMX), else float32. float32 answers exactly what the evaluated bundle does.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"


class AdapterSettings(Strict):
    """Runtime LoRA adapters (POST /v1/load_lora_adapter, admin role)."""

    # Adapters resident at once, the bundle's included; the least recently used idle one is
    # evicted to make room, one with requests in flight never is.
    max_loras: int = Field(8, ge=1, le=64)
    # Local directories lora_path may point into (resolved, symlinks followed); empty: none.
    allowed_roots: list[Path] = Field(default_factory=list)
    # MLflow tracking URI for models:/ and artifact URIs; null: mlflow.yaml's when it exists.
    tracking_uri: str | None = None


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


class FeedbackSettings(Strict):
    """The feedback loop (aistudio.feedback): recorded answers, signed tokens for POST /v1/feedback."""

    # Served prompts and completions are personal data: recorded only when switched on, and then
    # PII-scrubbed before they reach the disk.
    record: bool = False
    # JSONL segments, one set per process; in the cluster a PVC every replica mounts (ReadWriteMany),
    # which also holds the replay guard's claims (k8s/components/feedback). An S3 prefix is not
    # supported yet.
    directory: Path = FEEDBACK_STORE_DIR
    max_segment_bytes: int = Field(16 << 20, ge=1024)
    max_segment_records: int = Field(10_000, ge=1)
    # How long an answer can be rated: the lifetime of its feedback token.
    token_ttl_s: float = Field(24 * 3600, gt=0)
    # The HMAC secret every replica shares; null: $AISTUDIO_FEEDBACK_SECRET, else no tokens are
    # issued and feedback is only accepted by the replica that served the (A/B) request.
    secret_file: Path | None = None


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, validate_default=True
    )

    served_model_name: str | None = Field(None, min_length=1, pattern=r"^[^:\s]+$")
    scheduler: SchedulerSettings = SchedulerSettings()
    queue: QueueSettings = QueueSettings()
    generation: GenerationSettings = GenerationSettings()
    engine: EngineSettings = EngineSettings()
    adapters: AdapterSettings = AdapterSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    drift: DriftOverrides = DriftOverrides()
    logging: LoggingSettings = LoggingSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    feedback_secret: SecretStr | None = None
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

    def all_api_keys(self) -> list[ApiKey]:
        """Keys from api_key_file (with their roles) plus AISTUDIO_API_KEYS; read at server start."""
        raw = [k.get_secret_value() for k in self.api_keys]
        short = [i for i, k in enumerate(raw) if len(k) < MIN_KEY_LENGTH]
        if short:
            raise UserError(
                f"{len(short)} key(s) in AISTUDIO_API_KEYS are shorter than {MIN_KEY_LENGTH} characters; "
                "use long random keys (openssl rand -hex 32)"
            )
        keys = [ApiKey.from_secret(k) for k in raw]
        if self.api_key_file is not None:
            keys += parse_key_file(self.api_key_file)
        return keys

    def feedback_token_secret(self) -> bytes | None:
        """The shared HMAC secret of feedback tokens (file or AISTUDIO_FEEDBACK_SECRET), or None."""
        value = self.feedback_secret.get_secret_value() if self.feedback_secret else None
        return read_secret(
            self.feedback.secret_file, value, "feedback.secret_file / AISTUDIO_FEEDBACK_SECRET"
        )


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
    if "feedback_secret" in data:
        raise UserError(
            f"{source.name}: feedback_secret must not be in a config file; "
            "set AISTUDIO_FEEDBACK_SECRET or feedback.secret_file"
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


def check_bind(host: str, keys: list[ApiKey], insecure_no_auth: bool) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if keys or insecure_no_auth or is_loopback(host):
        return
    raise UserError(
        f"refusing to serve on {host} without API keys: set AISTUDIO_API_KEYS or AISTUDIO_API_KEY_FILE, "
        "bind to 127.0.0.1, or pass --insecure-no-auth"
    )
