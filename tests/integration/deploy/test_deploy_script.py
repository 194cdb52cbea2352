"""scripts/deploy_models.py end to end: aliases resolved in a real MLflow registry, overlays
rendered by the real kustomize, and cluster commands proven by a recorded `kubectl` first on PATH
(it must not be called at all without --yes, and exactly as printed with it).

Runs that open the registry go through `run_script_in_process` (same run_cli, same exit codes):
a fresh interpreter spends ~6 s importing MLflow and tearing it down again. Everything else runs
as a real subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
# conftest.RecordedBinary and conftest.RegistryStore (test modules cannot import conftest by name)
RecordedBinary = Any
RegistryStore = Any
IMAGE = "registry.example.com/ml/model-server:0.2.0"
# registry_store registers aistudio-smollm2 (mlflow.yaml registry.smollm2), named here.
MODEL = "smollm2"
DIGEST = "registry.example.com/ml/model-server@sha256:" + "b" * 64
# staging and production run digests only (aistudio.deploy.integrity)
RELEASE_IMAGE = {"dev": IMAGE, "staging": DIGEST, "production": DIGEST}
NAMESPACES = {"dev": "aistudio-dev", "staging": "aistudio-staging", "production": "aistudio-production"}


def deploy(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """scripts/deploy_models.py as a user runs it; `env` entries replace the inherited ones."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "deploy_models.py"), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})}, cwd=cwd or REPO,
    )  # fmt: skip


@pytest.fixture(scope="session")
def deploy_here(deploy_kit: Any):
    """deploy_models.py in this process, for the runs that open the MLflow registry."""
    return lambda *args, cwd=None: deploy_kit.run_script_in_process("deploy_models.py", *args, cwd=cwd)


def registry_args(store: RegistryStore) -> list[str]:
    return [
        "--model",
        MODEL,
        "--tracking-uri",
        store.tracking_uri,
        "--mlflow-config",
        str(REPO / "mlflow.yaml"),
    ]


def rollout_of(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return next(d for d in docs if d["kind"] == "Rollout")


def pinned(path: Path) -> tuple[str, str, set[str]]:
    """(model name, model version, images of every container) of a rendered file's Rollout."""
    template = rollout_of(path)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    images = {c["image"] for c in template["spec"]["containers"] + template["spec"]["initContainers"]}
    return annotations["aistudio.io/model-name"], annotations["aistudio.io/model-version"], images


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, registry_store: RegistryStore, deploy_here: Any) -> Path:
    """A working directory with k8s/ where the DVC stage ran once against the registry:
    deploy/rendered/* and metrics/deploy.json, as `dvc repro` leaves them."""
    work = tmp_path_factory.mktemp("stage")
    shutil.copytree(REPO / "k8s", work / "k8s")
    (work / "configs").mkdir()
    shutil.copy(REPO / "configs" / "deployment_config.yaml", work / "configs")
    result = deploy_here("stage", *registry_args(registry_store), cwd=work)
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def kubectl(tmp_path: Path, deploy_kit: Any) -> RecordedBinary:
    return deploy_kit.make_recorded_binary(tmp_path / "bin", "kubectl")


def cluster_env(kubectl: RecordedBinary, *extra_dirs: Path) -> dict[str, str]:
    """PATH holds only the recorded binaries: no real kubectl or plugin can be reached."""
    return {"PATH": ":".join(str(d) for d in (kubectl.bin_dir, *extra_dirs))}


