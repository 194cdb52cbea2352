"""The model server's Prometheus metrics: exactly the names in aistudio.deploy.contract, which
alerts, dashboards and canary analysis query (a test holds the two lists equal).

Each `ServerMetrics` owns its own CollectorRegistry, never the process-global one: tests build
many servers in one process, and two apps must not share (or collide on) counters.

Label values are kept low-cardinality by construction. Model and adapter labels come only from
the names the server was built with (anything else is counted as "unknown"), request status is
a status class or one of a fixed set of error reasons, and prompts, user ids and request ids
never become label values.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aistudio.monitoring_config import FEEDBACK_OUTCOMES

# The adapter label of a request served by the bare base model; the same word the adapter
# set accepts for it (aistudio.training.adapters.BASE_ALIASES).
BASE_ADAPTER = "base"
UNKNOWN = "unknown"

STATUS_CLASSES: tuple[str, ...] = ("2xx", "4xx", "5xx")
# Failures named by their cause rather than an HTTP class. The alert rules count everything
# that is not 2xx or 4xx as a server-side failure, so a reason here pages like a 5xx.
ERROR_REASONS: tuple[str, ...] = (
    "timeout",  # the request ran past generation.request_timeout_s
    "queue_full",  # refused: queue.max_depth requests already waiting
    "queue_timeout",  # waited queue.timeout_s without reaching the engine
    "rate_limited",
    "engine_error",  # the model raised during generation
    "cancelled",  # the client went away before the answer was ready
    "shutting_down",  # refused during graceful shutdown
)

# LLM requests span a cached short answer (a few ms) to a long generation on a busy CPU replica
# (a minute). 2 s is a bucket edge because HighLatency alerts on p95 > 2 s, and
# histogram_quantile is only exact at edges.
REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip
# Time to first token is prefill plus queueing: the same range, dense under a second.
TTFT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# Queue wait ends at queue.timeout_s (30 s in k8s/base/serving.yaml).
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# Tokens one scheduler step processed: decode steps count their rows (up to scheduler.max_rows),
# prefill steps their prompt tokens (up to scheduler.max_step_tokens).
STEP_TOKEN_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# One forward on a CPU replica: a few ms for a tiny model, a second for a long prefill.
STEP_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
STEP_PHASES: tuple[str, ...] = ("prefill", "decode")
ADAPTER_ACTIONS: tuple[str, ...] = ("load", "unload", "evict")


def status_label(status: int | str) -> str:
    """An HTTP status code → its class ("2xx"); a class or a known error reason passes through.

    Anything else is a bug in the caller, not traffic, so it raises instead of minting a series.
    """
    if isinstance(status, int):
        if not 100 <= status <= 599:
            raise ValueError(f"HTTP status {status} is outside 100-599")
        return f"{status // 100}xx"
    if status in STATUS_CLASSES or status in ERROR_REASONS:
        return status
    raise ValueError(
        f"unknown request status {status!r}: pass an HTTP code, one of {STATUS_CLASSES} or {ERROR_REASONS}"
    )


class _WithoutCreated(Collector):
    """The metrics, minus the `*_created` samples prometheus_client adds to counters and
    histograms: in the text format they are extra gauge families (`aistudio_requests_created`)
    outside the contract, and Prometheus does not use them."""

    def __init__(self, metrics: Iterable[Collector]) -> None:
        self._metrics = tuple(metrics)

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            for family in metric.collect():
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield family


class ServerMetrics:
    """Everything the server reports to Prometheus, behind methods named for what happened."""

    content_type: str = CONTENT_TYPE_LATEST

    def __init__(self, models: Iterable[str] = (), adapters: Iterable[str] = ()) -> None:
        """`models` and `adapters`: the names this server serves; only they become label values."""
        self._models: set[str] = set(models)
        # Grows with runtime loads: adapter names are validated and bounded by what admins load.
        self._adapters: set[str] = set(adapters)
        self.registry = CollectorRegistry()

        model_adapter = ("model", "adapter")
        self.requests = Counter(
            "aistudio_requests_total",
            "Finished requests by outcome: 2xx, 4xx, 5xx or an error reason (timeout, queue_full, ...).",
            (*model_adapter, "status"),
            registry=None,
        )
        self.request_duration = Histogram(
            "aistudio_request_duration_seconds",
            "End-to-end request latency, from arrival to the last byte of the answer.",
            model_adapter,
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=None,
        )
        self.time_to_first_token = Histogram(
            "aistudio_time_to_first_token_seconds",
            "From arrival to the first generated token (queueing plus prefill).",
            model_adapter,
            buckets=TTFT_BUCKETS,
            registry=None,
        )
        self.queue_duration = Histogram(
            "aistudio_queue_duration_seconds",
            "Time a request waited in the batcher's queue before its batch started.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=None,
        )
        self.prompt_tokens = Counter(
            "aistudio_prompt_tokens_total", "Prompt tokens processed.", model_adapter, registry=None
        )
        self.generation_tokens = Counter(
            "aistudio_generation_tokens_total", "Tokens generated.", model_adapter, registry=None
        )
        self.queue_depth = Gauge("aistudio_queue_depth", "Requests waiting in the queue now.", registry=None)
        self.active_rows = Gauge(
            "aistudio_scheduler_active_rows",
            "Rows (choices) prefilling or decoding now; at scheduler.max_rows new requests wait.",
            registry=None,
        )
        self.step_tokens = Histogram(
            "aistudio_scheduler_step_tokens",
            "Tokens per scheduler forward: prompt tokens (prefill) or rows (decode).",
            ("phase",),
            buckets=STEP_TOKEN_BUCKETS,
            registry=None,
        )
        self.step_duration = Histogram(
            "aistudio_scheduler_step_duration_seconds",
            "Time of one scheduler forward, prefill or decode.",
            ("phase",),
            buckets=STEP_DURATION_BUCKETS,
            registry=None,
        )
        self.kv_tokens = Gauge(
            "aistudio_kv_cache_tokens", "KV-cache tokens held by active rows now.", registry=None
        )
        self.kv_reserved = Gauge(
            "aistudio_kv_cache_reserved_tokens",
            "KV-cache tokens reserved by admitted rows (prompt + max_tokens each).",
            registry=None,
        )
        self.kv_budget = Gauge(
            "aistudio_kv_cache_budget_tokens", "The KV budget (scheduler.max_kv_tokens).", registry=None
        )
        self.adapter_events = Counter(
            "aistudio_adapter_events_total",
            "Runtime adapter changes: load, unload, evict (LRU, to make room for a load).",
            ("action",),
            registry=None,
        )
        self.adapters_resident = Gauge(
            "aistudio_adapters_resident", "LoRA adapters resident on the base model now.", registry=None
        )
        self.model_info = Gauge(
            "aistudio_model_info",
            "The model this server serves; value 1, the facts are in the labels.",
            ("model", "version", "variant"),
            registry=None,
        )
        self.drift_score = Gauge(
            "aistudio_drift_score",
            "Population stability index of each input feature against the training reference.",
            ("feature",),
            registry=None,
        )
        self.drift_detected = Gauge(
            "aistudio_drift_detected",
            "1 while the drift detector flags the recent prompts, else 0.",
            registry=None,
        )
        self.ab_assignments = Counter(
            "aistudio_ab_assignments_total",
            "Requests routed to each variant of an A/B experiment.",
            ("experiment", "variant"),
            registry=None,
        )
        self.feedback = Counter(
            "aistudio_feedback_total",
            "User feedback on answers, by experiment variant and outcome (positive|negative).",
            ("experiment", "variant", "outcome"),
            registry=None,
        )
        metrics = (
            self.requests,
            self.request_duration,
            self.time_to_first_token,
            self.queue_duration,
            self.prompt_tokens,
            self.generation_tokens,
            self.queue_depth,
            self.active_rows,
            self.step_tokens,
            self.step_duration,
            self.kv_tokens,
            self.kv_reserved,
            self.kv_budget,
            self.adapter_events,
            self.adapters_resident,
            self.model_info,
            self.drift_score,
            self.drift_detected,
            self.ab_assignments,
            self.feedback,
        )
        self.registry.register(_WithoutCreated(metrics))

    # --- label hygiene -------------------------------------------------------------------------

    def _model(self, model: str | None) -> str:
        return model if model in self._models else UNKNOWN

    def _adapter(self, adapter: str | None) -> str:
        if adapter is None or adapter == BASE_ADAPTER:
            return BASE_ADAPTER
        return adapter if adapter in self._adapters else UNKNOWN

    @property
    def known_models(self) -> Collection[str]:
        return frozenset(self._models)

    @property
    def known_adapters(self) -> Collection[str]:
        return frozenset(self._adapters)

    # --- requests ------------------------------------------------------------------------------

    def observe_request(
        self, model: str | None, adapter: str | None, status: int | str, seconds: float
    ) -> None:
        """One finished request: its outcome (HTTP code, class or error reason) and end-to-end latency."""
        labels = (self._model(model), self._adapter(adapter))
        self.requests.labels(*labels, status_label(status)).inc()
        self.request_duration.labels(*labels).observe(max(seconds, 0.0))

    def observe_tokens(self, model: str | None, adapter: str | None, prompt: int, generated: int) -> None:
        labels = (self._model(model), self._adapter(adapter))
        if prompt > 0:
            self.prompt_tokens.labels(*labels).inc(prompt)
        if generated > 0:
            self.generation_tokens.labels(*labels).inc(generated)

    def observe_ttft(self, model: str | None, adapter: str | None, seconds: float) -> None:
        self.time_to_first_token.labels(self._model(model), self._adapter(adapter)).observe(max(seconds, 0.0))

    # --- scheduler -----------------------------------------------------------------------------

    def observe_queue_wait(self, seconds: float) -> None:
        self.queue_duration.observe(max(seconds, 0.0))

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def observe_step(self, phase: str, seconds: float, tokens: int) -> None:
        if phase not in STEP_PHASES:
            raise ValueError(f"step phase must be one of {STEP_PHASES} (got {phase!r})")
        self.step_duration.labels(phase).observe(max(seconds, 0.0))
        self.step_tokens.labels(phase).observe(tokens)

    def set_scheduler_state(self, active_rows: int, kv_tokens: int, kv_reserved: int) -> None:
        self.active_rows.set(active_rows)
        self.kv_tokens.set(kv_tokens)
        self.kv_reserved.set(kv_reserved)

    def set_kv_budget(self, tokens: int) -> None:
        self.kv_budget.set(tokens)

    # --- adapters --------------------------------------------------------------------------------

    def count_adapter_event(self, action: str, adapter: str, resident: int) -> None:
        """A runtime load/unload/eviction; a loaded adapter's name becomes a known label."""
        if action not in ADAPTER_ACTIONS:
            raise ValueError(f"adapter action must be one of {ADAPTER_ACTIONS} (got {action!r})")
        if action == "load":
            self._adapters.add(adapter)
        self.adapter_events.labels(action).inc()
        self.adapters_resident.set(resident)

    # --- model, drift, experiments ---------------------------------------------------------------

    def set_model_info(self, model: str, version: str, variant: str) -> None:
        """Announce what is served; replaces any earlier announcement and makes `model` a known label."""
        self._models.add(model)
        self.model_info.clear()
        self.model_info.labels(model, str(version), variant).set(1)

    def set_drift(self, scores: Mapping[str, float], detected: bool) -> None:
        """The detector's latest evaluation: PSI per feature (from the configured feature list)."""
        for feature, score in scores.items():
            self.drift_score.labels(feature).set(score)
        self.drift_detected.set(1 if detected else 0)

    def count_assignment(self, experiment: str, variant: str) -> None:
        """A request routed to a variant (names come from the validated monitoring config)."""
        self.ab_assignments.labels(experiment, variant).inc()

    def count_feedback(self, experiment: str, variant: str, outcome: str) -> None:
        if outcome not in FEEDBACK_OUTCOMES:
            raise ValueError(f"feedback outcome must be one of {FEEDBACK_OUTCOMES} (got {outcome!r})")
        self.feedback.labels(experiment, variant, outcome).inc()

    # --- exposition ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of this server's metrics (serve with `content_type`)."""
        return generate_latest(self.registry)
