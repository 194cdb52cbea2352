"""The team setup for real: DVC and MLflow artifacts on S3, MLflow on PostgreSQL, on this machine.

One stack per module (conftest.team_stack): PostgreSQL 127.0.0.1, moto's S3 server with real key
checks, and `mlflow server` on PostgreSQL with artifacts proxied to a bucket, as in the cluster. A
throwaway copy of the repository runs `dvc repro prepare_data` with AISTUDIO_MLFLOW_PROFILE=team,
pushes to the `team` remote, and a fresh clone pulls it back.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from aistudio import tracking
from aistudio.bundle import MANIFEST, build_bundle, read_manifest
from aistudio.config import LoraConfig, MlflowConfig, TinyArchitecture
from aistudio.errors import UserError
from aistudio.modeling.family import family_for
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.registry import ModelRegistry
from aistudio.team_stack.mlflow_server import MlflowServer
from aistudio.team_stack.processes import free_port, log_tail
from aistudio.team_stack.stack import DVC_BUCKET, MLFLOW_BUCKET, TeamStack
from aistudio.training.adapters import attach_lora, save_adapter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# A model directory handed over through DVC (models/ itself holds git-ignored stage outputs).
SHARED_MODEL = Path("handoff/tiny-causal")
PROCESSED = ("train_data.jsonl", "validation_data.jsonl", "test_data.jsonl", "rejected.jsonl")
TEXTS = [
    f"{verb} the {noun} number {i}" for i in range(40) for verb, noun in (("sort", "list"), ("count", "rows"))
]
REGISTERED = "aistudio-team-check"
REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def stack_env(stack: TeamStack, **overrides: str) -> dict[str, str]:
    """A shell that sourced the stack's env file, with the venv first on PATH (dvc.yaml runs `python`)."""
    env = {**os.environ, **stack.client_env(), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.update(overrides)
    return env


def run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def dvc(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = run([sys.executable, "-m", "dvc", *args], repo, env)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def point_at_stack(repo: Path, stack: TeamStack, env: dict[str, str]) -> None:
    """The checkout's `team` profile and remote, moved to this stack's ports."""
    mlflow_yaml = repo / "mlflow.yaml"
    config = yaml.safe_load(mlflow_yaml.read_text())
    config["profiles"]["team"]["tracking_uri"] = stack.mlflow.url
    mlflow_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    dvc(repo, "remote", "modify", "--local", "team", "endpointurl", stack.s3.url, env=env)


def _sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _save_tiny_model(directory: Path) -> tuple[Path, Path]:
    """A real (tiny, random) causal model dir and one LoRA adapter for it, both safetensors."""
    family = family_for("causal")
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=300, min_frequency=1, special=family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval()
    save_model_dir(
        directory / "base", base, tokenizer, ModelCard(model="tiny", family="causal", stage="test")
    )
    peft_model = attach_lora(copy.deepcopy(base), family, LoraConfig(r=4, alpha=8, dropout=0.0), "code")
    return directory / "base", save_adapter(peft_model, directory / "adapters" / "code", "code")


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return errors[0]


def _runs(stack: TeamStack) -> dict[str, tuple[str, dict[str, float]]]:
    """Every run on the server: id → (status, latest metrics)."""
    from mlflow import MlflowClient

    client = MlflowClient(stack.mlflow.url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id: (r.info.status, dict(r.data.metrics)) for r in client.search_runs(experiments)}


def _bucket_keys(stack: TeamStack, bucket: str, prefix: str = "") -> list[str]:
    s3 = stack.s3.client("s3", stack.state().dev)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@dataclass(frozen=True)
class Pipeline:
    repo: Path
    env: dict[str, str]
    local_files: dict[str, str]  # workspace data and model files → sha256, after the repro


@pytest.fixture(scope="module")
def pipeline(team_stack: TeamStack, make_repo_copy) -> Pipeline:
    """A repository copy that ran prepare_data against the team profile and tracks a model in DVC."""
    repo = make_repo_copy("team-repo")  # with a DVC cache of its own
    env = stack_env(team_stack, AISTUDIO_PIPELINE_ID="team-test")
    point_at_stack(repo, team_stack, env)
    # Without the run-cache: the stage itself must run (and log to the server), not be restored.
    dvc(repo, "repro", "--no-run-cache", "prepare_data", env=env)
    _save_tiny_model(repo / SHARED_MODEL)
    dvc(repo, "add", str(SHARED_MODEL), env=env)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "data and a model"], cwd=repo, check=True)
    files = {
        f"data/processed/{n}": hashlib.sha256((repo / "data/processed" / n).read_bytes()).hexdigest()
        for n in PROCESSED
    }
    files.update({f"{SHARED_MODEL}/{k}": v for k, v in _sha256_tree(repo / SHARED_MODEL).items()})
    return Pipeline(repo, env, files)


