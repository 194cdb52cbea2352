"""aistudio.deploy.validate: the real manifests pass every check, and each overlay on its own.

Each rule has its own test module under validation/ (one per check module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aistudio.deploy.validate import validate_all, validate_overlay

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "staging", "production")


def test_every_render_of_the_repository_manifests_has_no_problems() -> None:
    results = validate_all(K8S)
    assert set(results) == {"platform", *OVERLAYS}
    assert results == {name: [] for name in results}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_validates_on_its_own(overlay: str) -> None:
    assert validate_overlay(K8S / "overlays" / overlay) == []


def test_every_probe_in_the_sources_explains_its_timing() -> None:
    """Probe timings are judgement calls; the comment above each one says whose judgement."""
    missing = []
    for path in sorted(K8S.rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("#"):
                continue
            if any(probe in line for probe in ("startupProbe", "readinessProbe", "livenessProbe")):
                above = lines[max(0, number - 3) : number]
                if not any(previous.strip().startswith("#") for previous in above):
                    missing.append(f"{path.relative_to(REPO)}:{number + 1}: {line.strip()}")
    assert missing == []
