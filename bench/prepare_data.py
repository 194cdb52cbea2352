"""prepare_data throughput (records/s) vs a baseline that only reads and parses the same inputs.

    python -m bench.prepare_data [--records 100000] [--rounds 3]   # writes metrics/bench/prepare_data.json

Both arms run over one generated corpus (the sample corpus's layout, scaled) with the project's
params.yaml data section, in interleaved rounds after a warm-up read; the figures are medians.
prepare_data uses data.workers processes (default: one per core); the baseline is one process,
as a reader would write it. Records/s per core divides ours by the workers it used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from aistudio.config import load_params
from aistudio.data.engines import LocalEngine, default_workers
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    params = load_params(PARAMS_FILE)
    workers = params.data.workers or default_workers()
    baseline_s: list[float] = []
    ours_s: list[float] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        root = Path(tmp)
        write_scaled_corpus(root / "data" / "raw", args.records)
        n_parsed = parse_only(params.data, root)  # warm the page cache for both arms alike
        for _ in range(args.rounds):
            start = time.perf_counter()
            parse_only(params.data, root)
            baseline_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = prepare_records(
                params.data, root, params.seed, progress=False, engine=LocalEngine(workers)
            )
            ours_s.append(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
    report = result.quality_report()
    baseline_rps = n_parsed / statistics.median(baseline_s)
    ours_rps = report["input_records"] / statistics.median(ours_s)
    ratio = ours_rps / baseline_rps
    write_json(
        OUTPUT,
        {
            "summary": {"ratio": round(ratio, 4), "goal": GOAL_RATIO, "meets_goal": ratio >= GOAL_RATIO},
            "records": n_parsed,
            "rounds": args.rounds,
            "workers": workers,
            "cpu_cores": os.cpu_count(),
            "load_average_1m": [round(x, 2) for x in loads],
            "baseline_parse_only": {
                "seconds": [round(s, 3) for s in baseline_s],
                "records_per_second": round(baseline_rps, 1),
            },
            "prepare_data": {
                "seconds": [round(s, 3) for s in ours_s],
                "records_per_second": round(ours_rps, 1),
                "records_per_second_per_worker": round(ours_rps / workers, 1),
                "kept": report["kept_records"],
                "rejected": report["rejected_records"],
            },
        },
    )
    print(
        f"parse-only {baseline_rps:,.0f} rec/s, prepare_data {ours_rps:,.0f} rec/s on {workers} workers "
        f"({ours_rps / workers:,.0f} per worker), ratio {ratio:.3f}, load {loads}"
    )


if __name__ == "__main__":
    main()
