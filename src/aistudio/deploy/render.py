"""Render one environment of the model server with a pinned model version and image.

`k8s/overlays/<env>` commits a model version and an image tag as a starting point; what a
deployment actually ships is decided later, by the registry (an alias such as `champion`) and
the release (an image tag). `render_overlay` puts the two on top without touching k8s/: it
copies k8s/ to a temporary directory, adds a kustomization there that takes the real overlay as
its only resource, sets the image with kustomize's `images:` and patches the Rollout's pod
template annotations `aistudio.io/model-name` / `aistudio.io/model-version` (which the init
container turns into `models:/<name>/<version>`), and renders that with `kubectl kustomize`.
Every render then gets its environment's values from configs/deployment_config.yaml (replicas,
resources, canary steps, analysis thresholds, HPA bounds: aistudio.deploy.deployment_config),
which the overlays deliberately leave out.

A copy rather than a reference to k8s/ from /tmp: kustomize refuses absolute resource paths,
and a relative path out of /tmp into the checkout would depend on where both happen to be.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from aistudio import layout
from aistudio.deploy.deployment_config import DeploymentConfig, apply_deployment
from aistudio.deploy.integrity import digest_fix, is_digest, requires_digests
from aistudio.deploy.validate import check_objects
from aistudio.deploy.validation.rendering import render
from aistudio.deploy.validation.security import image_problem
from aistudio.errors import UserError
from aistudio.io import atomic_writer, write_json

DEFAULT_OVERLAYS: tuple[str, ...] = ("dev", "staging", "production")

ROLLOUT_NAME = "model-server"
SERVER_CONTAINER = "server"
MODEL_NAME_ANNOTATION = "aistudio.io/model-name"
MODEL_VERSION_ANNOTATION = "aistudio.io/model-version"
CHAMPION = "champion"  # aistudio.registry.CHAMPION, without importing mlflow to name it
UNRESOLVED = "unresolved"  # the stage's record for "no champion: the overlay's committed version"

_PINNED_DIR = "pinned"


class AliasResolver(Protocol):
    """What rendering needs from aistudio.registry.ModelRegistry (mlflow loads only when used)."""

    def aliases(self, name: str) -> dict[str, int]: ...

    def show(self, name: str, version_or_alias: int | str) -> Any: ...


@dataclass(frozen=True)
class ModelPin:
    """The registered model version an environment serves, and how it was chosen."""

    name: str
    version: int
    alias: str | None = None

    def describe(self) -> str:
        via = f" (alias {self.alias})" if self.alias else ""
        return f"{self.name} version {self.version}{via}"


@dataclass(frozen=True)
class Served:
    """What a render actually ships, read back from its Rollout."""

    model_name: str | None
    model_version: str | None
    image: str | None


# --- input checks ------------------------------------------------------------------------------------


def overlay_names(k8s_root: Path = layout.K8S_ROOT) -> list[str]:
    overlays = Path(k8s_root) / "overlays"
    return (
        sorted(p.name for p in overlays.iterdir() if (p / "kustomization.yaml").is_file())
        if overlays.is_dir()
        else []
    )


def overlay_dir(k8s_root: Path, overlay: str) -> Path:
    """k8s/overlays/<overlay>, or a UserError listing the overlays that exist."""
    known = overlay_names(k8s_root)
    if overlay not in known:
        raise UserError(
            f"unknown overlay '{overlay}': {Path(k8s_root) / 'overlays'} has {', '.join(known) or 'none'}"
        )
    return Path(k8s_root) / "overlays" / overlay


def check_image(image: str) -> str:
    """A pinned image reference (tag other than latest, or a digest); else a UserError saying so."""
    if not image or any(c.isspace() for c in image):
        raise UserError(f"--image '{image}' is not an image reference; give registry/name:tag")
    why = image_problem(image)
    if why is not None:
        raise UserError(f"--image: {why}")
    return image


def split_image(image: str) -> dict[str, str]:
    """An image reference as the fields of a kustomize `images:` entry (newName + newTag or digest)."""
    name, _, digest = image.partition("@")
    head, _, last = name.rpartition("/")
    repository, _, tag = last.partition(":")
    fields = {"newName": f"{head}/{repository}" if head else repository}
    if digest:
        fields["digest"] = digest
    else:
        fields["newTag"] = tag
    return fields


def registered_name(registry_names: Mapping[str, str], model_key: str) -> str:
    """mlflow.yaml `registry` maps a params model key (smollm2) to its registered model name."""
    if model_key not in registry_names:
        raise UserError(
            f"--model '{model_key}' has no registered model in mlflow.yaml registry "
            f"(known: {', '.join(sorted(registry_names)) or 'none'})"
        )
    return registry_names[model_key]


def _shown_aliases(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"{alias}=v{version}" for alias, version in aliases.items()) or "none"


def resolve_model_version(registry: AliasResolver, name: str, ref: str) -> ModelPin:
    """`ref` is a version number or an alias of registered model `name`; both must exist."""
    ref = str(ref).strip()
    aliases = registry.aliases(name)  # also proves the registered model exists
    if ref.isdigit():
        try:
            registry.show(name, int(ref))
        except UserError:
            raise UserError(
                f"registered model '{name}' has no version {ref} (aliases: {_shown_aliases(aliases)})"
            ) from None
        return ModelPin(name, int(ref))
    if ref not in aliases:
        raise UserError(
            f"registered model '{name}' has no alias '{ref}' (existing aliases: {_shown_aliases(aliases)})"
        )
    return ModelPin(name, aliases[ref], alias=ref)


def champion_pin(registry: AliasResolver, name: str) -> ModelPin | None:
    """The champion of `name`, or None when the model is not registered or has no champion yet.

    Call it only after the store proved reachable (aistudio.registry.check_reachable): a
    UserError from the registry then means "no such model", not "no server".
    """
    try:
        aliases = registry.aliases(name)
    except UserError:
        return None
    return ModelPin(name, aliases[CHAMPION], alias=CHAMPION) if CHAMPION in aliases else None


# --- rendering -----------------------------------------------------------------------------------------


def _rollout(objects: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    return next(
        (
            o
            for o in objects
            if o.get("kind") == "Rollout" and (o.get("metadata") or {}).get("name") == ROLLOUT_NAME
        ),
        None,
    )


def served(objects: list[dict[str, Any]]) -> Served:
    rollout = _rollout(objects) or {}
    template = (rollout.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    server = next((c for c in containers if c.get("name") == SERVER_CONTAINER), {})
    version = annotations.get(MODEL_VERSION_ANNOTATION)
    return Served(
        model_name=annotations.get(MODEL_NAME_ANNOTATION),
        model_version=None if version is None else str(version),
        image=server.get("image"),
    )


def _pinning_kustomization(
    overlay: str, pin: ModelPin | None, image: str | None, current_image: str | None
) -> dict:
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../k8s/overlays/{overlay}"],
    }
    if image is not None:
        if current_image is None:
            raise UserError(
                f"{overlay}: Rollout/{ROLLOUT_NAME} has no container '{SERVER_CONTAINER}' to set the image of"
            )
        # Matched by name, so the init container (same image) moves with the server.
        kustomization["images"] = [{"name": split_image(current_image)["newName"], **split_image(image)}]
    if pin is not None:
        patch = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": ROLLOUT_NAME},
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {
                            MODEL_NAME_ANNOTATION: pin.name,
                            MODEL_VERSION_ANNOTATION: str(pin.version),
                        }
                    }
                }
            },
        }
        kustomization["patches"] = [
            {
                "target": {"group": "argoproj.io", "kind": "Rollout", "name": ROLLOUT_NAME},
                "patch": yaml.safe_dump(patch, sort_keys=False),
            }
        ]
    return kustomization


def render_overlay(
    k8s_root: Path,
    overlay: str,
    pin: ModelPin | None = None,
    image: str | None = None,
    *,
    deployment: DeploymentConfig,
) -> list[dict[str, Any]]:
    """The objects of `overlay` with its `deployment` values, serving `pin` from `image` (None:
    as the overlay commits it)."""
    source = overlay_dir(k8s_root, overlay)
    committed = render(source)
    if pin is None and image is None:
        return _configured(committed, deployment, overlay)
    with tempfile.TemporaryDirectory(prefix="aistudio-render-") as scratch:
        shutil.copytree(k8s_root, Path(scratch) / "k8s")
        pinned = Path(scratch) / _PINNED_DIR
        pinned.mkdir()
        kustomization = _pinning_kustomization(overlay, pin, image, served(committed).image)
        (pinned / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        objects = render(pinned)
    if image is not None and any(requires_digests(o) for o in objects) and not is_digest(image):
        raise UserError(
            f"{overlay}: --image {image} is not pinned by digest; {overlay} runs digests only — "
            f"{digest_fix(image)}"
        )
    return _configured(objects, deployment, overlay)


def _configured(objects: list[dict[str, Any]], deployment: DeploymentConfig, overlay: str) -> list[dict]:
    return apply_deployment(objects, deployment, overlay, rollout=ROLLOUT_NAME, container=SERVER_CONTAINER)


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, the serving config) as literal blocks a reviewer can read."""


_BlockStyleDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def manifest_text(objects: list[dict[str, Any]], header: str) -> str:
    """A multi-document YAML `kubectl apply -f` accepts, with `header` as leading comment lines."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    body = yaml.dump_all(objects, Dumper=_BlockStyleDumper, sort_keys=False, width=4096, allow_unicode=True)
    return comment + body


def write_manifest(path: Path, text: str) -> None:
    with atomic_writer(Path(path)) as out:
        out.write(text)


def load_manifest(path: Path) -> list[dict[str, Any]]:
    """The objects of a rendered file; a missing or unparsable one is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path} does not exist; render it first: scripts/deploy_models.py render --overlay "
            f"{path.stem} ..."
        )
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None


def header_for(
    overlay: str, pin: ModelPin | None, shipped: Served, command: str, deployment: DeploymentConfig
) -> str:
    model = pin.describe() if pin else f"{shipped.model_name} version {shipped.model_version} (as committed)"
    return (
        f"Rendered from k8s/overlays/{overlay} by `{command}`; do not edit, re-render.\n"
        f"values: {deployment.source} environments.{overlay}\n"
        f"model: {model}\n"
        f"image: {shipped.image}"
    )


# --- the DVC stage ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverlayResult:
    overlay: str
    objects: int
    problems: list[str]
    served: Served
    resolution: str  # the alias the version came from, or UNRESOLVED
    path: Path

    def to_metrics(self) -> dict[str, Any]:
        version = self.served.model_version
        return {
            "objects": self.objects,
            "problems": len(self.problems),
            "problem_lines": self.problems,
            "model_name": self.served.model_name,
            "model_version": int(version) if version and version.isdigit() else version,
            "resolution": self.resolution,
            "image": self.served.image,
            "rendered": str(self.path),
        }