# --- DVC on S3 ------------------------------------------------------------------------------------


def test_push_then_pull_into_a_fresh_clone_restores_identical_data_and_models(
    team_stack: TeamStack, pipeline: Pipeline, tmp_path: Path
) -> None:
    pushed = run([sys.executable, "scripts/remote.py", "push", "-r", "team"], pipeline.repo, pipeline.env)
    assert pushed.returncode == 0, pushed.stderr
    stored = _bucket_keys(team_stack, DVC_BUCKET, "store/files/md5/")
    assert len(stored) >= len(pipeline.local_files), stored  # every file, plus the .dir manifest

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(pipeline.repo), str(clone)], check=True)
    assert not (clone / SHARED_MODEL).exists() and not (clone / "data/processed/train_data.jsonl").exists()
    dvc(clone, "remote", "modify", "--local", "team", "endpointurl", team_stack.s3.url, env=pipeline.env)
    targets = ["prepare_data", f"{SHARED_MODEL}.dvc"]  # what ran and was pushed; dvc.yaml has more stages
    pulled = run([sys.executable, "scripts/remote.py", "pull", "-r", "team", *targets], clone, pipeline.env)
    assert pulled.returncode == 0, pulled.stderr
    restored = {rel: hashlib.sha256((clone / rel).read_bytes()).hexdigest() for rel in pipeline.local_files}
    assert restored == pipeline.local_files


def _workspace_and_cache(repo: Path) -> dict[str, str]:
    return {**_sha256_tree(repo / "data/processed"), **_sha256_tree(repo / SHARED_MODEL)}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "wrong key",
            "refused the credentials (InvalidAccessKeyId); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        ("dead endpoint", "is unreachable: Could not connect to the endpoint URL"),
        ("missing bucket", "bucket 'aistudio-missing' does not exist; create it"),
    ],
)
def test_a_push_that_cannot_work_is_one_line_naming_the_remote_and_nothing_local_is_lost(
    team_stack: TeamStack, pipeline: Pipeline, case: str, expected: str
) -> None:
    repo, env, remote = pipeline.repo, dict(pipeline.env), "team"
    if case == "wrong key":
        env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGWRONGWRONG0"
        shown = f"DVC remote 'team' (s3://{DVC_BUCKET}/store at {team_stack.s3.url})"
    elif case == "dead endpoint":
        remote, dead = "deadend", f"http://127.0.0.1:{free_port()}"
        dvc(repo, "remote", "add", "--local", "-f", remote, f"s3://{DVC_BUCKET}/store", env=env)
        dvc(repo, "remote", "modify", "--local", remote, "endpointurl", dead, env=env)
        shown = f"DVC remote 'deadend' (s3://{DVC_BUCKET}/store at {dead})"
    else:
        remote = "nobucket"
        dvc(repo, "remote", "add", "--local", "-f", remote, "s3://aistudio-missing/store", env=env)
        dvc(repo, "remote", "modify", "--local", remote, "endpointurl", team_stack.s3.url, env=env)
        shown = f"DVC remote 'nobucket' (s3://aistudio-missing/store at {team_stack.s3.url})"
    before = _workspace_and_cache(repo)
    done = run([sys.executable, "scripts/remote.py", "push", "-r", remote], repo, env, timeout=60)
    line = _one_error_line(done)
    assert line.startswith(f"error: {shown}"), line
    assert expected in line, line
    assert _workspace_and_cache(repo) == before
    assert dvc(repo, "status", env=env).returncode == 0


# --- MLflow on PostgreSQL, artifacts in S3 -----------------------------------------------------------


