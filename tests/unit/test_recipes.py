"""Training recipes: the shipped ones validate against params.yaml; a bad one is one line naming its key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aistudio.config import Params, read_yaml
from aistudio.errors import UserError
from aistudio.recipes import check_recipes, load_recipes, merged_params, write_params

RECIPES = Path("configs/training_config.yaml")


@pytest.fixture
def workdir(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """params.yaml, the recipes and the accelerate configs they name, in a scratch directory."""
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(repo_root / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write_recipes(workdir: Path, recipes: dict) -> Path:
    path = workdir / RECIPES
    path.write_text(yaml.safe_dump({"recipes": recipes}))
    return path


def test_every_shipped_recipe_validates_against_params_yaml(workdir: Path) -> None:
    assert {"gpu", "gpu-qlora", "smollm2-gpu"} <= set(check_recipes(Path("params.yaml"), RECIPES))


def test_the_gpu_recipe_replaces_the_model_set_and_merges_the_rest(workdir: Path) -> None:
    original = read_yaml(Path("params.yaml"))
    merged = Params.model_validate(merged_params(original, load_recipes(RECIPES), "gpu", str(RECIPES)))
    assert sorted(merged.models) == ["codet5p", "phi2", "t5_small"]
    assert (
        merged.models["phi2"].source == "microsoft/phi-2" and merged.models["t5_small"].init == "pretrained"
    )
    assert merged.training.precision == "bf16"
    # Keys the recipe does not name keep params.yaml's values.
    assert merged.training.lr_scheduler == original["training"]["lr_scheduler"]
    assert merged.data.domains == original["data"]["domains"]


@pytest.mark.parametrize("name", ["gpu", "gpu-qlora", "smollm2-gpu"])
def test_a_recipe_s_adapter_budget_reaches_every_domain_not_the_cpu_default_s_code_override(
    workdir: Path, name: str
) -> None:
    original = read_yaml(Path("params.yaml"))
    assert original["lora"]["domains"], "params.yaml has per-domain LoRA overrides for a recipe to drop"
    merged = Params.model_validate(merged_params(original, load_recipes(RECIPES), name, str(RECIPES)))
    model = next(iter(merged.models))
    steps = {d: merged.lora_training(model, d).max_steps for d in merged.data.domains}
    assert set(steps.values()) == {merged.lora_training(model).max_steps}, steps


def test_a_recipe_value_the_schema_refuses_names_the_file_and_the_recipe_key(workdir: Path) -> None:
    recipes = load_recipes(
        _write_recipes(workdir, {"bad": {"description": "x", "params": {"lora": {"r": 0}}}})
    )
    with pytest.raises(UserError) as caught:
        merged_params(read_yaml(Path("params.yaml")), recipes, "bad", str(RECIPES))
    assert caught.value.problems == [f"{RECIPES}: recipes.bad.params.lora.r must be > 0 (got 0)"]


def test_an_unknown_recipe_lists_the_known_ones(workdir: Path) -> None:
    with pytest.raises(UserError, match=r"no recipe 'tpu'; known recipes: gpu, gpu-qlora, smollm2-gpu"):
        merged_params(read_yaml(Path("params.yaml")), load_recipes(RECIPES), "tpu", str(RECIPES))


def test_a_missing_accelerate_config_is_named(workdir: Path) -> None:
    path = _write_recipes(
        workdir,
        {"g": {"description": "x", "accelerate_config": "configs/absent.yaml", "params": {"seed": 1}}},
    )
    with pytest.raises(UserError, match=r"recipes.g.accelerate_config configs/absent.yaml does not exist"):
        load_recipes(path)


def test_applying_a_recipe_rewrites_params_and_keeps_the_untouched_comments(workdir: Path) -> None:
    before = Path("params.yaml").read_text()
    merged = merged_params(read_yaml(Path("params.yaml")), load_recipes(RECIPES), "gpu", str(RECIPES))
    write_params(Path("params.yaml"), merged)
    after = Path("params.yaml").read_text()
    assert read_yaml(Path("params.yaml")) == merged
    assert "smollm2" not in read_yaml(Path("params.yaml"))["models"]
    kept = [line for line in before.splitlines() if line.startswith("# quantize_models")]
    assert kept and all(line in after for line in kept)


def test_the_script_exits_2_with_one_line_for_a_bad_recipe(workdir: Path, repo_root: Path) -> None:
    _write_recipes(workdir, {"bad": {"description": "x", "params": {"training": {"batch_size": 0}}}})
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts/apply_recipe.py"), "--recipe", "bad"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {RECIPES}: recipes.bad.params.training.batch_size must be >= 1 (got 0)"
    ]
