"""Build the offline `dvc plots` page (.dvc/plots/page.html) from the Vega scripts in vendor/vega/.

`make setup` runs this; `dvc plots show` and `dvc plots diff` then render with no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.plots.page import write_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    args = parser.parse_args()
    print(f"plots page: {write_page(args.root)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
