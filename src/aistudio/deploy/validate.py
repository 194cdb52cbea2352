"""Offline checks of the Kubernetes manifests: would the API server accept them, and do they
follow our rules?

`validate_all(k8s_root)` renders the shared platform (k8s/ itself) and every overlay under
k8s/overlays with `kubectl kustomize`, then runs every check of aistudio.deploy.validation on each
rendered object: schema, security (and secrets), references, the metric contract, plus RBAC
(aistudio.deploy.rbac) and image integrity (aistudio.deploy.integrity).

Each problem is one line: ``production: Rollout/model-server: container server has no readinessProbe``.

    python -m aistudio.deploy.validate [k8s]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

from aistudio import layout
from aistudio.deploy.integrity import check_integrity
from aistudio.deploy.rbac import check_rbac
from aistudio.deploy.validation.metrics_contract import check_analysis_guards, check_metric_names
from aistudio.deploy.validation.objects import pod_spec_of
from aistudio.deploy.validation.references import check_references
from aistudio.deploy.validation.rendering import RENDER_TIMEOUT_S, RenderError, render
from aistudio.deploy.validation.schema import check_schema
from aistudio.deploy.validation.security import check_secrets, check_security
from aistudio.errors import UserError

PLATFORM = "platform"  # the name validate_all gives the render of k8s/ itself


def validate_overlay(overlay_dir: Path | str, name: str | None = None) -> list[str]:
    """Render one kustomization and return its problems, each prefixed with `name` (default:
    the directory name). An empty list means it is ready to apply."""
    overlay_dir = Path(overlay_dir)
    name = name or overlay_dir.name
    try:
        objects = render(overlay_dir)
    except RenderError as err:
        return [f"{name}: kustomize build failed: {err}"]
    except subprocess.TimeoutExpired:
        return [f"{name}: kustomize build did not finish within {RENDER_TIMEOUT_S} s"]
    return [f"{name}: {problem}" for problem in check_objects(objects)]


def validate_all(k8s_root: Path | str) -> dict[str, list[str]]:
    """Problems per render: "platform" for k8s_root's own kustomization (namespaces, MLflow,
    monitoring), then one entry per overlay under k8s_root/overlays, by directory name."""
    root = Path(k8s_root)
    results: dict[str, list[str]] = {}
    if (root / "kustomization.yaml").exists():
        results[PLATFORM] = validate_overlay(root, name=PLATFORM)
    overlays = root / "overlays"
    for overlay in sorted(overlays.iterdir()) if overlays.is_dir() else []:
        if (overlay / "kustomization.yaml").exists():
            results[overlay.name] = validate_overlay(overlay)
    if not results:
        raise UserError(f"{root}: no kustomization.yaml here or under overlays/; is this the k8s directory?")
    return results


def check_objects(objects: list[dict[str, Any]]) -> list[str]:
    """Every check on one rendered set of objects; problems as '<Kind>/<name>: <what>'."""
    problems: list[str] = []
    for obj in objects:
        problems += check_schema(obj)
        problems += check_security(obj)
        problems += check_secrets(obj)
        problems += check_metric_names(obj)
        problems += check_analysis_guards(obj)
    problems += check_references(objects)
    problems += check_rbac(objects, pod_spec_of)
    problems += check_integrity(objects, pod_spec_of)
    return problems


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render and check every kustomization under k8s/.")
    parser.add_argument("k8s_root", nargs="?", type=Path, default=layout.K8S_ROOT, help="default: k8s")
    args = parser.parse_args(argv)
    results = validate_all(args.k8s_root)
    problems = [problem for found in results.values() for problem in found]
    if problems:
        raise UserError(problems)
    print(f"{args.k8s_root}: {', '.join(results)} render and pass every check")
    return 0


if __name__ == "__main__":
    from aistudio.cli import run_cli

    run_cli(main)
