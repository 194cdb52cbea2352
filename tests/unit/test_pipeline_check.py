from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from aistudio.pipeline_check import check_pipeline


def _copy(repo_root: Path, tmp_path: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(repo_root / name, tmp_path / name)
    shutil.copytree(repo_root / "scripts", tmp_path / "scripts")
    shutil.copytree(repo_root / "data" / "raw", tmp_path / "data" / "raw")
    shutil.copytree(repo_root / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_repository_pipeline_is_consistent(repo_root: Path) -> None:
    assert check_pipeline(repo_root) == []


def test_missing_script_unknown_param_and_matrix_drift_are_reported(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc["stages"]["prepare_data"]["cmd"] = "python scripts/prepare_everything.py"
    dvc["stages"]["prepare_data"]["params"].append("data.nonexistent")
    dvc["stages"]["finetune_domain_models"]["matrix"]["domain"] = ["code", "creative"]
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    problems = check_pipeline(root)
    assert (
        "dvc.yaml: stages.prepare_data.cmd: script scripts/prepare_everything.py does not exist" in problems
    )
    assert "dvc.yaml: stages.prepare_data.params: 'data.nonexistent' is not a key of params.yaml" in problems
    assert any(
        p.startswith(
            "dvc.yaml: stages.finetune_domain_models.matrix.domain ['code', 'creative'] "
            "does not match params.yaml data.domains"
        )
        for p in problems
    )