# --- render ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "staging", "production"])
def test_render_pins_the_champion_and_the_image_in_every_overlay(
    overlay: str, registry_store: RegistryStore, tmp_path: Path, deploy_here: Any
) -> None:
    image = RELEASE_IMAGE[overlay]
    result = deploy_here(
        "render", "--overlay", overlay, "--model-version", "champion", "--image", image,
        "--rendered-dir", str(tmp_path), *registry_args(registry_store),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"{overlay}.yaml"
    assert pinned(path) == (registry_store.name, "2", {image})
    assert rollout_of(path)["metadata"]["namespace"] == NAMESPACES[overlay]
    assert path.read_text().startswith(f"# Rendered from k8s/overlays/{overlay}")
    assert "version 2 (alias champion)" in result.stdout


def test_render_takes_a_version_number_as_is(
    registry_store: RegistryStore, tmp_path: Path, deploy_here: Any
) -> None:
    result = deploy_here(
        "render", "--overlay", "production", "--model-version", "3", "--image", DIGEST,
        "--rendered-dir", str(tmp_path), *registry_args(registry_store),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pinned(tmp_path / "production.yaml")[:2] == (registry_store.name, "3")
    from aistudio.registry import ModelRegistry

    last = ModelRegistry(registry_store.tracking_uri).audit.entries(registry_store.name)[-1]
    assert (last.action, last.version, last.outcome) == ("deploy_render", 3, "ok")
    assert last.details["overlay"] == "production" and last.details["image"] == DIGEST
    rendered = (tmp_path / "production.yaml").read_bytes()
    assert last.details["rendered_sha256"] == hashlib.sha256(rendered).hexdigest()


def test_render_of_a_tag_for_production_is_refused_with_the_digest_fix(
    registry_store: RegistryStore, tmp_path: Path, deploy_here: Any
) -> None:
    result = deploy_here(
        "render", "--overlay", "production", "--model-version", "3", "--image", IMAGE,
        "--rendered-dir", str(tmp_path), *registry_args(registry_store),
    )  # fmt: skip
    line = one_error_line(result)
    assert line.startswith(f"error: production: --image {IMAGE} is not pinned by digest")
    assert "--image registry.example.com/ml/model-server@sha256:<digest>" in line
    assert list(tmp_path.iterdir()) == []


def test_render_of_an_unknown_alias_names_it_and_lists_the_existing_ones(
    registry_store: RegistryStore, tmp_path: Path, deploy_here: Any
) -> None:
    result = deploy_here(
        "render", "--overlay", "production", "--model-version", "golden", "--image", IMAGE,
        "--rendered-dir", str(tmp_path), *registry_args(registry_store),
    )  # fmt: skip
    assert one_error_line(result) == (
        "error: registered model 'aistudio-smollm2' has no alias 'golden' "
        "(existing aliases: challenger=v3, champion=v2, previous-champion=v1)"
    )
    assert not (tmp_path / "production.yaml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--overlay", "qa", "--image", IMAGE],
            "error: unknown overlay 'qa': k8s/overlays has dev, production, staging",
        ),
        (
            ["--overlay", "production", "--image", "registry.example.com/ml/model-server"],
            "error: --image: image registry.example.com/ml/model-server has no tag; pin a version",
        ),
        (
            ["--overlay", "production", "--image", "registry.example.com/ml/model-server:latest"],
            (
                "error: --image: image registry.example.com/ml/model-server:latest uses the mutable tag "
                "latest; pin a version"
            ),
        ),
        (
            ["--overlay", "production", "--image", IMAGE, "--model", "llama"],
            "error: --model 'llama' has no registered model in mlflow.yaml registry (known: codet5p, phi2, "
            "smollm2, t5_small)",
        ),
    ],
)
def test_render_rejects_bad_input_with_one_line(
    args: list[str], message: str, registry_store: RegistryStore, tmp_path: Path
) -> None:
    result = deploy(
        "render", "--model-version", "champion", "--rendered-dir", str(tmp_path),
        *registry_args(registry_store), *args,  # after: the case's own --model wins
    )  # fmt: skip
    assert one_error_line(result) == message
    assert list(tmp_path.iterdir()) == []


