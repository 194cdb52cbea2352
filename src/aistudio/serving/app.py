"""`create_app(settings, bundle)`: the FastAPI app that serves one base model and all its adapters.

What the factory wires together, each piece from its own module:

    settings ─ auth (ApiKeyAuth) ─ rate limit (TokenBucketLimiter)
    bundle ─ GenerationEngine ─ DynamicBatcher (one worker thread)
    ServerMetrics, DriftMonitor, ABRouter + FeedbackStore (monitoring config)
    middleware: BodySizeLimit, RequestObserver (metrics + one JSON log line per request)

Lifespan: the batcher starts, one warm-up batch (base + every adapter, mixed) runs, and only then
does /readyz answer 200. On shutdown (SIGTERM) uvicorn stops accepting, in-flight requests
finish, and the batcher drains what is queued before the worker thread goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from aistudio.bundle import REFERENCE_PROFILE, LoadedBundle
from aistudio.config import DOMAINS, validate
from aistudio.errors import UserError
from aistudio.layout import MONITORING_CONFIG_FILE
from aistudio.monitoring_config import MonitoringConfig, load_monitoring_config
from aistudio.serving.ab import ABRouter, FeedbackStore
from aistudio.serving.auth import ApiKeyAuth
from aistudio.serving.batcher import DynamicBatcher
from aistudio.serving.drift import DriftMonitor, byte_fallback_ids, input_features, load_profile
from aistudio.serving.engine import GenerationEngine, GenerationJob
from aistudio.serving.errors import install_error_handlers
from aistudio.serving.metrics import BASE_ADAPTER, ServerMetrics
from aistudio.serving.middleware import BodySizeLimit, RequestObserver
from aistudio.serving.ratelimit import TokenBucketLimiter
from aistudio.serving.request_log import REQUEST_LOGGER, log_request
from aistudio.serving.routes import router
from aistudio.serving.sampling import SamplingParams
from aistudio.serving.settings import ServingSettings

log = logging.getLogger(__name__)
request_log = logging.getLogger(REQUEST_LOGGER)

WARMUP_PROMPT = "Hello"


@dataclass
class ServerState:
    """Everything a route needs, built once per app (nothing module-global: tests run many apps)."""

    settings: ServingSettings
    engine: GenerationEngine
    batcher: DynamicBatcher
    auth: ApiKeyAuth
    limiter: TokenBucketLimiter
    metrics: ServerMetrics | None
    drift: DriftMonitor | None
    ab: ABRouter
    feedback: FeedbackStore
    model_version: str
    ready: bool = False
    _fallback_ids: frozenset[int] = field(default_factory=frozenset)

    # --- per-request observations ------------------------------------------------------------------

    def observe_prompt(self, prompt: str, token_ids: list[int], adapter: str | None) -> None:
        if self.drift is None:
            return
        # A domain adapter (code, creative, ...) says what kind of prompt this is; the base model does not.
        domain = adapter if adapter in DOMAINS else None
        features = input_features(
            prompt, token_ids, self.engine.tokenizer.unk_token_id, self._fallback_ids, domain
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

    async def warm_up(self) -> None:
        """One tiny mixed batch through the whole path (base + every adapter), then ready."""
        try:
            if self.settings.generation.warmup:
                ids = self.engine.prompt_ids(WARMUP_PROMPT)
                jobs = [
                    GenerationJob(
                        WARMUP_PROMPT,
                        len(ids),
                        adapter,
                        max_tokens=2,
                        sampling=SamplingParams(temperature=0.0),
                    )
                    for adapter in (None, *self.engine.adapters)
                ]
                for job in jobs:
                    while self.batcher.full:  # a queue shorter than the adapter list
                        await asyncio.sleep(0.01)
                    self.batcher.submit(job)
                await asyncio.wait_for(
                    asyncio.gather(*(j.future for j in jobs)), self.settings.generation.request_timeout_s
                )
            self.ready = True
            log.info("ready: serving %s", ", ".join(self.engine.model_ids))
        except Exception:
            log.exception("warm-up failed; /readyz stays 503")


def resolve_monitoring(settings: ServingSettings) -> MonitoringConfig:
    """The configured monitoring file (its default path may be absent: defaults apply), with the
    serving settings' drift overrides on top."""
    path = settings.monitoring.config
    if path is not None:
        monitoring = load_monitoring_config(path)
    elif MONITORING_CONFIG_FILE.is_file():
        monitoring = load_monitoring_config(MONITORING_CONFIG_FILE)
    else:
        monitoring = MonitoringConfig()
    overrides = settings.drift
    if overrides.window is None and overrides.threshold is None:
        return monitoring
    drift = monitoring.drift.model_dump()
    if overrides.window is not None:
        drift["window_size"] = overrides.window
        drift["min_samples"] = min(drift["min_samples"], overrides.window)
    if overrides.threshold is not None:
        drift["psi_threshold"] = overrides.threshold
    return validate(
        MonitoringConfig, {**monitoring.model_dump(), "drift": drift}, "serving settings drift overrides"
    )