def test_the_stage_run_is_stored_in_postgres_and_its_artifacts_in_the_bucket(
    team_stack: TeamStack, pipeline: Pipeline
) -> None:
    import psycopg
    from mlflow import MlflowClient

    client = MlflowClient(team_stack.mlflow.url)
    experiment = client.get_experiment_by_name("aistudio")
    (stage_run,) = client.search_runs(
        [experiment.experiment_id],
        "tags.`aistudio.stage` = 'prepare_data' and tags.`aistudio.pipeline_id` = 'team-test'",
    )
    quality = json.loads((pipeline.repo / "metrics/data_quality.json").read_text())
    assert stage_run.info.status == "FINISHED"
    assert stage_run.data.metrics["kept_records"] == quality["kept_records"]
    with psycopg.connect(team_stack.postgres.uri("mlflow")) as db:
        stored = db.execute(
            "SELECT status FROM runs WHERE run_uuid = %s", (stage_run.info.run_id,)
        ).fetchone()
    assert stored == ("FINISHED",)
    keys = _bucket_keys(
        team_stack, MLFLOW_BUCKET, f"artifacts/{experiment.experiment_id}/{stage_run.info.run_id}/"
    )
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["data_quality.json"]
    s3 = team_stack.s3.client("s3", team_stack.state().dev)
    body = s3.get_object(Bucket=MLFLOW_BUCKET, Key=keys[0])["Body"].read()
    assert body == (pipeline.repo / "metrics/data_quality.json").read_bytes()


@pytest.fixture(scope="module")
def champion(team_stack: TeamStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("team-bundle")
    base, adapter = _save_tiny_model(root)
    bundle = root / "bundle"
    build_bundle(
        bundle,
        base_dir=base,
        adapters={"code": adapter},
        model="tiny",
        family="causal",
        variant="fp32",
        evaluation={"gate_passed": True},
        lineage={"git_commit": "0" * 40, "data_hash": "d" * 32, "params_hash": "p" * 16},
    )
    registry = ModelRegistry(team_stack.mlflow.url)
    experiment = registry.client.create_experiment("registry-check")
    run_id = registry.client.create_run(experiment).info.run_id
    version = registry.register_bundle(REGISTERED, bundle, run_id)
    registry.client.set_terminated(run_id)
    registry.promote(REGISTERED, version)
    return bundle, version


def _download(team_stack: TeamStack, dst: Path) -> subprocess.CompletedProcess:
    # What the init container runs; no AWS variables: artifacts come through the server's proxy.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "scripts/registry.py", "download", f"models:/{REGISTERED}@champion"]
    return run([*command, "--dst", str(dst), "--tracking-uri", team_stack.mlflow.url], REPO_ROOT, env)


def test_registry_download_of_the_champion_from_the_server_verifies_every_sha256(
    team_stack: TeamStack, champion: tuple[Path, int], tmp_path: Path
) -> None:
    bundle, version = champion
    done = _download(team_stack, tmp_path / "fetched")
    assert done.returncode == 0, done.stderr
    assert _sha256_tree(tmp_path / "fetched") == _sha256_tree(bundle)
    assert set(read_manifest(tmp_path / "fetched").files) == set(_sha256_tree(bundle)) - {MANIFEST}

    # The same bytes, changed in the bucket behind the server's back: refused, nothing at --dst.
    s3 = team_stack.s3.client("s3", team_stack.state().dev)
    (weights,) = [
        k for k in _bucket_keys(team_stack, MLFLOW_BUCKET) if k.endswith("bundle/base/model.safetensors")
    ]
    data = bytearray(s3.get_object(Bucket=MLFLOW_BUCKET, Key=weights)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=MLFLOW_BUCKET, Key=weights, Body=bytes(data))
    line = _one_error_line(_download(team_stack, tmp_path / "tampered"))
    assert (
        f"models:/{REGISTERED}@champion (v{version})" in line
        and "sha256 mismatch for base/model.safetensors" in line
    )
    assert not (tmp_path / "tampered").exists()


# --- restarts and outages ------------------------------------------------------------------------------


def test_postgres_down_at_stage_start_is_exit_2_naming_the_tracking_uri_and_no_run_is_lost(
    team_stack: TeamStack, pipeline: Pipeline
) -> None:
    before = _runs(team_stack)
    assert before
    team_stack.postgres.stop(mode="immediate")  # a crash: recovery runs on the next start
    try:
        done = run([sys.executable, "scripts/prepare_data.py", "--no-progress"], pipeline.repo, pipeline.env)
        line = _one_error_line(done)
        assert line.startswith(
            f"error: MLflow tracking server at {team_stack.mlflow.url} cannot reach its backend store"
        )
        assert "make team-up" in line
    finally:
        team_stack.up()  # restarts what stopped: the database here
    assert team_stack.status() == {"postgres": True, "s3": True, "mlflow": True}
    assert _runs(team_stack) == before


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's client retries a refused connection or a 5xx with backoff 2, 4, 8, ... s (7 tries);
    # factor 1 and 10 tries follow a restart more closely and wait longer in all (a loaded machine
    # takes a minute to start a server). Still MLflow's own retry path.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "10")


def _restart_after(delay_s: float, start: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def restart() -> None:
        time.sleep(delay_s)
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("crashed", ["postgres", "mlflow"])
def test_a_server_killed_in_the_middle_of_a_stage_run_is_retried_and_the_run_completes(
    team_stack: TeamStack, quick_retries: None, crashed: str, tmp_path: Path
) -> None:
    before = _runs(team_stack)
    cfg = MlflowConfig(tracking_uri=team_stack.mlflow.url, experiment="restarts")
    note = tmp_path / "note.txt"
    note.write_text(f"written while {crashed} was down\n")
    with tracking.stage_run(
        cfg, f"restart-{crashed}", {"crashed": crashed}, run_name=f"restart-{crashed}"
    ) as active:
        tracking.log_metrics({"progress": 1.0}, step=0)
        if crashed == "postgres":
            team_stack.postgres.stop(mode="immediate")
            thread, errors = _restart_after(2.0, team_stack.postgres.start)
        else:
            team_stack.mlflow.kill()
            thread, errors = _restart_after(0.0, team_stack.mlflow.start)
        try:
            tracking.log_metrics({"progress": 2.0}, step=1)  # lands once the server is back
            tracking.log_artifact(note)
        finally:
            thread.join(timeout=240)
            assert not errors, (errors, log_tail(team_stack.mlflow.log))
    from mlflow import MlflowClient

    client = MlflowClient(team_stack.mlflow.url)
    finished = client.get_run(active.info.run_id)
    assert finished.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(active.info.run_id, "progress")] == [
        (0, 1.0),
        (1, 2.0),
    ]
    assert [a.path for a in client.list_artifacts(active.info.run_id)] == ["note.txt"]
    after = _runs(team_stack)
    assert {k: v for k, v in after.items() if k in before} == before


# --- the server's artifact store broken: bucket missing, keys revoked ---------------------------------


@pytest.fixture(scope="module")
def misconfigured_server(
    team_stack: TeamStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MlflowServer, str]]:
    """A second server on the same database whose artifact bucket does not exist, with its own key."""
    credentials = team_stack.s3.add_user("mlflow-misconfigured", team_stack.state().dev)
    server = MlflowServer(
        tmp_path_factory.mktemp("misconfigured"),
        free_port(),
        team_stack.postgres.uri("mlflow"),
        "s3://aistudio-missing/artifacts",
        team_stack.s3.url,
        credentials,
    )
    server.start()
    try:
        yield server, credentials.access_key_id
    finally:
        server.stop()


