"""DVC stage import_base_models: every `init: pretrained` model of params.yaml from its `source` (a
file a pip package ships, its sha256 checked; a local directory; a hub id) into --out/<model>."""

from __future__ import annotations

import logging

from aistudio import layout
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.modeling.sources import verify_package_sources

STAGE = "import_base_models"


def main() -> int:
    args = stage_args(STAGE, __doc__, data=False, out=layout.PRETRAINED_DIR)
    verify_package_sources(args.params)  # a wrong pin or a missing package: one line, before torch
    configure_logging(STAGE)
    from aistudio.modeling.importing import import_base_models

    imported = import_base_models(args.params, args.out, args.mlflow)
    for name, info in imported.items():
        logging.getLogger(STAGE).info("%s: %s -> %s", name, info["source"], args.out / name)
    return 0


if __name__ == "__main__":
    run_cli(main)