def render_and_validate_all(
    k8s_root: Path,
    overlays: Iterable[str],
    champion_of: Callable[[], ModelPin | None],
    image: str | None = None,
    out_dir: Path = layout.RENDERED_DIR,
    metrics_path: Path | None = layout.DEPLOY_METRICS,
    *,
    deployment: DeploymentConfig,
) -> dict[str, OverlayResult]:
    """Render every overlay with the registry's champion (when there is one), validate it, write
    deploy/rendered/<overlay>.yaml and the metrics file; problems are returned, not raised.

    `champion_of` returns the champion pin, or None when the model has no champion yet: then
    each overlay keeps its committed version and is recorded as `unresolved`.
    """
    overlays = list(overlays)
    for overlay in overlays:
        overlay_dir(k8s_root, overlay)
    if image is not None:
        check_image(image)
    pin = champion_of()
    # Every overlay rendered before any is written: an image one overlay refuses changes none.
    rendered = {
        overlay: render_overlay(k8s_root, overlay, pin, image, deployment=deployment) for overlay in overlays
    }
    results: dict[str, OverlayResult] = {}
    for overlay, objects in rendered.items():
        shipped = served(objects)
        problems = [f"{overlay}: {problem}" for problem in check_objects(objects)]
        path = layout.rendered_path(overlay, out_dir)
        header = header_for(overlay, pin, shipped, "scripts/deploy_models.py stage", deployment)
        write_manifest(path, manifest_text(objects, header))
        results[overlay] = OverlayResult(
            overlay, len(objects), problems, shipped, (pin.alias or CHAMPION) if pin else UNRESOLVED, path
        )
    if metrics_path is not None:
        write_json(Path(metrics_path), deploy_metrics(results))
    return results


def deploy_metrics(results: Mapping[str, OverlayResult]) -> dict[str, Any]:
    """metrics/deploy.json: one entry per overlay plus totals."""
    metrics: dict[str, Any] = {name: result.to_metrics() for name, result in results.items()}
    metrics["totals"] = {
        "overlays": len(results),
        "objects": sum(r.objects for r in results.values()),
        "problems": sum(len(r.problems) for r in results.values()),
        "unresolved": sum(r.resolution == UNRESOLVED for r in results.values()),
    }
    return metrics
