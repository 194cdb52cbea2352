"""Training recipes (configs/training_config.yaml): params.yaml overrides for another kind of run.

The default params.yaml fits a 2-core CPU and offline weights. A recipe names what a connected GPU
machine changes (model sources, precision, batch, steps, accelerate config). `apply_recipe` merges
one into params.yaml and validates the result with the same schema every stage uses, so a recipe
that would make a stage fail is refused before anything runs; the merged file is what `dvc repro`
then tracks, so caching and lineage work as for any params change.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aistudio import layout
from aistudio.config import Params, TrainingRecipes, format_validation_error, read_yaml, validate
from aistudio.errors import UserError

RECIPES_FILE = layout.TRAINING_CONFIG_FILE
# Replaced whole, not merged: a recipe's models are the run's model set, and its per-domain
# overrides are its own (`domains: {}` drops the CPU default's, which were sized for 2 cores).
REPLACED_SECTIONS = frozenset({("models",), ("finetune", "domains"), ("lora", "domains")})


def load_recipes(path: Path = RECIPES_FILE) -> TrainingRecipes:
    recipes = validate(TrainingRecipes, read_yaml(path), str(path))
    problems = [
        f"{path}: recipes.{name}.accelerate_config {recipe.accelerate_config} does not exist"
        for name, recipe in recipes.recipes.items()
        if recipe.accelerate_config and not Path(recipe.accelerate_config).is_file()
    ]
    if problems:
        raise UserError(problems)
    return recipes


def _merge(
    base: Mapping[str, Any], override: Mapping[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        nested = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        if nested and (*path, key) not in REPLACED_SECTIONS:
            merged[key] = _merge(merged[key], value, (*path, key))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merged_params(params_data: Mapping[str, Any], recipes: TrainingRecipes, name: str, source: str) -> dict:
    """params.yaml's mapping with recipe `name` applied; problems name `source` and the recipe key."""
    recipe = recipes.recipes.get(name)
    if recipe is None:
        raise UserError(f"{source}: no recipe '{name}'; known recipes: {', '.join(sorted(recipes.recipes))}")
    merged = _merge(params_data, recipe.params)
    try:
        Params.model_validate(merged)
    except ValidationError as exc:
        raise UserError(format_validation_error(source, exc, key_prefix=f"recipes.{name}.params")) from None
    return merged


def check_recipes(params_path: Path, recipes_path: Path = RECIPES_FILE) -> list[str]:
    """Every recipe applied to params.yaml validates; returns the recipe names."""
    recipes = load_recipes(recipes_path)
    params_data = read_yaml(params_path)
    for name in recipes.recipes:
        merged_params(params_data, recipes, name, str(recipes_path))
    return sorted(recipes.recipes)


def write_params(path: Path, merged: Mapping[str, Any]) -> None:
    """Rewrite params.yaml with `merged`, keeping the comments of every section the recipe left alone."""
    from ruamel.yaml import YAML  # DVC's own YAML library: round-trips comments

    yaml = YAML()
    yaml.width = 4096
    yaml.representer.add_representer(float, _float_yaml11)
    document = yaml.load(path.read_text(encoding="utf-8"))
    _assign(document, merged)
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)


def _float_yaml11(representer: Any, value: float) -> Any:
    # ruamel writes 2e-05; YAML 1.1 readers (PyYAML, so DVC's params diff too) need a dot: 2.0e-05.
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _assign(document: Any, merged: Mapping[str, Any]) -> None:
    for key in [k for k in document if k not in merged]:
        del document[key]
    for key, value in merged.items():
        if isinstance(value, Mapping) and isinstance(document.get(key), Mapping):
            _assign(document[key], value)
        elif document.get(key) != value:
            document[key] = value
