"""`ServerState`: everything a route needs, built once per app by `create_app` (nothing module-global:
tests run many apps in one process). Routers reach it through `dependencies.server(request)`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aistudio.config import DOMAINS
from aistudio.feedback.store import FeedbackLog
from aistudio.feedback.tokens import ReplayGuard, TokenSigner
from aistudio.serving.ab import ABRouter, FeedbackStore
from aistudio.serving.adapters import AuditHook
from aistudio.serving.auth import ApiKeyAuth
from aistudio.serving.drift import DriftMonitor, input_features
from aistudio.serving.engine import GenerationEngine
from aistudio.serving.generation import GenerationService
from aistudio.serving.jobs import GenerationJob
from aistudio.serving.metrics import BASE_ADAPTER, ServerMetrics
from aistudio.serving.ratelimit import TokenBucketLimiter
from aistudio.serving.request_log import REQUEST_LOGGER, log_request
from aistudio.serving.sampling import SamplingParams
from aistudio.serving.scheduler import Scheduler
from aistudio.serving.settings import ServingSettings

log = logging.getLogger(__name__)
request_log = logging.getLogger(REQUEST_LOGGER)

WARMUP_PROMPT = "Hello"
# Warm-up pays one-off costs (first kernels, allocator growth) a request never does, so it is not
# held to generation.request_timeout_s: a tight request timeout must not leave the server unready.
WARMUP_TIMEOUT_S = 120.0
AUDIT_LOGGER = "aistudio.serving.audit"


def log_audit(event: Mapping[str, Any]) -> None:
    """The default audit sink: one structured log line per adapter change (a governance sink can
    replace it through create_app(audit=...))."""
    logging.getLogger(AUDIT_LOGGER).info("adapter %s", event.get("action"), extra={"audit": dict(event)})


@dataclass
class ServerState:
    settings: ServingSettings
    engine: GenerationEngine
    auth: ApiKeyAuth
    limiter: TokenBucketLimiter
    metrics: ServerMetrics | None
    drift: DriftMonitor | None
    ab: ABRouter
    feedback: FeedbackStore
    model_version: str
    audit: AuditHook = log_audit
    tracking_uri: str | None = None  # MLflow, for adapters loaded from models:/ and artifact URIs
    # The feedback loop: signed tokens (None: no secret), their replay guard, the store (None: off).
    tokens: TokenSigner | None = None
    replay: ReplayGuard = field(default_factory=ReplayGuard)
    feedback_log: FeedbackLog | None = None
    ready: bool = False
    fallback_ids: frozenset[int] = field(default_factory=frozenset)
    generation: GenerationService = field(init=False, repr=False)

    @property
    def scheduler(self) -> Scheduler:
        return self.engine.scheduler

    # --- per-request observations ------------------------------------------------------------------

    def observe_prompt(self, prompt: str, token_ids: list[int], adapter: str | None) -> None:
        if self.drift is None:
            return
        # A domain adapter (code, creative, ...) says what kind of prompt this is; the base model does not.
        domain = adapter if adapter in DOMAINS else None
        features = input_features(
            prompt, token_ids, self.engine.tokenizer.unk_token_id, self.fallback_ids, domain
        )
        if self.drift.observe(features) and self.metrics is not None:
            self.metrics.set_drift(self.drift.scores(), self.drift.detected)

    def on_request_finished(self, state: dict[str, Any], status: int, seconds: float) -> None:
        """Called by RequestObserver after the last byte of /v1/completions or /v1/chat/completions."""
        reason = state.get("error_reason")
        adapter = state.get("adapter") or BASE_ADAPTER
        model = state.get("model_label")
        outcome: int | str = reason or status
        if self.metrics is not None:
            self.metrics.observe_request(self.engine.base_id if model else None, adapter, outcome, seconds)
        log_request(
            request_log,
            request_id=state.get("request_id", "-"),
            model=model or "-",
            adapter=adapter,
            status=outcome,
            latency_s=seconds,
            prompt_tokens=state.get("prompt_tokens", 0),
            completion_tokens=state.get("completion_tokens", 0),
            prompt=state.get("prompt"),
            log_prompts=self.settings.logging.log_prompts,
            caller=state.get("caller"),
            experiment=state.get("experiment"),
            variant=state.get("variant"),
            http_status=status,
        )

    def on_adapter_change(self, action: str, adapter: str) -> None:
        if self.metrics is not None:
            self.metrics.count_adapter_event(action, adapter, len(self.engine.adapter_names))

    async def warm_up(self) -> None:
        """One tiny step through the whole path (base + every adapter, mixed), then ready."""
        try:
            if self.settings.generation.warmup:
                ids = self.engine.prompt_ids(WARMUP_PROMPT)
                jobs = [
                    GenerationJob(ids, adapter, max_tokens=2, sampling=SamplingParams(temperature=0.0))
                    for adapter in (None, *self.engine.adapter_names)
                ]
                for job in jobs:
                    while self.scheduler.full:  # a queue shorter than the adapter list
                        await asyncio.sleep(0.01)
                    self.scheduler.submit(job)
                await asyncio.wait_for(
                    asyncio.gather(*(j.future for j in jobs)),
                    max(self.settings.generation.request_timeout_s, WARMUP_TIMEOUT_S),
                )
            self.ready = True
            log.info("ready: serving %s", ", ".join(self.engine.model_ids))
        except Exception:
            log.exception("warm-up failed; /readyz stays 503")
