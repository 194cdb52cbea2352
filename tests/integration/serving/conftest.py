"""Tiny serving bundles for both families, and real uvicorn servers on 127.0.0.1 to test them.

Each bundle: a BPE tokenizer trained on ~200 synthetic strings (vocab 400), a random-init tiny
model, three LoRA adapters trained a few AdamW steps towards different answers, and a drift
reference profile built from "normal" prompts. Servers run in a background thread on a socket
bound to port 0, so tests never race for a port; each server loads its own copy of the bundle.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import uvicorn

from aistudio.bundle import REFERENCE_PROFILE, build_bundle, load_bundle
from aistudio.config import LoraConfig, TinyArchitecture
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.prompts import Example, render_prompt
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.monitoring_config import MonitoringConfig
from aistudio.serving.app import create_app
from aistudio.serving.auth import ROLES, ApiKey
from aistudio.serving.drift import profile_from_prompts, save_profile
from aistudio.serving.settings import ServingSettings
from aistudio.serving.state import log_audit
from aistudio.training.adapters import attach_lora, save_adapter

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "test-key-fedcba9876543210"
ADMIN_KEY = "test-admin-key-00112233445566"
# One key per single role, for the role checks of every route.
ROLE_KEYS = {role: f"test-{role}-only-key-0123456789" for role in ROLES}
# The two ordinary keys get what raw keys get (every role but admin); the admin key all four.
TEST_KEYS = [
    ApiKey.from_secret(API_KEY),
    ApiKey.from_secret(OTHER_KEY),
    ApiKey.from_secret(ADMIN_KEY, "ops-admin", ROLES),
    *(ApiKey.from_secret(key, f"{role}-only", [role]) for role, key in ROLE_KEYS.items()),
]
FAMILIES = ("causal", "seq2seq")
MODEL_NAMES = {"causal": "tiny-phi", "seq2seq": "tiny-t5"}
VERBS = ("sort", "count", "print", "parse", "merge")
NOUNS = ("list", "table", "file", "word")
TEXTS = [
    f"{verb} the {noun} number {i} and return {i * 7 % 13}: {'YES' if i % 3 else 'no'}"
    for i in range(10)
    for verb in VERBS
    for noun in NOUNS
] + [render_prompt(f"{verb} the {noun}") for verb in VERBS for noun in NOUNS]
# Prompts like the training data: what the drift reference profile is built from.
NORMAL_PROMPTS = [f"{v} the {n} number {i}" for i in range(12) for v in VERBS for n in NOUNS]
TRAIN_PROMPTS = ["sort the list number 3", "count the words", "merge the table number 12 and return"]
# Each adapter learns a different answer, so outputs differ between adapters and the base.
ADAPTER_TARGETS = {"code": "return 1 return 1", "creative": "YES YES YES YES", "analysis": "no no no no"}
LORA = LoraConfig(r=4, alpha=8, dropout=0.0)
MONITORING = MonitoringConfig.model_validate(
    {
        "drift": {"window_size": 40, "min_samples": 20, "evaluate_every": 20},
        "ab": {
            "experiments": [
                {
                    "name": "code-adapter",
                    "aliases": ["code-assistant"],
                    "variants": [
                        {"name": "control", "model": "base", "weight": 1},
                        {"name": "lora", "model": "code", "weight": 1},
                    ],
                }
            ]
        },
    }
)
# Generous limits so only the tests that mean to hit them do.
TEST_SETTINGS: dict[str, Any] = {
    "scheduler": {"max_rows": 8, "max_step_tokens": 256, "prefill_chunk": 64, "max_kv_tokens": 4096},
    "queue": {"max_depth": 256, "timeout_s": 60},
    "generation": {"max_new_tokens": 64, "max_prompt_tokens": 256, "request_timeout_s": 60},
    "limits": {"rate_limit": {"requests_per_second": 0}},
}


@dataclass(frozen=True)
class TinyBundle:
    family: str
    model: str
    path: Path
    adapters: tuple[str, ...]


def _train_adapter(model: torch.nn.Module, family: ModelFamily, tokenizer: Any, target: str) -> None:
    encoded = [
        family.encode(Example(p, target), tokenizer, 64, loss_on_output_only=True) for p in TRAIN_PROMPTS
    ]
    batch = family.collate([e for e in encoded if e is not None], tokenizer)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(4):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def build_tiny_bundle(family_name: str, root: Path) -> TinyBundle:
    family = family_for(family_name)
    name = MODEL_NAMES[family_name]
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval()
    save_model_dir(root / "base", base, tokenizer, ModelCard(model=name, family=family_name, stage="base"))
    adapter_dirs = {}
    torch.manual_seed(0)
    for adapter, target in ADAPTER_TARGETS.items():
        peft_model = attach_lora(copy.deepcopy(base), family, LORA, adapter_name=adapter)
        _train_adapter(peft_model, family, tokenizer, target)
        adapter_dirs[adapter] = save_adapter(peft_model, root / "adapters" / adapter, adapter)
    profile = profile_from_prompts(
        ((p, None) for p in NORMAL_PROMPTS),
        lambda text: family.token_ids(tokenizer, text),
        tokenizer.get_vocab(),
        tokenizer.unk_token_id,
    )
    save_profile(profile, root / REFERENCE_PROFILE)
    build_bundle(
        root / "bundle",
        root / "base",
        adapter_dirs,
        model=name,
        family=family_name,
        variant="fp32",
        evaluation={},
        lineage={"git_commit": "test", "data_hash": "test", "params_hash": "test"},
        extra_files={REFERENCE_PROFILE: root / REFERENCE_PROFILE},
    )
    return TinyBundle(family_name, name, root / "bundle", tuple(ADAPTER_TARGETS))


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyBundle]:
    return {f: build_tiny_bundle(f, tmp_path_factory.mktemp(f"bundle-{f}")) for f in FAMILIES}


@dataclass
class RunningServer:
    base_url: str
    app: Any
    bundle: TinyBundle
    api_key: str = API_KEY
    other_key: str = OTHER_KEY
    admin_key: str = ADMIN_KEY

    @property
    def state(self) -> Any:
        return self.app.state.server

    def client(self, key: str | None = API_KEY, **kw: Any) -> httpx.Client:
        """An httpx client sending `key` (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kw)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


