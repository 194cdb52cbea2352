"""Accepted and corrected answers of the feedback store → a new raw source for prepare_data.

    python scripts/collect_feedback.py                            # logs/feedback → data/raw/feedback
    python scripts/collect_feedback.py --store /mnt/feedback --out data/raw/feedback

Writes data/raw/feedback/feedback-<UTC time>.jsonl (instruction/output/domain records; a
correction replaces the served answer), which params.yaml's data.sources reads; pairs collected
before are skipped. Exit 2 with one line when the store is missing or has nothing new to collect
(empty, all rejected, or already collected): then no file is written. Snapshot and retrain with
`python scripts/monitor_models.py --retrain`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_params
from aistudio.feedback.collect import collect_feedback


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", type=Path, default=layout.FEEDBACK_STORE_DIR, help="feedback store directory"
    )
    parser.add_argument(
        "--out", type=Path, default=layout.FEEDBACK_RAW_DIR, help="where the new raw file goes"
    )
    parser.add_argument(
        "--params", type=Path, default=layout.PARAMS_FILE, help="data.domains: which adapters count"
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
    domains = load_params(args.params).data.domains
    path, collection = collect_feedback(args.store, args.out, domains)
    counts = ", ".join(f"{k}={v}" for k, v in sorted(collection.counts.items()) if v)
    print(f"wrote {len(collection.records)} pair(s) to {path} ({counts})")
    return 0


if __name__ == "__main__":
    run_cli(main)
