"""Inspect and move the model registry: list, show, promote, rollback, download a verified bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", help="MLflow tracking URI (default: from --mlflow-config)")
    common.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE)
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="registered models with their versions and aliases")
    show = sub.add_parser("show", parents=[common], help="one version: source, run, aliases, lineage tags")
    show.add_argument("name")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--alias", help="e.g. champion, challenger, previous-champion (default: champion)")
    promote = sub.add_parser("promote", parents=[common], help="make a version champion")
    promote.add_argument("name")
    promote.add_argument("--version", type=int, required=True)
    rollback = sub.add_parser("rollback", parents=[common], help="champion ← previous-champion")
    rollback.add_argument("name")
    download = sub.add_parser("download", parents=[common], help="download and verify a bundle")
    download.add_argument("model_uri", help="models:/<name>@<alias> or models:/<name>/<version>")
    download.add_argument("--dst", type=Path, required=True, help="a new or empty directory")
    return parser


def main() -> int:
    args = _parser().parse_args()
    tracking_uri = args.tracking_uri or load_mlflow_config(args.mlflow_config).tracking_uri
    from aistudio.registry import ModelRegistry  # after argument errors: mlflow takes seconds to import

    registry = ModelRegistry(tracking_uri)
    if args.command == "list":
        for model in registry.list_models():
            aliases = " ".join(f"{a}=v{v}" for a, v in model.aliases.items()) or "no aliases"
            print(f"{model.name}  versions: {', '.join(map(str, model.versions)) or 'none'}  {aliases}")
    elif args.command == "show":
        which = args.version if args.version is not None else args.alias or "champion"
        info = registry.show(args.name, which)
        print(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    elif args.command == "promote":
        registry.promote(args.name, args.version)
        print(f"{args.name}: {' '.join(f'{a}=v{v}' for a, v in registry.aliases(args.name).items())}")
    elif args.command == "rollback":
        champion = registry.rollback(args.name)
        print(f"{args.name}: rolled back, champion=v{champion}")
    elif args.command == "download":
        print(registry.download(args.model_uri, args.dst))
    return 0


if __name__ == "__main__":
    run_cli(main)
