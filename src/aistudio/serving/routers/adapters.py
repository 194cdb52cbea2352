"""Runtime LoRA adapters, vLLM's request shapes, admin role only:

    POST /v1/load_lora_adapter    {"lora_name": "code-v2", "lora_path": "models:/aistudio-smollm2@champion"}
    POST /v1/unload_lora_adapter  {"lora_name": "code-v2"}

Fetching and hashing run in a worker thread (off the event loop, never blocking a step); only the
PEFT load itself runs on the scheduler's thread, between two steps. Every load, unload and
eviction goes to the server's audit hook with the caller's key id.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from aistudio.serving import adapter_sources, errors
from aistudio.serving.adapter_sources import SourceError
from aistudio.serving.adapters import AdapterError
from aistudio.serving.auth import Caller
from aistudio.serving.dependencies import require, server
from aistudio.serving.errors import APIError, documented
from aistudio.serving.scheduler import ShuttingDownError
from aistudio.serving.schemas import AdapterChange, LoadLoraAdapterRequest, UnloadLoraAdapterRequest
from aistudio.training.adapters import BASE_ALIASES

router = APIRouter(tags=["adapters"])
# The caller's key id goes to the audit hook, so the handlers take the dependency's value.
ADMIN = Depends(require("admin"))


def _adapter_error(exc: AdapterError, param: str) -> APIError:
    if exc.kind == "unknown":
        return APIError(404, exc.message, errors.NOT_FOUND, param, "adapter_not_found")
    if exc.kind in ("exists", "busy", "in_use"):
        code = {"exists": "adapter_exists", "busy": "adapter_slots_busy", "in_use": "adapter_in_use"}[
            exc.kind
        ]
        return errors.conflict(exc.message, param, code)
    return errors.unprocessable(exc.message, "lora_path", "adapter_incompatible")


def _source_error(exc: SourceError) -> APIError:
    if exc.kind == "integrity":
        return errors.unprocessable(exc.message, "lora_path", "adapter_integrity_error")
    code = "adapter_path_not_allowed" if exc.kind == "not_allowed" else "invalid_adapter_source"
    return errors.bad_request(exc.message, "lora_path", code)


@router.post("/v1/load_lora_adapter", responses=documented(400, 401, 403, 409, 413, 422, 429, 503))
async def load_lora_adapter(
    body: LoadLoraAdapterRequest, request: Request, caller: Caller = ADMIN
) -> AdapterChange:
    state = server(request)
    engine, settings = state.engine, state.settings.adapters
    if body.lora_name in BASE_ALIASES:
        raise errors.bad_request(f"'{body.lora_name}' names the base model; choose another", "lora_name")
    if body.lora_name in engine.adapters:
        raise errors.conflict(
            f"an adapter named '{body.lora_name}' is already loaded; unload it first",
            "lora_name",
            "adapter_exists",
        )
    try:
        fetched = await asyncio.to_thread(
            adapter_sources.fetch, body.lora_path, body.lora_name, settings.allowed_roots, state.tracking_uri
        )
    except SourceError as exc:
        raise _source_error(exc) from None
    try:
        future = state.scheduler.call(lambda: engine.load_adapter(body.lora_name, fetched, caller.id))
        evicted = await asyncio.wrap_future(future)
    except AdapterError as exc:
        raise _adapter_error(exc, "lora_name") from None
    except ShuttingDownError:
        raise errors.shutting_down() from None
    finally:
        fetched.cleanup()
    verified = fetched.adapter
    return AdapterChange(
        status="loaded",
        lora_name=body.lora_name,
        model=engine.adapter_id(body.lora_name),
        source=verified.source,
        manifest_sha256=verified.manifest_sha256,
        evicted=evicted,
    )


@router.post("/v1/unload_lora_adapter", responses=documented(400, 401, 403, 404, 409, 413, 429, 503))
async def unload_lora_adapter(
    body: UnloadLoraAdapterRequest, request: Request, caller: Caller = ADMIN
) -> AdapterChange:
    state = server(request)
    engine = state.engine
    try:
        await asyncio.wrap_future(
            state.scheduler.call(lambda: engine.adapters.unload(body.lora_name, caller.id))
        )
    except AdapterError as exc:
        raise _adapter_error(exc, "lora_name") from None
    except ShuttingDownError:
        raise errors.shutting_down() from None
    return AdapterChange(status="unloaded", lora_name=body.lora_name, model=engine.adapter_id(body.lora_name))