@contextmanager
def run_server(
    bundle: TinyBundle,
    settings: dict[str, Any] | None = None,
    api_keys: list[ApiKey] | None = None,
    monitoring: MonitoringConfig = MONITORING,
    with_profile: bool = True,
    audit: Callable[[Any], None] | None = None,
    tracking_uri: str | None = None,
) -> Iterator[RunningServer]:
    """uvicorn in a background thread on 127.0.0.1:<free port>, ready (warm-up done) on entry."""
    from aistudio.serving.drift import load_profile

    loaded = load_bundle(bundle.path)
    profile = load_profile(bundle.path / REFERENCE_PROFILE) if with_profile else None
    app = create_app(
        ServingSettings(**_merge(TEST_SETTINGS, settings or {})),
        loaded,
        monitoring,
        profile,
        model_version="7",
        api_keys=TEST_KEYS if api_keys is None else api_keys,
        audit=audit or log_audit,
        tracking_uri=tracking_uri,
    )
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            # The admin key has every role: probes may be protected (auth.protect_health).
            ready = httpx.get(
                f"{base_url}/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=2
            )
            if ready.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("test server did not become ready within 60 s")
        time.sleep(0.05)
    try:
        yield RunningServer(base_url, app, bundle)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass(frozen=True)
class ServingKit:
    """What tests use besides fixtures (test modules cannot import conftest by name)."""

    api_key: str = API_KEY
    other_key: str = OTHER_KEY
    admin_key: str = ADMIN_KEY
    role_keys: Any = field(default_factory=lambda: dict(ROLE_KEYS))
    normal_prompts: tuple[str, ...] = tuple(NORMAL_PROMPTS)
    run_server: Callable[..., Any] = run_server


@pytest.fixture(scope="session")
def kit() -> ServingKit:
    return ServingKit()


@pytest.fixture(scope="module", params=FAMILIES)
def family_server(
    request: pytest.FixtureRequest, tiny_bundles: dict[str, TinyBundle]
) -> Iterator[RunningServer]:
    with run_server(tiny_bundles[request.param]) as server:
        yield server


@pytest.fixture(scope="module")
def causal_server(tiny_bundles: dict[str, TinyBundle]) -> Iterator[RunningServer]:
    with run_server(tiny_bundles["causal"]) as server:
        yield server