def test_a_missing_artifact_bucket_fails_the_stage_with_exit_2_before_it_logs(
    team_stack: TeamStack, pipeline: Pipeline, misconfigured_server: tuple[MlflowServer, str], make_repo_copy
) -> None:
    server, _ = misconfigured_server
    repo = make_repo_copy("misconfigured-repo")
    (repo / "mlflow.yaml").write_text(f"tracking_uri: {server.url}\nexperiment: misconfigured\n")
    before = _runs(team_stack)
    env = {**pipeline.env, "AISTUDIO_MLFLOW_PROFILE": ""}
    line = _one_error_line(run([sys.executable, "scripts/prepare_data.py", "--no-progress"], repo, env))
    assert line.startswith(
        f"error: MLflow tracking server at {server.url} cannot reach its artifact store: "
    ), line
    assert "aistudio-missing" in line and "bucket" in line.lower(), line
    assert _runs(team_stack) == before


def test_revoked_server_keys_fail_the_tracking_check_naming_the_credentials(
    team_stack: TeamStack, misconfigured_server: tuple[MlflowServer, str]
) -> None:
    server, key_id = misconfigured_server
    iam = team_stack.s3.client("iam", team_stack.state().dev)
    iam.delete_access_key(UserName="mlflow-misconfigured", AccessKeyId=key_id)
    with pytest.raises(UserError) as caught:
        tracking.configure(MlflowConfig(tracking_uri=server.url, experiment="misconfigured"))
    (line,) = caught.value.problems
    assert line.startswith(f"MLflow tracking server at {server.url} cannot reach its artifact store: ")
    assert "Access Key Id you provided does not exist" in line and "AWS credentials" in line
