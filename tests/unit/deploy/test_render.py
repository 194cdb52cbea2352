"""aistudio.deploy.render: pinning a model version and an image onto an overlay with the real
kustomize, without touching k8s/, and the DVC stage's render-validate-record loop.

Alias resolution against a real MLflow registry is tested in
tests/integration/deploy/test_deploy_script.py; here the registry is an in-memory table with the
two methods rendering calls, so these tests stay fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from aistudio.deploy.deployment_config import load_deployment_config
from aistudio.deploy.render import (
    ModelPin,
    champion_pin,
    check_image,
    load_manifest,
    manifest_text,
    overlay_dir,
    overlay_names,
    render_and_validate_all,
    render_overlay,
    resolve_model_version,
    served,
    split_image,
)
from aistudio.deploy.validate import check_objects
from aistudio.errors import UserError

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "staging", "production")
IMAGE = "registry.example.com/ml/model-server:0.2.0"
DIGEST = "registry.example.com/ml/model-server@sha256:" + "a" * 64
DEPLOYMENT = load_deployment_config(REPO / "configs" / "deployment_config.yaml", OVERLAYS)


class TableRegistry:
    """Registered models as a dict: {name: {"versions": {1, 2}, "aliases": {"champion": 2}}}."""

    def __init__(self, models: dict[str, dict[str, Any]]) -> None:
        self.models = models

    def aliases(self, name: str) -> dict[str, int]:
        if name not in self.models:
            raise UserError(f"registered model '{name}': Registered Model with name={name} not found")
        return dict(sorted(self.models[name]["aliases"].items()))

    def show(self, name: str, version_or_alias: int | str) -> dict[str, Any]:
        if int(version_or_alias) not in self.models[name]["versions"]:
            raise UserError(
                f"registered model '{name}': Model Version (name={name}, version={version_or_alias}) not "
                "found"
            )
        return {"name": name, "version": int(version_or_alias)}


REGISTRY = TableRegistry(
    {"aistudio-phi2": {"versions": {1, 2, 3}, "aliases": {"champion": 2, "challenger": 3}}}
)


def images(objects: list[dict[str, Any]]) -> set[str]:
    rollout = next(o for o in objects if o["kind"] == "Rollout")
    pod = rollout["spec"]["template"]["spec"]
    return {c["image"] for c in pod["containers"] + pod["initContainers"]}


# --- input checks ------------------------------------------------------------------------------------


def test_the_overlays_are_the_three_environments() -> None:
    assert overlay_names(K8S) == sorted(OVERLAYS)


def test_an_unknown_overlay_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"unknown overlay 'prod': .*overlays has dev, production, staging$"):
        overlay_dir(K8S, "prod")


@pytest.mark.parametrize("image", [IMAGE, DIGEST, "localhost:5000/model-server:1.0", "model-server:1.0"])
def test_pinned_images_pass(image: str) -> None:
    assert check_image(image) == image


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("registry.example.com/ml/model-server", "has no tag"),
        ("localhost:5000/model-server", "has no tag"),  # the port is not a tag
        ("registry.example.com/ml/model-server:latest", "mutable tag latest"),
        ("model server:1.0", "is not an image reference"),
    ],
)
def test_unpinned_images_are_refused(image: str, why: str) -> None:
    with pytest.raises(UserError, match=why):
        check_image(image)


@pytest.mark.parametrize(
    ("image", "fields"),
    [
        (IMAGE, {"newName": "registry.example.com/ml/model-server", "newTag": "0.2.0"}),
        ("localhost:5000/ms:1.0-cpu", {"newName": "localhost:5000/ms", "newTag": "1.0-cpu"}),
        (DIGEST, {"newName": "registry.example.com/ml/model-server", "digest": "sha256:" + "a" * 64}),
    ],
)
def test_an_image_splits_into_kustomize_image_fields(image: str, fields: dict[str, str]) -> None:
    assert split_image(image) == fields


def test_an_alias_resolves_to_its_version() -> None:
    assert resolve_model_version(REGISTRY, "aistudio-phi2", "champion") == ModelPin(
        "aistudio-phi2", 2, "champion"
    )
    assert resolve_model_version(REGISTRY, "aistudio-phi2", "3") == ModelPin("aistudio-phi2", 3)


def test_a_missing_alias_or_version_names_it_and_the_existing_aliases() -> None:
    with pytest.raises(UserError) as missing_alias:
        resolve_model_version(REGISTRY, "aistudio-phi2", "golden")
    assert missing_alias.value.problems == [
        "registered model 'aistudio-phi2' has no alias 'golden' (existing aliases: challenger=v3, "
        "champion=v2)"
    ]
    with pytest.raises(UserError) as missing_version:
        resolve_model_version(REGISTRY, "aistudio-phi2", "9")
    assert missing_version.value.problems == [
        "registered model 'aistudio-phi2' has no version 9 (aliases: challenger=v3, champion=v2)"
    ]


def test_champion_pin_is_none_without_a_model_or_a_champion() -> None:
    registry = TableRegistry({"fresh": {"versions": {1}, "aliases": {"challenger": 1}}})
    assert champion_pin(registry, "fresh") is None
    assert champion_pin(registry, "never-registered") is None
    assert champion_pin(REGISTRY, "aistudio-phi2") == ModelPin("aistudio-phi2", 2, "champion")


# --- rendering ---------------------------------------------------------------------------------------------


# Staging and production run digests only; dev takes a tag.
RELEASE_IMAGE = {"dev": IMAGE, "staging": DIGEST, "production": DIGEST}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_pins_model_and_image_and_changes_nothing_else(overlay: str) -> None:
    image = RELEASE_IMAGE[overlay]
    committed = render_overlay(K8S, overlay, deployment=DEPLOYMENT)
    pinned = render_overlay(
        K8S, overlay, ModelPin("aistudio-phi2", 7, "champion"), image, deployment=DEPLOYMENT
    )
    assert served(pinned) == served(pinned).__class__("aistudio-phi2", "7", image)
    assert images(pinned) == {image}  # the init container moves with the server
    assert check_objects(pinned) == []

    def without_pins(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text = yaml.safe_dump_all(objects)
        for value in (image, *images(committed)):
            text = text.replace(value, "IMAGE")
        documents = list(yaml.safe_load_all(text))
        rollout = next(d for d in documents if d["kind"] == "Rollout")
        rollout["spec"]["template"]["metadata"]["annotations"] = {}
        return documents

    assert without_pins(pinned) == without_pins(committed)


def test_render_by_digest_pins_the_digest() -> None:
    assert images(render_overlay(K8S, "production", image=DIGEST, deployment=DEPLOYMENT)) == {DIGEST}


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_a_tag_is_refused_where_only_digests_run_with_the_fix(overlay: str) -> None:
    with pytest.raises(UserError) as refused:
        render_overlay(K8S, overlay, image=IMAGE, deployment=DEPLOYMENT)
    assert refused.value.problems == [
        f"{overlay}: --image {IMAGE} is not pinned by digest; {overlay} runs digests only — "
        "pin it by digest: --image registry.example.com/ml/model-server@sha256:<digest> "
        f"(`docker buildx imagetools inspect {IMAGE}` prints the digest of a pushed tag)"
    ]


def test_a_tag_refused_by_one_overlay_leaves_every_rendered_file_unwritten(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="^staging: --image .* is not pinned by digest"):
        render_and_validate_all(
            K8S, OVERLAYS, lambda: None, IMAGE, tmp_path / "out", tmp_path / "d.json", deployment=DEPLOYMENT
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "d.json").exists()


def test_staging_and_production_commit_digests_and_mount_the_key_file() -> None:
    for overlay in OVERLAYS:
        objects = render_overlay(K8S, overlay, deployment=DEPLOYMENT)
        pod = next(o for o in objects if o["kind"] == "Rollout")["spec"]["template"]["spec"]
        [server] = [c for c in pod["containers"] if c["name"] == "server"]
        env = {e["name"]: e for e in server["env"]}
        assert "AISTUDIO_API_KEYS" not in env
        assert env["AISTUDIO_API_KEY_FILE"]["value"] == "/etc/aistudio-keys/keys"
        [keys] = [v for v in pod["volumes"] if v["name"] == "api-keys"]
        assert keys["secret"]["secretName"] == "model-server-api-keys"
        if overlay != "dev":
            assert all("@sha256:" in image for image in images(objects))


def test_render_without_pins_is_the_committed_overlay() -> None:
    shipped = served(render_overlay(K8S, "dev", deployment=DEPLOYMENT))
    committed = yaml.safe_load((K8S / "overlays/dev/model.yaml").read_text())
    annotations = committed["spec"]["template"]["metadata"]["annotations"]
    assert (shipped.model_name, shipped.model_version) == (
        annotations["aistudio.io/model-name"], annotations["aistudio.io/model-version"],
    )  # fmt: skip
    assert shipped.image == "ghcr.io/aistudio/model-server:0.1.0-cpu"


def test_the_manifest_text_round_trips_and_keeps_queries_readable(tmp_path: Path) -> None:
    objects = render_overlay(K8S, "production", ModelPin("aistudio-phi2", 4), DIGEST, deployment=DEPLOYMENT)
    path = tmp_path / "production.yaml"
    path.write_text(manifest_text(objects, "line one\nline two"))
    text = path.read_text()
    assert text.startswith("# line one\n# line two\n")
    assert "query: |" in text  # PromQL as a literal block, not an escaped one-liner
    assert load_manifest(path) == objects


def test_loading_a_missing_rendered_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"staging.yaml does not exist; render it first: .* render --overlay staging"
    ):
        load_manifest(tmp_path / "staging.yaml")


# --- the DVC stage ----------------------------------------------------------------------------------------


def test_the_stage_records_every_overlay_and_the_totals(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics" / "deploy.json"
    pin = ModelPin("aistudio-phi2", 5, "champion")
    results = render_and_validate_all(
        K8S, OVERLAYS, lambda: pin, None, tmp_path / "rendered", metrics, deployment=DEPLOYMENT
    )
    assert {name: r.problems for name, r in results.items()} == {name: [] for name in OVERLAYS}
    recorded = json.loads(metrics.read_text())
    assert recorded["production"] | {"problem_lines": None} == {
        "objects": results["production"].objects,
        "problems": 0,
        "problem_lines": None,
        "model_name": "aistudio-phi2",
        "model_version": 5,
        "resolution": "champion",
        "image": served(render_overlay(K8S, "production", deployment=DEPLOYMENT)).image,
        "rendered": str(tmp_path / "rendered" / "production.yaml"),
    }
    assert recorded["totals"]["problems"] == 0 and recorded["totals"]["overlays"] == 3
    for overlay in OVERLAYS:
        assert served(load_manifest(tmp_path / "rendered" / f"{overlay}.yaml")).model_version == "5"


def test_the_stage_without_a_champion_records_unresolved(tmp_path: Path) -> None:
    metrics = tmp_path / "deploy.json"
    results = render_and_validate_all(
        K8S, ["staging"], lambda: None, DIGEST, tmp_path, metrics, deployment=DEPLOYMENT
    )
    assert results["staging"].resolution == "unresolved"
    assert json.loads(metrics.read_text())["totals"]["unresolved"] == 1
    assert served(load_manifest(tmp_path / "staging.yaml")).image == DIGEST


def test_the_stage_reports_validation_problems_instead_of_raising(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    rollout = k8s / "base" / "rollout.yaml"
    text = rollout.read_text()
    rollout.write_text(text.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1))
    results = render_and_validate_all(
        k8s, ["dev"], lambda: None, None, tmp_path / "out", tmp_path / "d.json", deployment=DEPLOYMENT
    )
    expected = (
        "dev: Rollout/model-server: init container fetch-bundle does not set "
        "securityContext.allowPrivilegeEscalation: false"
    )
    assert results["dev"].problems == [expected]
    assert (tmp_path / "out" / "dev.yaml").exists()  # written anyway, to be looked at
    assert json.loads((tmp_path / "d.json").read_text())["totals"]["problems"] == len(results["dev"].problems)


def test_the_deployed_model_defaults_to_the_first_of_params_models(tmp_path: Path) -> None:
    from aistudio.deploy.cli import default_model

    params = tmp_path / "params.yaml"
    params.write_text("models:\n  smollm2: {family: causal}\n  t5_small: {family: seq2seq}\n")
    assert default_model(params) == "smollm2"
    params.write_text("models: {}\n")
    with pytest.raises(UserError, match=r"params.yaml: models: no model defined; add one or pass --model"):
        default_model(params)
