"""The `k8s` fixture of the manifest-check tests: a private copy of k8s/ to break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from k8s_sources import K8S


@pytest.fixture
def k8s(tmp_path: Path) -> Path:
    """A private copy of k8s/ to break."""
    return Path(shutil.copytree(K8S, tmp_path / "k8s"))
