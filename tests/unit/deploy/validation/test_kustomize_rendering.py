"""Rendering: a kustomization that does not build is one problem line naming kustomize's error."""

from __future__ import annotations

from pathlib import Path

from k8s_sources import replace_text

from aistudio.deploy.validate import validate_overlay


def test_a_kustomization_that_does_not_build_is_one_problem(k8s: Path) -> None:
    replace_text(
        k8s / "overlays" / "production" / "kustomization.yaml", "  - ../../base\n", "  - ../../bases\n"
    )
    problems = validate_overlay(k8s / "overlays" / "production")
    assert len(problems) == 1
    assert problems[0].startswith("production: kustomize build failed: ")
    assert "bases" in problems[0]
