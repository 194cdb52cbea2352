"""Adapters loaded and unloaded at runtime, from local paths and a real MLflow registry (sqlite).

The registry's adapter is the bundle's own `code` adapter registered again, so the adapter loaded
as `code-v2` must answer exactly what `code` answers. The bad-input battery ends with the server
serving on, and with no rows, reserved KV or pinned adapters left behind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from typing import Any

import httpx
import pytest

from aistudio.bundle import build_bundle
from aistudio.registry import ModelRegistry
from aistudio.serving.adapter_sources import package_adapter

pytestmark = pytest.mark.slow

RunningServer = Any
MODEL = "tiny-phi"
PROMPT = "sort the list number 3"


@pytest.fixture(scope="module")
def sources(tiny_bundles: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An allowed root with a package and a tampered copy, a seq2seq adapter posing as tiny-phi's,
    a registry holding a one-adapter bundle, and a directory outside the root."""
    root = tmp_path_factory.mktemp("adapter-root")
    causal, seq2seq = tiny_bundles["causal"].path, tiny_bundles["seq2seq"].path
    package_adapter(causal / "adapters" / "creative", root / "creative-pkg", MODEL, "causal")
    shutil.copytree(root / "creative-pkg", root / "tampered")
    weights = root / "tampered" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    package_adapter(seq2seq / "adapters" / "code", root / "foreign", MODEL, "causal")
    package_adapter(causal / "adapters" / "analysis", root / "other-base", "some-other-model", "causal")
    bare = root / "bare"
    shutil.copytree(causal / "adapters" / "analysis", bare)
    outside = tmp_path_factory.mktemp("outside")
    package_adapter(causal / "adapters" / "analysis", outside / "pkg", MODEL, "causal")
    (root / "escape").symlink_to(outside / "pkg")

    store = tmp_path_factory.mktemp("registry")
    registry = ModelRegistry(f"sqlite:///{store / 'mlflow.db'}")
    experiment = registry.client.create_experiment(
        "adapters", artifact_location=(store / "artifacts").as_uri()
    )
    run_id = registry.client.create_run(experiment).info.run_id
    one = build_bundle(
        store / "code-bundle",
        causal / "base",
        {"code": causal / "adapters" / "code"},
        model=MODEL,
        family="causal",
        variant="fp32",
        evaluation={},
        lineage={"git_commit": "test", "data_hash": "test", "params_hash": "test"},
    )
    assert one.adapters == ["code"]
    version = registry.register_bundle("tiny-phi-code", store / "code-bundle", run_id)
    return {
        "root": root,
        "outside": outside,
        "tracking_uri": registry.tracking_uri,
        "version": version,
        "run_id": run_id,
    }


@pytest.fixture(scope="module")
def adapter_server(tiny_bundles: dict[str, Any], sources: dict[str, Any], kit: Any) -> Any:
    events: list[dict[str, Any]] = []
    settings = {
        "adapters": {"max_loras": 4, "allowed_roots": [str(sources["root"])]},
        "generation": {"max_new_tokens": 450, "max_prompt_tokens": 64},
    }
    with kit.run_server(
        tiny_bundles["causal"], settings, audit=events.append, tracking_uri=sources["tracking_uri"]
    ) as server:
        server.audit_events = events
        yield server


def _admin(server: RunningServer) -> httpx.Client:
    return server.client(server.admin_key)


