"""Helpers for the manifest-check tests: where k8s/ is, and how a test breaks one thing in it.

Imported as a top-level module (pytest puts this directory on sys.path: tests/ has no packages).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[4]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "staging", "production")


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None], kind: str | None = None) -> None:
    """Apply `change` to the document of `kind` in a (multi-document) YAML file; comments are lost."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    matching = [doc for doc in documents if kind is None or doc.get("kind") == kind]
    assert matching, f"no {kind} in {path}"
    change(matching[0])
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def replace_text(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old`; a test must know exactly what it breaks."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def server(rollout: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in rollout["spec"]["template"]["spec"]["containers"] if c["name"] == "server")