def test_render_leaves_the_repository_manifests_untouched(
    registry_store: RegistryStore, tmp_path: Path, deploy_here: Any
) -> None:
    before = {p: p.read_bytes() for p in (REPO / "k8s").rglob("*") if p.is_file()}
    result = deploy_here(
        "render", "--overlay", "dev", "--model-version", "1", "--image", IMAGE,
        "--rendered-dir", str(tmp_path), *registry_args(registry_store),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {p: p.read_bytes() for p in (REPO / "k8s").rglob("*") if p.is_file()} == before


# --- the DVC stage --------------------------------------------------------------------------------------


def test_stage_renders_every_overlay_with_the_champion_and_writes_metrics(
    staged: Path, registry_store: RegistryStore
) -> None:
    metrics = json.loads((staged / "metrics" / "deploy.json").read_text())
    assert set(metrics) == {"dev", "staging", "production", "totals"}
    for overlay in NAMESPACES:
        entry = metrics[overlay]
        assert entry["problems"] == 0 and entry["problem_lines"] == []
        assert (entry["model_name"], entry["model_version"], entry["resolution"]) == (
            registry_store.name, 2, "champion",
        )  # fmt: skip
        rendered = staged / "deploy" / "rendered" / f"{overlay}.yaml"
        assert pinned(rendered)[:2] == (registry_store.name, "2")
        assert entry["objects"] == len([d for d in yaml.safe_load_all(rendered.read_text()) if d])
    assert metrics["dev"]["image"].endswith("-cpu")  # the overlay's own image when --image is not given
    assert metrics["totals"] == {
        "overlays": 3,
        "objects": sum(metrics[o]["objects"] for o in NAMESPACES),
        "problems": 0,
        "unresolved": 0,
    }


def test_stage_without_a_registry_keeps_the_committed_versions_as_unresolved(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such.db'}"
    result = deploy(
        "stage", "--overlays", "dev", "--k8s", str(REPO / "k8s"), "--tracking-uri", missing,
        "--mlflow-config", str(REPO / "mlflow.yaml"), "--params", str(REPO / "params.yaml"),
        "--deployment-config", str(REPO / "configs" / "deployment_config.yaml"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics" / "deploy.json").read_text())
    committed = yaml.safe_load((REPO / "k8s/overlays/dev/model.yaml").read_text())
    annotations = committed["spec"]["template"]["metadata"]["annotations"]
    assert metrics["dev"]["resolution"] == "unresolved"
    assert str(metrics["dev"]["model_version"]) == annotations["aistudio.io/model-version"]
    assert metrics["totals"]["unresolved"] == 1
    assert not (tmp_path / "no-such.db").exists()


def test_validate_checks_overlays_and_rendered_files(staged: Path) -> None:
    result = deploy("validate", cwd=staged)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "platform: ok", "dev: ok", "production: ok", "staging: ok",
        "deploy/rendered/dev.yaml: ok", "deploy/rendered/production.yaml: ok",
        "deploy/rendered/staging.yaml: ok",
    ]  # fmt: skip


def test_validate_exits_1_with_the_problems_of_a_broken_rendered_file(staged: Path, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    text = (staged / "deploy" / "rendered" / "production.yaml").read_text()
    (rendered / "production.yaml").write_text(
        text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    )
    result = deploy("validate", "--overlay", "production", "--rendered-dir", str(rendered))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "production: ok",
        f"{rendered / 'production.yaml'}: 2 problem(s)",
    ]  # init container and server
    assert (
        f"{rendered / 'production.yaml'}: Rollout/model-server: container server does not set "
        "securityContext.readOnlyRootFilesystem: true"
    ) in result.stderr.splitlines()


# --- apply ----------------------------------------------------------------------------------------------


def test_apply_without_context_exits_2(staged: Path, kubectl: RecordedBinary) -> None:
    result = deploy("apply", "--overlay", "production", "--yes", cwd=staged, env=cluster_env(kubectl))
    assert (
        one_error_line(result)
        == "error: apply needs --context (the kubeconfig context of the target cluster)"
    )
    assert kubectl.calls() == []


def test_apply_is_a_dry_run_that_lists_the_objects_and_calls_no_kubectl(
    staged: Path, kubectl: RecordedBinary
) -> None:
    result = deploy(
        "apply", "--overlay", "production", "--context", "prod-eu", cwd=staged, env=cluster_env(kubectl)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "  kubectl apply -f deploy/rendered/production.yaml --context prod-eu"
    assert "  rollout.argoproj.io/model-server" in lines
    assert "  analysistemplate.argoproj.io/model-server-success-rate" in lines
    assert "  horizontalpodautoscaler.autoscaling/model-server" in lines
    assert kubectl.calls() == []


def test_apply_with_yes_runs_exactly_the_printed_command(staged: Path, kubectl: RecordedBinary) -> None:
    dry = deploy("apply", "--overlay", "staging", "--context", "stg", cwd=staged, env=cluster_env(kubectl))
    printed = dry.stdout.splitlines()[1].strip()
    result = deploy(
        "apply", "--overlay", "staging", "--context", "stg", "--yes", cwd=staged, env=cluster_env(kubectl)
    )
    assert result.returncode == 0, result.stderr
    assert kubectl.calls() == [["apply", "-f", "deploy/rendered/staging.yaml", "--context", "stg"]]
    assert shlex.split(printed) == ["kubectl", *kubectl.calls()[0]]


def test_apply_refuses_a_rendered_file_that_fails_validation(
    staged: Path, kubectl: RecordedBinary, tmp_path: Path
) -> None:
    (tmp_path / "dev.yaml").write_text(
        (staged / "deploy" / "rendered" / "dev.yaml")
        .read_text()
        .replace("runAsNonRoot: true", "runAsNonRoot: false")
    )
    result = deploy(
        "apply", "--overlay", "dev", "--context", "kind", "--yes", "--rendered-dir", str(tmp_path),
        env=cluster_env(kubectl),
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"refusing to apply {tmp_path / 'dev.yaml'}: fix and re-render it"
    )
    assert kubectl.calls() == []


# --- rollout steering -----------------------------------------------------------------------------------


def patch(namespace: str, body: str, *flags: str) -> list[str]:
    return [
        "patch",
        "rollouts.argoproj.io",
        "model-server",
        "-n",
        namespace,
        "--context",
        "prod",
        *flags,
        "-p",
        body,
    ]


PATCH_COMMANDS = {
    "promote": [
        patch(
            "aistudio-production",
            '{"status":{"pauseConditions":null}}',
            "--subresource=status",
            "--type=merge",
        ),
        patch("aistudio-production", '{"spec":{"paused":false}}', "--type=merge"),
    ],
    "abort": [
        patch("aistudio-production", '{"status":{"abort":true}}', "--subresource=status", "--type=merge")
    ],
}


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_steering_without_the_plugin_prints_the_patches_then_runs_them_with_yes(
    action: str, kubectl: RecordedBinary
) -> None:
    env = cluster_env(kubectl)
    args = (action, "--overlay", "production", "--context", "prod")
    dry = deploy(*args, env=env)
    assert dry.returncode == 0, dry.stderr
    printed = [shlex.split(line) for line in dry.stdout.splitlines()[1:]]
    assert printed == [["kubectl", *command] for command in PATCH_COMMANDS[action]]
    assert kubectl.calls() == []

    result = deploy(*args, "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert kubectl.calls() == PATCH_COMMANDS[action]


@pytest.mark.parametrize(
    ("action", "verb"), [("promote", ["promote"]), ("abort", ["abort"]), ("rollback", ["undo"])]
)
def test_steering_uses_the_argo_rollouts_plugin_when_it_is_on_path(
    action: str, verb: list[str], kubectl: RecordedBinary, tmp_path: Path, deploy_kit: Any
) -> None:
    plugin = deploy_kit.make_recorded_binary(tmp_path / "plugin-bin", "kubectl-argo-rollouts")
    env = cluster_env(kubectl, plugin.bin_dir)
    expected = ["argo", "rollouts", *verb, "model-server", "-n", "aistudio-staging", "--context", "stg"]
    dry = deploy(action, "--overlay", "staging", "--context", "stg", env=env)
    assert dry.stdout.splitlines()[1:] == [f"  {shlex.join(['kubectl', *expected])}"]
    assert kubectl.calls() == []
    result = deploy(action, "--overlay", "staging", "--context", "stg", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert kubectl.calls() == [expected]


def test_status_only_reads_so_it_runs_without_yes(kubectl: RecordedBinary) -> None:
    result = deploy("status", "--overlay", "dev", "--context", "kind", env=cluster_env(kubectl))
    assert result.returncode == 0, result.stderr
    [call] = kubectl.calls()
    assert call[:8] == [
        "get",
        "rollouts.argoproj.io",
        "model-server",
        "-n",
        "aistudio-dev",
        "--context",
        "kind",
        "-o",
    ]
    assert call[8].startswith("custom-columns=NAME:.metadata.name,PHASE:.status.phase")


def replicaset(revision: int, version: str, owner: str = "model-server") -> dict:
    return {
        "metadata": {
            "name": f"model-server-{revision}",
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Rollout", "name": owner, "controller": True}],
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": {
                        "app.kubernetes.io/name": "model-server",
                        "rollouts-pod-template-hash": f"h{revision}",
                    },
                    "annotations": {"aistudio.io/model-version": version},
                },
                "spec": {"containers": [{"name": "server", "image": f"ms:{version}"}]},
            }
        },
    }


def test_rollback_without_the_plugin_patches_in_the_previous_revisions_pod_template(
    kubectl: RecordedBinary, tmp_path: Path
) -> None:
    listing = tmp_path / "replicasets.json"
    # Revision 3 is current, 2 the one to return to; 9 belongs to another Rollout.
    items = [replicaset(1, "1"), replicaset(3, "3"), replicaset(2, "2"), replicaset(9, "9", owner="other")]
    listing.write_text(json.dumps({"items": items}))
    env = {**cluster_env(kubectl), "FAKE_KUBECTL_STDOUT": str(listing)}
    args = ("rollback", "--overlay", "production", "--context", "prod")

    dry = deploy(*args, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "<pod template of the previous revision>" in dry.stdout
    assert kubectl.calls() == []

    result = deploy(*args, "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert "rolling back to revision 2" in result.stdout
    get, patched = kubectl.calls()
    assert get == [
        "get", "replicasets", "-n", "aistudio-production", "--context", "prod",
        "-l", "app.kubernetes.io/name=model-server", "-o", "json",
    ]  # fmt: skip
    assert patched[:-1] == patch("aistudio-production", "", "--type=json")[:-1]
    template = items[2]["spec"]["template"]
    del template["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert json.loads(patched[-1]) == [{"op": "replace", "path": "/spec/template", "value": template}]
