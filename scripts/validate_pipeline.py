"""Check dvc.yaml against params.yaml and the repository; exit 1 listing every problem."""

from __future__ import annotations

import sys
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.pipeline_check import check_pipeline


def main() -> int:
    problems = check_pipeline(Path.cwd())
    for problem in problems:
        print(problem, file=sys.stderr)
    print("pipeline: OK" if not problems else f"pipeline: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    run_cli(main)
