"""Near-duplicate detection on the planted benchmark: precision and recall per edit kind.

    python -m bench.near_duplicates   # writes metrics/bench/near_duplicates.json

Runs prepare_data's own steps (PII scrub, content key, MinHash, LSH buckets, confirmation) with
params.yaml's dedup section over aistudio.data.sample_corpus.near_copies, for three seeds, and
reports every found pair that is not a planted copy as a false positive.
"""

from __future__ import annotations

import statistics

import numpy as np

from aistudio.config import load_params
from aistudio.data import dedup, fingerprint
from aistudio.data.pii import PiiScrubber
from aistudio.data.sample_corpus.near_copies import EDIT_KINDS, near_copy_benchmark
from aistudio.environment import apply_offline_defaults
from aistudio.io import write_json
from aistudio.layout import BENCH_DIR

OUTPUT = BENCH_DIR / "near_duplicates.json"
GOALS = {"recall": 0.95, "precision": 0.98}
SEEDS = (13, 21, 34)


def measure(seed: int, cfg) -> dict:
    benchmark = near_copy_benchmark(seed)
    scrubber = PiiScrubber(cfg.pii.types)
    keys = [fingerprint.content_key(scrubber.scrub(r.content())[0]) for r in benchmark.records]
    signatures = fingerprint.minhash_signatures(
        fingerprint.char_ngrams(keys, cfg.dedup.char_ngram), cfg.dedup.num_perm
    )
    bands = fingerprint.banding_for(cfg.dedup.threshold, cfg.dedup.num_perm).keys(signatures)
    candidates = dedup.band_candidates(bands, np.arange(len(keys)))
    ids = [r.id for r in benchmark.records]
    found = {
        frozenset((ids[p.first], ids[p.second]))
        for p in dedup.confirmed_pairs(candidates, signatures, cfg.dedup.threshold)
    }
    planted = {frozenset(k): kind for k, kind in benchmark.planted.items()}
    hits = found & set(planted)
    return {
        "records": len(ids),
        "planted": len(planted),
        "found": len(found),
        "recall": len(hits) / len(planted),
        "precision": len(hits) / max(1, len(found)),
        "recall_by_edit": {
            kind: sum(1 for k in hits if planted[k] == kind) / sum(1 for v in planted.values() if v == kind)
            for kind in EDIT_KINDS
        },
    }


def main() -> None:
    apply_offline_defaults()
    cfg = load_params().data
    runs = {str(seed): measure(seed, cfg) for seed in SEEDS}
    recall = statistics.median(r["recall"] for r in runs.values())
    precision = statistics.median(r["precision"] for r in runs.values())
    write_json(
        OUTPUT,
        {
            "summary": {
                "recall": round(recall, 4),
                "precision": round(precision, 4),
                "goal": GOALS,
                "meets_goal": recall >= GOALS["recall"] and precision >= GOALS["precision"],
            },
            "dedup": cfg.dedup.model_dump(),
            "runs": runs,
        },
    )
    print(f"near duplicates: recall {recall:.3f}, precision {precision:.3f} (median of seeds {SEEDS})")


if __name__ == "__main__":
    main()
