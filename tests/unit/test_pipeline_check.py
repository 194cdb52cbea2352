from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from aistudio.pipeline_check import check_pipeline


def _copy(repo_root: Path, tmp_path: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml", "mlflow.yaml"):
        shutil.copy(repo_root / name, tmp_path / name)
    for name in ("scripts", "k8s", "configs"):
        shutil.copytree(repo_root / name, tmp_path / name)
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


def test_an_output_the_layout_does_not_know_is_named_with_the_fix(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc["stages"]["quantize_models"]["outs"].append("models/quantised-typo")
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    [problem] = check_pipeline(root)
    assert problem.startswith(
        "dvc.yaml: stages.quantize_models: output 'models/quantised-typo' is not a path aistudio.layout "
        "knows for quantize_models (expected some of ['metrics/lineage/quantize_models.json', "
        "'metrics/plots/quantization.json', 'metrics/quantization.json', 'models/quantized'])"
    )
    assert problem.endswith("fix the path or add it to layout.stage_outputs")


def test_a_cmd_whose_out_or_data_is_not_declared_is_named(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    lora = dvc["stages"]["train_lora_adapters"]
    lora["cmd"] = lora["cmd"].replace(
        "--out models/lora/${item.model}", "--out models/adapters/${item.model}"
    )
    dvc["stages"]["evaluate"]["cmd"] = dvc["stages"]["evaluate"]["cmd"].replace(
        "--data data/processed", "--data data/elsewhere"
    )
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    assert sorted(check_pipeline(root)) == [
        "dvc.yaml: stages.evaluate.cmd: --data data/elsewhere is not a dep of the stage (nor holds one)",
        "dvc.yaml: stages.train_lora_adapters.cmd: --out models/adapters/${item.model} is not an output "
        "of the stage (nor holds one)",
    ]


def test_every_stage_line_names_its_data_and_out_and_they_are_the_script_defaults(repo_root: Path) -> None:
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert " --out " in stage["cmd"], name
        if name not in ("prepare_data", "import_base_models", "deploy"):  # they read no processed data
            assert " --data data/processed" in stage["cmd"], name


def test_validate_pipeline_names_an_unknown_output_and_exits_1(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc["stages"]["evaluate"]["metrics"].append({"metrics/evaluation_extra.json": {"cache": False}})
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    completed = subprocess.run(
        [sys.executable, str(root / "scripts" / "validate_pipeline.py")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "stages.evaluate: output 'metrics/evaluation_extra.json' is not a path aistudio.layout" in (
        completed.stderr
    )
    assert completed.stdout.strip() == "pipeline: 1 problem(s)"
