"""Write the deterministic sample corpus (four domains, planted defects) that data/raw is built from."""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.data.sample_corpus import write_sample_corpus, write_scaled_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="root folder to write into")
    parser.add_argument("--scale", type=int, default=1, help="multiplies records and planted defects")
    parser.add_argument(
        "--records", type=int, help="about this many records in all (benchmarks); ignores --scale"
    )
    parser.add_argument("--seed", type=int, default=7, help="same seed, byte-identical files")
    args = parser.parse_args()
    if args.scale < 1 or (args.records is not None and args.records < 1):
        parser.error("--scale and --records must be >= 1")

    if args.records is not None:
        write_scaled_corpus(args.out, args.records, args.seed)
        print(f"wrote about {args.records} records under {args.out}")
        return 0
    for path, count in write_sample_corpus(args.out, args.scale, args.seed).items():
        print(f"{count:6d}  {args.out / path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
