"""prepare_data throughput (records/s) vs a baseline that only reads and parses the same inputs.

    python -m bench.prepare_data [--records 100000]   # writes metrics/bench/prepare_data.json

Both run in one process over one generated corpus (the sample corpus's layout, scaled), with the
project's params.yaml data section; each is timed over the same files after a warm-up read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aistudio.config import load_params
from aistudio.data.ingest import read_source_file
from aistudio.data.prepare import collect_source_files, prepare_records
from aistudio.data.sample_corpus import write_scaled_corpus
from aistudio.environment import apply_offline_defaults
from aistudio.io import write_json
from aistudio.layout import BENCH_DIR, PARAMS_FILE

OUTPUT = BENCH_DIR / "prepare_data.json"
GOAL_RATIO = 0.3


def parse_only(cfg, root: Path) -> int:
    """The baseline: read and parse every source into records, nothing else."""
    return sum(1 for src in collect_source_files(cfg, root) for _ in read_source_file(src))


def main() -> None:
    apply_offline_defaults()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    params = load_params(PARAMS_FILE)
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        root = Path(tmp)
        write_scaled_corpus(root / "data" / "raw", args.records)
        parse_only(params.data, root)  # warm the page cache for both arms alike
        start = time.perf_counter()
        n_parsed = parse_only(params.data, root)
        baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        result = prepare_records(params.data, root, params.seed, progress=False)
        ours_s = time.perf_counter() - start
    report = result.quality_report()
    baseline_rps, ours_rps = n_parsed / baseline_s, report["input_records"] / ours_s
    ratio = ours_rps / baseline_rps
    write_json(
        OUTPUT,
        {
            "summary": {"ratio": round(ratio, 4), "goal": GOAL_RATIO, "meets_goal": ratio >= GOAL_RATIO},
            "records": n_parsed,
            "baseline_parse_only": {
                "seconds": round(baseline_s, 3),
                "records_per_second": round(baseline_rps, 1),
            },
            "prepare_data": {
                "seconds": round(ours_s, 3),
                "records_per_second": round(ours_rps, 1),
                "kept": report["kept_records"],
                "rejected": report["rejected_records"],
            },
        },
    )
    print(f"parse-only {baseline_rps:,.0f} rec/s, prepare_data {ours_rps:,.0f} rec/s, ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
