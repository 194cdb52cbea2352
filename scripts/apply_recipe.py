"""Apply a training recipe (configs/training_config.yaml) to params.yaml, or check every recipe.

python scripts/apply_recipe.py --recipe gpu      # rewrites params.yaml; then `dvc repro`
python scripts/apply_recipe.py --check           # each recipe merged with params.yaml validates
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import read_yaml
from aistudio.recipes import RECIPES_FILE, check_recipes, load_recipes, merged_params, write_params


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--recipe", help="the recipe to apply (a key of recipes:)")
    action.add_argument("--check", action="store_true", help="validate every recipe; change nothing")
    parser.add_argument("--params", type=Path, default=layout.PARAMS_FILE)
    parser.add_argument("--config", type=Path, default=RECIPES_FILE)
    args = parser.parse_args()
    if args.check:
        names = check_recipes(args.params, args.config)
        print(f"{args.config}: {len(names)} recipe(s) valid against {args.params}: {', '.join(names)}")
        return 0
    recipes = load_recipes(args.config)
    merged = merged_params(read_yaml(args.params), recipes, args.recipe, str(args.config))
    write_params(args.params, merged)
    recipe = recipes.recipes[args.recipe]
    print(f"{args.params}: recipe '{args.recipe}' applied ({recipe.description})")
    if recipe.accelerate_config:
        print(f"multi-process: accelerate launch --config_file {recipe.accelerate_config} scripts/<stage>.py")
    print("next: dvc repro   (git checkout params.yaml returns to the default)")
    return 0


if __name__ == "__main__":
    run_cli(main)
