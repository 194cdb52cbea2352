"""Rendering a kustomization with `kubectl kustomize` into the objects the checks read."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from aistudio.errors import UserError

RENDER_TIMEOUT_S = 120


class RenderError(Exception):
    """`kubectl kustomize` failed; the message is kustomize's own error line."""


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <directory>` renders, in its order."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise UserError(
            "kubectl is not on PATH; install kubectl >= 1.27 (its built-in kustomize renders k8s/)"
        )
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RenderError(_kustomize_error(proc.stderr))
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _kustomize_error(stderr: str) -> str:
    """kubectl wraps kustomize's error in klog noise and can dump whole configs; keep the gist."""
    text = " ".join(stderr.split())
    match = re.search(r'err="(.*?)"(?: |$)', text) or re.search(r"[Ee]rror: (.*)", text)
    message = match.group(1) if match else text
    return message if len(message) <= 300 else message[:297] + "..."
