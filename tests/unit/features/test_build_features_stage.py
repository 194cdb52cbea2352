"""dvc.yaml's build_features stage: what rebuilds the feature store and what does not, read from the
stage and checked with a real `dvc status` in a throwaway git repository with its own cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
STAGE = "build_features"


def _stages() -> dict:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def test_the_stage_depends_on_tokenizer_files_and_token_params_not_on_training_sections() -> None:
    stage = _stages()[STAGE]
    assert stage["params"] == ["training.max_length", "training.loss_on_output_only"]
    deps = stage["deps"]
    assert "models/base/${item.model}/tokenizer.json" in deps
    assert "models/base/${item.model}" not in deps  # the weights change with every base retrain
    assert not [d for d in deps if "lora" in d or "finetune" in d or d.startswith("models/domain")]
    assert stage["outs"] == ["data/features/${item.model}"]
    assert stage["metrics"] == [{"metrics/features/${item.model}.json": {"cache": False}}]


def test_fine_tunes_and_adapters_depend_on_their_model_s_feature_store() -> None:
    stages = _stages()
    for reader in ("finetune_domain_models", "train_lora_adapters"):
        assert "data/features/${item.model}" in stages[reader]["deps"], reader


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


@pytest.fixture
def stage_repo(tmp_path: Path) -> Path:
    """The repository's build_features stage and params.yaml, its deps and outputs as small files,
    committed to a dvc.lock as if it had run."""
    repo = tmp_path / "repo"
    repo.mkdir()
    stage = _stages()[STAGE]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {STAGE: stage}}, sort_keys=False))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for model in params["models"]:
        for dep in stage["deps"]:
            path = repo / dep.replace("${item.model}", model)
            target = path / "file" if not path.suffix else path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{dep}\n")
        (repo / "data/features" / model / "abc").mkdir(parents=True)
        (repo / "data/features" / model / "abc" / "card.json").write_text("{}\n")
        (repo / "metrics/features").mkdir(parents=True, exist_ok=True)
        (repo / "metrics/features" / f"{model}.json").write_text("{}\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {repo / '.dvc' / 'cache'}\n")
    _dvc(repo, "commit", "--force", "-q")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "stage"], cwd=repo, check=True)
    return repo


def _changed(repo: Path) -> set[str]:
    return set(json.loads(_dvc(repo, "status", "--json")))


def _edit_params(repo: Path, edit) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_dvc_rebuilds_features_on_a_tokenizer_or_max_length_change_never_on_lora_or_finetune(
    stage_repo: Path,
) -> None:
    assert _changed(stage_repo) == set()
    _edit_params(stage_repo, lambda p: p["lora"].update(r=4, alpha=8))
    _edit_params(stage_repo, lambda p: p["finetune"]["defaults"].update(max_steps=99))
    _edit_params(stage_repo, lambda p: p["training"].update(learning_rate=0.5, max_steps=7))
    assert _changed(stage_repo) == set()

    (stage_repo / "models/base/t5_small/tokenizer.json").write_text('{"changed": true}\n')
    assert _changed(stage_repo) == {f"{STAGE}@t5_small"}
    _edit_params(stage_repo, lambda p: p["training"].update(max_length=128))
    assert _changed(stage_repo) == {f"{STAGE}@smollm2", f"{STAGE}@t5_small"}
