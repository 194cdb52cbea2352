"""k8s/components/feedback: the cluster's feedback store, switched on by adding it to an overlay.

What an operator gets is checked on the rendered objects: the offline validation passes, and the
server's own settings, read from the rendered env, record into the shared claim's mount and read
the HMAC secret from the mounted Secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_sources import OVERLAYS, server

from aistudio.deploy.validate import check_objects
from aistudio.deploy.validation.rendering import render
from aistudio.serving.settings import load_settings

COMPONENT = "../../components/feedback"


def _with_feedback(k8s: Path, overlay: str) -> list[dict[str, Any]]:
    kustomization = k8s / "overlays" / overlay / "kustomization.yaml"
    config = yaml.safe_load(kustomization.read_text())
    config["components"] = [*config.get("components", []), COMPONENT]
    kustomization.write_text(yaml.safe_dump(config, sort_keys=False))
    return render(k8s / "overlays" / overlay)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith("model-server")]
    return found


def _mounted(pod: dict[str, Any], container: dict[str, Any], path: Path) -> tuple[dict[str, Any], Path]:
    """The volume whose mount holds `path`, and `path` relative to that mount."""
    for mount in container["volumeMounts"]:
        if path.is_relative_to(mount["mountPath"]):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume | {"readOnly": mount.get("readOnly", False)}, path.relative_to(mount["mountPath"])
    raise AssertionError(f"{path} is on no mounted volume")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_overlay_with_the_feedback_component_passes_every_offline_check(k8s: Path, overlay: str) -> None:
    assert check_objects(_with_feedback(k8s, overlay)) == []


def test_the_server_records_into_the_shared_claim_and_reads_the_mounted_secret(
    k8s: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _with_feedback(k8s, "production")
    rollout = next(o for o in objects if o["kind"] == "Rollout")
    pod, container = rollout["spec"]["template"]["spec"], server(rollout)
    for var in container["env"]:
        if var["name"].startswith("AISTUDIO_FEEDBACK"):
            monkeypatch.setenv(var["name"], var["value"])
    settings = load_settings(Path(k8s / "base" / "serving.yaml"))

    assert settings.feedback.record is True
    store, rest = _mounted(pod, container, settings.feedback.directory)
    assert rest == Path(".") and not store["readOnly"]
    claim = _one(objects, "PersistentVolumeClaim")
    assert store["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # Every replica appends to the one store, on whichever node it runs.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["namespace"] == rollout["metadata"]["namespace"]

    assert settings.feedback.secret_file is not None
    secret, key_path = _mounted(pod, container, settings.feedback.secret_file)
    assert secret["readOnly"]
    assert {"key": "secret", "path": str(key_path)} in secret["secret"]["items"]
    # A file, not an env value: no AISTUDIO_FEEDBACK_SECRET anywhere in the pod.
    names = {v["name"] for c in pod["containers"] for v in c.get("env", [])}
    assert "AISTUDIO_FEEDBACK_SECRET" not in names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_committed_overlay_records_served_prompts(k8s: Path, overlay: str) -> None:
    objects = render(k8s / "overlays" / overlay)
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    rollout = next(o for o in objects if o["kind"] == "Rollout")
    assert not [v for v in server(rollout)["env"] if v["name"].startswith("AISTUDIO_FEEDBACK")]
