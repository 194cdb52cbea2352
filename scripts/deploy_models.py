"""DVC stage deploy: every overlay rendered with the registry's champion, validated, written to --out.

    python scripts/deploy_models.py --k8s k8s --deployment-config configs/deployment_config.yaml \
        --out deploy/rendered

Given a command first (render, validate, apply, status, promote, abort, rollback), it runs that
command of `python -m aistudio.deploy.cli` instead. Exit 2: bad input; exit 1: validation problems.
"""

from __future__ import annotations

import sys

from aistudio.cli import run_cli
from aistudio.deploy import cli


def main() -> int:
    argv = sys.argv[1:]
    return cli.main(argv if argv[:1] and argv[0] in cli.COMMANDS else ["stage", *argv])


if __name__ == "__main__":
    run_cli(main)