def resolve_reference_profile(settings: ServingSettings, bundle_dir: Path | None) -> Mapping[str, Any] | None:
    """The drift reference: the configured file, else the bundle's reference_profile.json, else none."""
    if not (settings.monitoring.drift and settings.monitoring.metrics):
        return None
    if settings.monitoring.reference_profile is not None:
        return load_profile(settings.monitoring.reference_profile)
    if bundle_dir is not None and (bundle_dir / REFERENCE_PROFILE).is_file():
        return load_profile(bundle_dir / REFERENCE_PROFILE)
    log.warning("no drift reference profile (bundle has no %s): drift detection is off", REFERENCE_PROFILE)
    return None


def create_app(
    settings: ServingSettings,
    bundle: LoadedBundle,
    monitoring: MonitoringConfig | None = None,
    reference_profile: Mapping[str, Any] | None = None,
    model_version: str = "local",
    api_keys: list[str] | None = None,
) -> FastAPI:
    """The server for `bundle`. `api_keys` defaults to the keys the settings point at."""
    monitoring = monitoring or MonitoringConfig()
    engine = GenerationEngine(bundle, settings.served_model_name, settings.generation.max_prompt_tokens)
    metrics = (
        ServerMetrics(models=[engine.base_id], adapters=engine.adapters)
        if settings.monitoring.metrics
        else None
    )
    ab = ABRouter(monitoring.ab.experiments)
    problems = ab.unknown_models([BASE_ADAPTER, *engine.model_ids, *engine.adapters])
    if problems:
        raise UserError(problems)
    drift = None
    if reference_profile is not None and settings.monitoring.drift and metrics is not None:
        drift = DriftMonitor(reference_profile, monitoring.drift)
    batching, queue = settings.batching, settings.queue
    state = ServerState(
        settings=settings,
        engine=engine,
        batcher=DynamicBatcher(
            engine.run_batch,
            batching.max_batch_size,
            batching.max_wait_ms / 1000.0,
            queue.max_depth,
            queue.timeout_s,
            metrics,
        ),
        auth=ApiKeyAuth(settings.all_api_keys() if api_keys is None else api_keys),
        limiter=TokenBucketLimiter(
            settings.limits.rate_limit.requests_per_second, settings.limits.rate_limit.burst
        ),
        metrics=metrics,
        drift=drift,
        ab=ab,
        feedback=FeedbackStore(monitoring.ab.experiments),
        model_version=model_version,
        _fallback_ids=frozenset(byte_fallback_ids(bundle.tokenizer.get_vocab()))
        if drift is not None
        else frozenset(),
    )
    if metrics is not None:
        metrics.set_model_info(engine.base_id, model_version, bundle.manifest.variant)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.batcher.start()
        warm = asyncio.create_task(state.warm_up())
        try:
            yield
        finally:
            state.ready = False
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            await state.batcher.close(timeout_s=settings.generation.request_timeout_s)

    app = FastAPI(
        title="aistudio model server",
        description="OpenAI-compatible completions and chat for one base model and its LoRA adapters",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    install_error_handlers(app)
    app.include_router(router)
    # Added last = outermost: the observer also sees the 413s the size limit answers.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestObserver, on_finish=state.on_request_finished)
    return app
