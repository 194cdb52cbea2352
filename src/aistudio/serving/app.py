"""`create_app(settings, bundle)`: the FastAPI app that serves one base model and all its adapters.

What the factory wires together, each piece from its own module:

    settings ─ auth (ApiKeyAuth, roles) ─ rate limit (TokenBucketLimiter)
    bundle ─ GenerationEngine (AdapterPool, ModelRunner, Scheduler with one worker thread)
    GenerationService (accept / complete / stream, shared by completions and chat)
    ServerMetrics, DriftMonitor, ABRouter + FeedbackStore (monitoring config)
    routers: probes, generation, adapters, monitoring (none imports this module)
    middleware: BodySizeLimit, RequestObserver (metrics + one JSON log line per request, X-Request-ID)

Lifespan: the scheduler starts, one warm-up step runs (base + every adapter, mixed), and only then
does /readyz answer 200. On shutdown (SIGTERM) uvicorn stops accepting, in-flight requests
finish, and the scheduler drains what is queued before its thread stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from aistudio.bundle import REFERENCE_PROFILE, LoadedBundle
from aistudio.config import validate
from aistudio.errors import UserError
from aistudio.feedback.store import FeedbackLog
from aistudio.feedback.tokens import ReplayGuard, TokenSigner
from aistudio.layout import MONITORING_CONFIG_FILE
from aistudio.monitoring_config import MonitoringConfig, load_monitoring_config
from aistudio.serving.ab import ABRouter, FeedbackStore
from aistudio.serving.adapters import AuditHook
from aistudio.serving.auth import ApiKey, ApiKeyAuth
from aistudio.serving.drift import DriftMonitor, byte_fallback_ids, load_profile
from aistudio.serving.engine import GenerationEngine
from aistudio.serving.errors import install_error_handlers
from aistudio.serving.generation import GenerationService
from aistudio.serving.metrics import BASE_ADAPTER, ServerMetrics
from aistudio.serving.middleware import BodySizeLimit, RequestObserver
from aistudio.serving.ratelimit import TokenBucketLimiter
from aistudio.serving.routers import adapters as adapters_api
from aistudio.serving.routers import generation as generation_api
from aistudio.serving.routers import monitoring as monitoring_api
from aistudio.serving.routers import probes as probes_api
from aistudio.serving.scheduler import SchedulerLimits
from aistudio.serving.settings import ServingSettings
from aistudio.serving.state import ServerState, log_audit

log = logging.getLogger(__name__)
REPLAY_DIR = "consumed-tokens"


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


def scheduler_limits(settings: ServingSettings) -> SchedulerLimits:
    s, q = settings.scheduler, settings.queue
    return SchedulerLimits(
        s.max_rows, s.max_step_tokens, s.max_kv_tokens, s.prefill_chunk, q.max_depth, q.timeout_s
    )


def _truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents a 422 HTTPValidationError on every route with a body; this server answers
    bad input with 400 in OpenAI's error shape instead, so those entries are dropped."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                unprocessable = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(unprocessable):
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: ServingSettings,
    bundle: LoadedBundle,
    monitoring: MonitoringConfig | None = None,
    reference_profile: Mapping[str, Any] | None = None,
    model_version: str = "local",
    api_keys: Sequence[ApiKey] | None = None,
    audit: AuditHook = log_audit,
    tracking_uri: str | None = None,
) -> FastAPI:
    """The server for `bundle`. `api_keys` defaults to the keys the settings point at; `audit`
    receives every runtime adapter change; `tracking_uri` is MLflow's for adapter sources."""
    monitoring = monitoring or MonitoringConfig()
    metrics = ServerMetrics(models=[], adapters=bundle.adapter_names) if settings.monitoring.metrics else None
    limits = scheduler_limits(settings)
    if len(bundle.adapter_names) > settings.adapters.max_loras:
        raise UserError(
            f"the bundle carries {len(bundle.adapter_names)} adapters but adapters.max_loras is "
            f"{settings.adapters.max_loras}; raise max_loras"
        )
    engine = GenerationEngine(
        bundle,
        limits,
        settings.served_model_name,
        settings.adapters.max_loras,
        settings.engine.dtype,
        observer=metrics,
        audit=audit,
    )
    ab = ABRouter(monitoring.ab.experiments)
    problems = ab.unknown_models([BASE_ADAPTER, *engine.model_ids, *engine.adapter_names])
    if problems:
        raise UserError(problems)
    drift = None
    if reference_profile is not None and settings.monitoring.drift and metrics is not None:
        drift = DriftMonitor(reference_profile, monitoring.drift)
    loop = settings.feedback
    secret = settings.feedback_token_secret()
    feedback_log = (
        FeedbackLog(loop.directory, loop.max_segment_bytes, loop.max_segment_records) if loop.record else None
    )
    state = ServerState(
        settings=settings,
        engine=engine,
        auth=ApiKeyAuth(settings.all_api_keys() if api_keys is None else api_keys),
        limiter=TokenBucketLimiter(
            settings.limits.rate_limit.requests_per_second, settings.limits.rate_limit.burst
        ),
        metrics=metrics,
        drift=drift,
        ab=ab,
        feedback=FeedbackStore(monitoring.ab.experiments),
        model_version=model_version,
        audit=audit,
        tracking_uri=settings.adapters.tracking_uri or tracking_uri,
        tokens=TokenSigner(secret, loop.token_ttl_s) if secret is not None else None,
        # Replicas sharing the store's directory share the replay guard's claims too.
        replay=ReplayGuard(loop.directory / REPLAY_DIR if loop.record else None, loop.token_ttl_s),
        feedback_log=feedback_log,
        fallback_ids=frozenset(byte_fallback_ids(bundle.tokenizer.get_vocab()))
        if drift is not None
        else frozenset(),
    )
    state.generation = GenerationService(state)
    engine.adapters.on_change = state.on_adapter_change
    if metrics is not None:
        metrics.set_model_info(engine.base_id, model_version, bundle.manifest.variant)
        metrics.set_kv_budget(limits.max_kv_tokens)
        metrics.adapters_resident.set(len(engine.adapter_names))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.scheduler.start()
        warm = asyncio.create_task(state.warm_up())
        try:
            yield
        finally:
            state.ready = False
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            await asyncio.to_thread(engine.scheduler.close, settings.generation.request_timeout_s)

    app = FastAPI(
        title="aistudio model server",
        description="OpenAI-compatible completions and chat for one base model and its LoRA adapters",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    install_error_handlers(app)
    for api in (probes_api, generation_api, adapters_api, monitoring_api):
        app.include_router(api.router)
    app.openapi = lambda: _truthful_openapi(app)  # type: ignore[method-assign]
    # Added last = outermost: the observer also sees the 413s the size limit answers.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestObserver, on_finish=state.on_request_finished)
    return app