def _complete(server: RunningServer, model: str, max_tokens: int = 8) -> httpx.Response:
    with server.client() as http:
        return http.post(
            "/v1/completions",
            json={"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0},
        )


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return error


def test_load_use_and_unload_an_adapter_from_the_mlflow_registry(
    adapter_server: RunningServer, sources: Any
) -> None:
    uri = f"models:/tiny-phi-code/{sources['version']}"
    with _admin(adapter_server) as admin:
        loaded = admin.post("/v1/load_lora_adapter", json={"lora_name": "code-v2", "lora_path": uri})
        assert loaded.status_code == 200, loaded.text
        body = loaded.json()
        assert body["status"] == "loaded" and body["model"] == f"{MODEL}:code-v2"
        assert len(body["manifest_sha256"]) == 64 and body["source"].startswith(uri)
        models = {m["id"]: m for m in admin.get("/v1/models").json()["data"]}
        assert models[f"{MODEL}:code-v2"]["source"].startswith(uri)
        again = _complete(adapter_server, f"{MODEL}:code-v2").json()["choices"][0]["text"]
        # The same weights under another name: the same greedy answer.
        assert again == _complete(adapter_server, f"{MODEL}:code").json()["choices"][0]["text"]
        assert again != _complete(adapter_server, MODEL).json()["choices"][0]["text"]
        unloaded = admin.post("/v1/unload_lora_adapter", json={"lora_name": "code-v2"})
        assert unloaded.status_code == 200 and unloaded.json()["status"] == "unloaded"
    _error(_complete(adapter_server, f"{MODEL}:code-v2"), 404, "model_not_found")
    actions = [(e["action"], e["adapter"], e["caller"]) for e in adapter_server.audit_events[-2:]]
    assert actions == [("load", "code-v2", "ops-admin"), ("unload", "code-v2", "ops-admin")]
    scrape = httpx.get(adapter_server.base_url + "/metrics").text
    assert 'aistudio_adapter_events_total{action="load"}' in scrape


def test_an_mlflow_artifact_uri_loads_the_bundle_it_points_at(
    adapter_server: RunningServer, sources: Any
) -> None:
    uri = f"runs:/{sources['run_id']}/bundle"
    with _admin(adapter_server) as admin:
        loaded = admin.post("/v1/load_lora_adapter", json={"lora_name": "code-run", "lora_path": uri})
        assert loaded.status_code == 200, loaded.text
        answer = _complete(adapter_server, f"{MODEL}:code-run").json()["choices"][0]["text"]
        assert answer == _complete(adapter_server, f"{MODEL}:code").json()["choices"][0]["text"]
        assert admin.post("/v1/unload_lora_adapter", json={"lora_name": "code-run"}).status_code == 200


def test_a_local_package_under_an_allowed_root_loads_and_the_lru_idle_adapter_makes_room(
    adapter_server: RunningServer, sources: Any
) -> None:
    with _admin(adapter_server) as admin:
        first = admin.post(
            "/v1/load_lora_adapter",
            json={"lora_name": "creative-pkg", "lora_path": str(sources["root"] / "creative-pkg")},
        )
        assert first.status_code == 200, first.text
        assert first.json()["evicted"] == []
        # Four resident (three from the bundle + one): the next load evicts the least recently used.
        _complete(adapter_server, f"{MODEL}:code")
        _complete(adapter_server, f"{MODEL}:analysis")
        _complete(adapter_server, f"{MODEL}:creative-pkg")
        second = admin.post(
            "/v1/load_lora_adapter",
            json={"lora_name": "creative-again", "lora_path": str(sources["root"] / "creative-pkg")},
        )
        assert second.status_code == 200, second.text
        assert second.json()["evicted"] == ["creative"]
        assert (
            _complete(adapter_server, f"{MODEL}:creative-again").json()["choices"][0]["text"]
            == (_complete(adapter_server, f"{MODEL}:creative-pkg").json()["choices"][0]["text"])
        )
        for name in ("creative-pkg", "creative-again"):
            assert admin.post("/v1/unload_lora_adapter", json={"lora_name": name}).status_code == 200
    assert ("evict", "creative") in [(e["action"], e["adapter"]) for e in adapter_server.audit_events]


@pytest.mark.parametrize(
    ("case", "path", "status", "code"),
    [
        ("outside the allowed roots", "{outside}/pkg", 400, "adapter_path_not_allowed"),
        ("a symlink out of the root", "{root}/escape", 400, "adapter_path_not_allowed"),
        ("tampered weights", "{root}/tampered", 422, "adapter_integrity_error"),
        ("no manifest to verify against", "{root}/bare", 422, "adapter_integrity_error"),
        ("trained for another architecture", "{root}/foreign", 422, "adapter_incompatible"),
        ("packaged for another base model", "{root}/other-base", 422, "adapter_incompatible"),
        ("an unknown registry model", "models:/no-such-model/1", 400, "invalid_adapter_source"),
        ("not a directory", "{root}/creative-pkg/adapter_config.json", 400, "invalid_adapter_source"),
    ],
)
def test_a_bad_adapter_source_is_refused_with_a_4xx_and_nothing_loads(
    adapter_server: RunningServer, sources: Any, case: str, path: str, status: int, code: str
) -> None:
    lora_path = path.format(root=sources["root"], outside=sources["outside"])
    with _admin(adapter_server) as admin:
        before = [m["id"] for m in admin.get("/v1/models").json()["data"]]
        response = admin.post("/v1/load_lora_adapter", json={"lora_name": "fresh", "lora_path": lora_path})
        error = _error(response, status, code)
        assert error["param"] == "lora_path"
        assert [m["id"] for m in admin.get("/v1/models").json()["data"]] == before


def test_adapter_routes_need_the_admin_role(adapter_server: RunningServer, sources: Any) -> None:
    body = {"lora_name": "fresh", "lora_path": str(sources["root"] / "creative-pkg")}
    with adapter_server.client() as http:
        error = _error(http.post("/v1/load_lora_adapter", json=body), 403, "insufficient_role")
        assert error["type"] == "permission_error" and "'admin'" in error["message"]
        _error(http.post("/v1/unload_lora_adapter", json={"lora_name": "code"}), 403, "insufficient_role")
    with adapter_server.client(None) as anonymous:
        _error(anonymous.post("/v1/load_lora_adapter", json=body), 401, "invalid_api_key")


def test_name_collisions_unknown_names_and_a_full_busy_pool_are_conflicts_and_nothing_leaks(
    adapter_server: RunningServer, sources: Any
) -> None:
    package = str(sources["root"] / "creative-pkg")
    with _admin(adapter_server) as admin:
        _error(
            admin.post("/v1/load_lora_adapter", json={"lora_name": "code", "lora_path": package}),
            409,
            "adapter_exists",
        )
        _error(admin.post("/v1/load_lora_adapter", json={"lora_name": "base", "lora_path": package}), 400)
        _error(admin.post("/v1/unload_lora_adapter", json={"lora_name": "nope"}), 404, "adapter_not_found")
        added = []
        while len(admin.get("/v1/models").json()["data"]) - 1 < 4:  # fill the pool up to max_loras
            added.append(f"busy-{len(added)}")
            load = {"lora_name": added[-1], "lora_path": package}
            assert admin.post("/v1/load_lora_adapter", json=load).status_code == 200
        resident = [m["id"].split(":", 1)[1] for m in admin.get("/v1/models").json()["data"][1:]]

        async def every_slot_busy() -> None:
            # The worker is held between two steps, so the four requests stay queued (and pin
            # their adapters) until the load and unload below have been decided.
            gate = threading.Event()
            held = adapter_server.state.scheduler.call(gate.wait)
            headers = {"Authorization": f"Bearer {adapter_server.api_key}"}
            admin_headers = {"Authorization": f"Bearer {adapter_server.admin_key}"}
            async with httpx.AsyncClient(
                base_url=adapter_server.base_url, headers=headers, timeout=60
            ) as http:
                requests = [
                    asyncio.ensure_future(
                        http.post(
                            "/v1/completions",
                            json={"model": f"{MODEL}:{name}", "prompt": PROMPT, "max_tokens": 4},
                        )
                    )
                    for name in resident
                ]
                while adapter_server.state.scheduler.depth < len(resident):
                    await asyncio.sleep(0.005)
                load = {"lora_name": "one-too-many", "lora_path": package}
                busy = asyncio.ensure_future(
                    http.post("/v1/load_lora_adapter", json=load, headers=admin_headers)
                )
                unload = {"lora_name": added[-1]}
                in_use = asyncio.ensure_future(
                    http.post("/v1/unload_lora_adapter", json=unload, headers=admin_headers)
                )
                await asyncio.sleep(0.5)  # both reach the worker's queue of calls behind the gate
                gate.set()
                held.result(timeout=10)
                _error(await busy, 409, "adapter_slots_busy")
                _error(await in_use, 409, "adapter_in_use")
                assert {r.status_code for r in await asyncio.gather(*requests)} == {200}

        asyncio.run(every_slot_busy())
        for name in added:
            assert admin.post("/v1/unload_lora_adapter", json={"lora_name": name}).status_code == 200
    state = adapter_server.state
    deadline = asyncio.run(_wait_idle(state))
    assert deadline, "rows of the abandoned streams were not freed"
    assert (state.scheduler.kv_tokens, state.scheduler.reserved_tokens, state.scheduler.depth) == (0, 0, 0)
    assert all(state.engine.adapters.in_use(n) == 0 for n in state.engine.adapter_names)
    assert _complete(adapter_server, MODEL).status_code == 200


async def _wait_idle(state: Any, timeout_s: float = 30) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while state.scheduler.active_rows and loop.time() < end:
        await asyncio.sleep(0.01)
    return not state.scheduler.active_rows


def test_the_audit_events_name_the_source_and_never_a_key(
    adapter_server: RunningServer, sources: Any
) -> None:
    with _admin(adapter_server) as admin:
        path = str(sources["root"] / "creative-pkg")
        assert (
            admin.post("/v1/load_lora_adapter", json={"lora_name": "audited", "lora_path": path}).status_code
            == 200
        )
        assert admin.post("/v1/unload_lora_adapter", json={"lora_name": "audited"}).status_code == 200
    text = json.dumps(adapter_server.audit_events)
    assert adapter_server.admin_key not in text and adapter_server.api_key not in text
    loads = [e for e in adapter_server.audit_events if e["action"] == "load"]
    assert loads and all(e["source"] and len(e["sha256"]) == 64 for e in loads)
