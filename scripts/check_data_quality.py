"""Re-validate processed data (schema, PII re-scan, leaks between splits); non-zero exit on a problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_params
from aistudio.data.check import check_processed

PROBLEMS_EXIT = 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, default=layout.PROCESSED_DIR, help="processed data directory")
    parser.add_argument("--params", type=Path, default=layout.PARAMS_FILE)
    args = parser.parse_args()
    problems = check_processed(args.input, load_params(args.params).data)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{args.input}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return PROBLEMS_EXIT if problems else 0


if __name__ == "__main__":
    run_cli(main)
