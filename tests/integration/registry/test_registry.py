"""The registry on real MLflow stores: a sqlite store in tmp_path, and an `mlflow server` subprocess.

Two bundles of one tiny causal model (adapters trained 1 vs 3 steps) are registered, promoted,
rolled back and downloaded; what the downloaded champion serves is compared with the in-memory model.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from aistudio.bundle import MANIFEST, build_bundle, load_bundle, sha256_file
from aistudio.config import LoraConfig, TinyArchitecture
from aistudio.errors import UserError
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.prompts import Example
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.registry import ModelRegistry
from aistudio.training.adapters import attach_lora, save_adapter

pytestmark = pytest.mark.slow

NAME = "aistudio-tiny"
TAGS = {"project": "aistudio-mlops"}

REPO_ROOT = Path(__file__).resolve().parents[3]
TEXTS = [
    f"task {i}: {w} the {n} and answer {i % 7}"
    for i in range(40)
    for w, n in (
        ("sort", "list"),
        ("count", "words"),
        ("merge", "tables"),
        ("parse", "file"),
        ("print", "table"),
    )
]  # 200 strings
PROMPTS = ["sort the list", "count the words and answer", "merge the tables"]
ADAPTER_TARGETS = {"code": "answer 3 answer 3", "summarization": "short short short"}
LORA = LoraConfig(r=4, alpha=8, dropout=0.0)


@dataclass(frozen=True)
class BuiltBundle:
    path: Path
    logits: dict[str, torch.Tensor]  # adapter name → logits of the in-memory model on `batch`
    greedy: dict[str, list[str]]


@dataclass(frozen=True)
class TinyBundles:
    v1: BuiltBundle
    v2: BuiltBundle
    batch: dict[str, torch.Tensor]


def _batch(family: CausalFamily, tokenizer, target: str) -> dict[str, torch.Tensor]:
    encoded = [family.encode(Example(p, target), tokenizer, 64, loss_on_output_only=True) for p in PROMPTS]
    return family.collate(encoded, tokenizer)


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory) -> TinyBundles:
    root = tmp_path_factory.mktemp("registry-bundles")
    family = CausalFamily()
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval()
    save_model_dir(root / "base", base, tokenizer, ModelCard(model="tiny", family="causal", stage="test"))
    batch = _batch(family, tokenizer, "answer")
    built = []
    for version, steps in ((1, 1), (2, 3)):
        dirs, logits, greedy = {}, {}, {}
        for name, target in ADAPTER_TARGETS.items():
            model = attach_lora(copy.deepcopy(base), family, LORA, adapter_name=name)
            model.train()
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
            for _ in range(steps):
                model(**_batch(family, tokenizer, target)).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            model.eval()
            dirs[name] = save_adapter(model, root / f"v{version}" / "adapters" / name, name)
            with torch.no_grad():
                logits[name] = model(**batch).logits
            greedy[name] = family.generate(model, tokenizer, PROMPTS, max_new_tokens=8)
        path = root / f"v{version}" / "bundle"
        build_bundle(
            path,
            root / "base",
            dirs,
            model="tiny",
            family="causal",
            variant="fp32",
            evaluation={"gate_passed": True, "perplexity": 30.0 - version, "version_hint": version},
            lineage={
                "git_commit": f"{version}" * 40,
                "data_hash": "d" * 32,
                "params_hash": f"p{version}",
                "run_ids": {"train_lora_adapters": f"lora-run-{version}"},
            },
        )
        built.append(BuiltBundle(path, logits, greedy))
    return TinyBundles(built[0], built[1], batch)


def new_run(registry: ModelRegistry, artifact_root: Path | None = None) -> str:
    """A fresh run to log a bundle under (the evaluate stage's run, in the pipeline)."""
    client = registry.client
    experiment = client.get_experiment_by_name("registry-test")
    if experiment is None:
        location = artifact_root.as_uri() if artifact_root is not None else None
        experiment_id = client.create_experiment("registry-test", artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    return client.create_run(experiment_id).info.run_id


def run_registry_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "registry.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def artifact_root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow sqlite store: migrating one takes seconds, copying it does not."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    ModelRegistry(f"sqlite:///{db}").client.search_experiments()
    return db


@pytest.fixture
def registry(tmp_path: Path, migrated_store: Path) -> ModelRegistry:
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    return ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")


def _register(registry: ModelRegistry, bundle: BuiltBundle, artifact_root: Path | None) -> int:
    return registry.register_bundle(NAME, bundle.path, new_run(registry, artifact_root), tags=TAGS)


def _assert_serves(directory: Path, bundles: TinyBundles, expected: BuiltBundle) -> None:
    loaded = load_bundle(directory)
    assert loaded.adapter_names == tuple(expected.logits)
    for name, logits in expected.logits.items():
        loaded.model.use(name)
        torch.testing.assert_close(loaded.model.forward(bundles.batch).logits, logits, rtol=1e-5, atol=1e-5)
        assert loaded.model.generate(loaded.tokenizer, PROMPTS, max_new_tokens=8) == expected.greedy[name]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_register_promote_rollback_move_the_aliases_like_mlflow(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path, tmp_path: Path
) -> None:
    assert _register(registry, tiny_bundles.v1, artifact_root) == 1
    assert registry.aliases(NAME) == {"challenger": 1}
    assert registry.champion_summary(NAME) is None
    registry.promote(NAME, 1)
    assert registry.aliases(NAME) == {"champion": 1}

    assert _register(registry, tiny_bundles.v2, artifact_root) == 2
    assert registry.aliases(NAME) == {"challenger": 2, "champion": 1}
    cli = ("--tracking-uri", registry.tracking_uri, "--audit-mirror", str(tmp_path / "audit.jsonl"))
    # The tiny bundles' evaluation is no gate summary: a plain promote is refused, a forced one audited.
    refused = run_registry_cli("promote", NAME, "--version", "2", *cli)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: registered model '{NAME}' v2 fails ") and "--force --reason" in line
    assert registry.aliases(NAME) == {"challenger": 2, "champion": 1}
    promoted = run_registry_cli("promote", NAME, "--version", "2", "--force", "--reason", "hotfix", *cli)
    assert promoted.returncode == 0, promoted.stderr
    assert (
        promoted.stdout.strip()
        == f"{NAME}: champion=v2 previous-champion=v1  (forced past failed gates; audited)"
    )
    assert registry.aliases(NAME) == {"champion": 2, "previous-champion": 1}
    assert registry.champion_summary(NAME) == {"gate_passed": True, "perplexity": 28.0, "version_hint": 2}

    no_reason = run_registry_cli("rollback", NAME, *cli)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert registry.rollback(NAME, reason="v2 answers in the wrong language") == 1
    assert registry.aliases(NAME) == {"champion": 1}
    assert registry.show(NAME, 2).tags["aistudio.promotion"] == "rolled back to v1"
    again = run_registry_cli("rollback", NAME, "--reason", "again", *cli)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: registered model '{NAME}' has no previous-champion to roll back to (aliases: champion=v1)"
    ]
    trail = [(e.action, e.version, e.outcome, e.reason) for e in registry.audit.entries(NAME)]
    assert trail == [
        ("register", 1, "ok", ""),
        ("promote", 1, "ok", ""),
        ("register", 2, "ok", ""),
        ("promote", 2, "refused", ""),
        ("promote", 2, "forced", "hotfix"),
        ("rollback", 1, "ok", "v2 answers in the wrong language"),
    ]
    verified = run_registry_cli("audit", "verify", *cli)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == "audit log: 6 entries, hash chain intact"

    [listed] = registry.list_models()
    assert (listed.name, listed.versions, listed.aliases) == (NAME, (1, 2), {"champion": 1})
    assert listed.tags == TAGS


def test_versions_carry_lineage_evaluation_and_the_manifest_hash(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path
) -> None:
    _register(registry, tiny_bundles.v1, artifact_root)
    info = registry.show(NAME, "challenger")
    assert info.version == 1 and info.aliases == ("challenger",)
    assert info.source.endswith("/artifacts/bundle") and info.run_id
    manifest = json.loads((tiny_bundles.v1.path / MANIFEST).read_text())
    assert info.tags["project"] == "aistudio-mlops"
    assert info.tags["aistudio.git_commit"] == manifest["lineage"]["git_commit"]
    assert info.tags["aistudio.data_hash"] == manifest["lineage"]["data_hash"]
    assert info.tags["aistudio.params_hash"] == manifest["lineage"]["params_hash"]
    assert json.loads(info.tags["aistudio.run_ids"]) == manifest["lineage"]["run_ids"]
    assert json.loads(info.tags["aistudio.evaluation"]) == manifest["evaluation"]
    assert info.tags["aistudio.adapters"] == "code,summarization"
    assert info.tags["aistudio.manifest_sha256"] == sha256_file(tiny_bundles.v1.path / MANIFEST)
    with pytest.raises(UserError, match=f"registered model '{NAME}': .*alias champion not found"):
        registry.show(NAME, "champion")


def test_champion_download_serves_what_was_in_memory_for_every_adapter(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path, tmp_path: Path
) -> None:
    for bundle in (tiny_bundles.v1, tiny_bundles.v2):
        registry.promote(NAME, _register(registry, bundle, artifact_root))
    registry.rollback(NAME, reason="test")
    champion = registry.download(f"models:/{NAME}@champion", tmp_path / "champion")
    assert champion == tmp_path / "champion"
    _assert_serves(champion, tiny_bundles, tiny_bundles.v1)
    # v2 differs, so matching v1 proves the alias, not luck.
    assert not torch.allclose(tiny_bundles.v1.logits["code"], tiny_bundles.v2.logits["code"])
    second = registry.download(f"models:/{NAME}/2", tmp_path / "v2")
    assert sha256_file(second / MANIFEST) == sha256_file(tiny_bundles.v2.path / MANIFEST)


def test_promote_if_better_promotes_only_a_gated_improvement(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path
) -> None:
    first = _register(registry, tiny_bundles.v1, artifact_root)
    assert registry.promote_if_better(NAME, first, gate_passed=True, beats_champion=True) == "promoted"
    second = _register(registry, tiny_bundles.v2, artifact_root)
    assert registry.promote_if_better(NAME, second, False, True) == "held: failed the evaluation gates"
    assert registry.promote_if_better(NAME, second, True, False) == "held: does not beat champion v1"
    assert registry.aliases(NAME) == {"challenger": 2, "champion": 1}
    assert registry.show(NAME, second).tags["aistudio.promotion"] == "held: does not beat champion v1"
    assert registry.promote_if_better(NAME, second, True, True) == "promoted"
    assert registry.aliases(NAME) == {"champion": 2, "previous-champion": 1}


def test_tampered_artifacts_are_refused_on_download_and_nothing_lands_at_dst(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path, tmp_path: Path
) -> None:
    _register(registry, tiny_bundles.v1, artifact_root)
    stored = next(artifact_root.rglob("bundle/base/model.safetensors"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    dst = tmp_path / "dl"
    with pytest.raises(UserError) as err:
        registry.download(f"models:/{NAME}/1", dst)
    assert err.value.problems == [
        f"bundle models:/{NAME}/1 (v1): sha256 mismatch for base/model.safetensors — refusing to load"
    ]
    # A consistent rewrite of the manifest passes the bundle's own check, not the registered hash.
    manifest_path = stored.parents[1] / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["base/model.safetensors"] = sha256_file(stored)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="manifest.json differs from the one registered with this version"):
        registry.download(f"models:/{NAME}/1", dst)
    assert not dst.exists()


def test_register_refuses_a_broken_bundle_or_unknown_run_without_registering(
    registry: ModelRegistry, tiny_bundles: TinyBundles, artifact_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="run no-such-run: "):
        registry.register_bundle(NAME, tiny_bundles.v1.path, "no-such-run")
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(UserError, match="no manifest.json — not a serving bundle"):
        registry.register_bundle(NAME, bad, new_run(registry, artifact_root))
    assert registry.list_models() == []
    with pytest.raises(UserError, match="must be models:/<name>@<alias> or models:/<name>/<version>"):
        registry.download("runs:/abc/bundle", tmp_path / "x")


def test_a_closed_port_is_a_one_line_user_error_from_the_api_and_the_cli(tiny_bundles: TinyBundles) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(UserError, match=f"MLflow tracking server at {url} is unreachable: .*refused"):
        ModelRegistry(url).register_bundle(NAME, tiny_bundles.v1.path, "any-run")
    assert time.monotonic() - started < 10  # no minutes of MLflow retries
    listed = run_registry_cli("list", "--tracking-uri", url)
    assert listed.returncode == 2
    [line] = listed.stderr.strip().splitlines()
    assert line.startswith(f"error: MLflow tracking server at {url} is unreachable")


class MlflowServer:
    """`mlflow server` on a free local port, in its own process group so stopping it stops its workers."""

    def __init__(self, root: Path, migrated_store: Path) -> None:
        self.db = root / "server.db"
        shutil.copyfile(migrated_store, self.db)  # spares the server its own schema migration
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = root / "server.log"
        self.artifacts = root / "artifacts"
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.db}",
            # Proxied artifacts (mlflow-artifacts:/), as a shared server runs: uploads go over HTTP.
            "--artifacts-destination",
            self.artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            self.url.rsplit(":", 1)[1],
            "--workers",
            "1",
        ]
        # No background job runner: the registry needs none, and it costs start-up time.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log.read_text()[-3000:]
                pytest.fail(f"mlflow server exited with {self.process.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"mlflow server not healthy after {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def mlflow_server(tmp_path: Path, migrated_store: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path, migrated_store)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def test_a_real_server_registers_and_serves_the_champion_then_refuses_cleanly_once_down(
    mlflow_server: MlflowServer, tiny_bundles: TinyBundles, tmp_path: Path
) -> None:
    registry = ModelRegistry(mlflow_server.url)
    run_id = new_run(registry)
    version = registry.register_bundle(NAME, tiny_bundles.v1.path, run_id, tags=TAGS)
    registry.promote(NAME, version)
    assert registry.show(NAME, "champion").source.startswith("mlflow-artifacts:")
    listed = run_registry_cli("list", "--tracking-uri", mlflow_server.url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == f"{NAME}  versions: 1  champion=v1"
    champion = registry.download(f"models:/{NAME}@champion", tmp_path / "dl")
    _assert_serves(champion, tiny_bundles, tiny_bundles.v1)

    mlflow_server.stop()
    started = time.monotonic()
    with pytest.raises(UserError, match=f"MLflow tracking server at {mlflow_server.url} is unreachable"):
        registry.register_bundle(f"{NAME}-late", tiny_bundles.v2.path, run_id)
    assert time.monotonic() - started < 10
    # The server's own store and artifact root, read directly: the failed registration left nothing.
    store = ModelRegistry(f"sqlite:///{mlflow_server.db}")
    assert [(m.name, m.versions) for m in store.list_models()] == [(NAME, (1,))]
    assert len(list(mlflow_server.artifacts.rglob(MANIFEST))) == 1
