"""The local team stack on 127.0.0.1: PostgreSQL, an S3 endpoint (moto) and `mlflow server` over both.

up      start it (idempotent) and write .team/env with the client settings
down    stop it and delete its state (it is throwaway: the S3 contents live in memory)
status  which parts are running
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.team_stack.stack import DVC_BUCKET, ENV_FILE, MLFLOW_BUCKET, TeamStack

DEFAULT_DIR = Path(os.environ.get("AISTUDIO_TEAM_DIR", layout.TEAM_DIR))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_DIR, help="default: $AISTUDIO_TEAM_DIR or .team"
    )
    args = parser.parse_args()
    stack = TeamStack(args.state_dir)
    if args.command == "up":
        state = stack.up()
        ports = state.ports
        print(f"PostgreSQL  127.0.0.1:{ports.postgres}  (MLflow's backend store, database mlflow)")
        print(
            f"S3 (moto)   http://127.0.0.1:{ports.s3}  buckets {DVC_BUCKET} (DVC), {MLFLOW_BUCKET} (MLflow)"
        )
        print(
            f"MLflow      http://127.0.0.1:{ports.mlflow}  (artifacts proxied to s3://{MLFLOW_BUCKET}/artifacts)"
        )
        print(f"client settings: source {stack.root / ENV_FILE}")
    elif args.command == "down":
        stack.down()
        print(f"team stack stopped; {stack.root} removed")
    else:
        status = stack.status()
        for name, running in status.items():
            print(f"{name:<10} {'running' if running else 'stopped'}")
        return 0 if all(status.values()) else 1
    return 0


if __name__ == "__main__":
    run_cli(main)
