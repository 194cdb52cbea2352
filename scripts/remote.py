"""Check a DVC remote, then push or pull through it: one clear line instead of DVC's traceback text.

check  can this machine read the remote (credentials, endpoint, bucket)?
push   check it can write there, then `dvc push -r <remote> [targets]`
pull   check it can read there, then `dvc pull -r <remote> [targets]`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.errors import UserError
from aistudio.remotes import check_remote


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["check", "push", "pull"])
    parser.add_argument("targets", nargs="*", help="what to push or pull (default: everything)")
    parser.add_argument("-r", "--remote", help="a remote from .dvc/config (default: core.remote)")
    args = parser.parse_intermixed_args()  # targets may follow -r
    remote = check_remote(Path.cwd(), args.remote, write=args.command == "push")
    if args.command == "check":
        verdict = "reachable, credentials accepted" if remote.is_s3 else "not S3; DVC reads it directly"
        print(f"{remote.describe()}: {verdict}")
        return 0
    done = subprocess.run([sys.executable, "-m", "dvc", args.command, "-r", remote.name, *args.targets])
    if done.returncode:
        raise UserError(
            f"dvc {args.command} -r {remote.name} failed (exit {done.returncode}) after the remote checked "
            f"out; see DVC's message above, and rerun python scripts/remote.py check -r {remote.name}"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
