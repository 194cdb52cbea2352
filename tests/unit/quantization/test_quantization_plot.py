"""The size vs perplexity chart: a point per measured variant, fp32 first, a note when none was."""

from __future__ import annotations

import json
from pathlib import Path

from aistudio.quantization.plot import plot_rows, write_plot
from aistudio.quantization.variants import REFERENCE


def test_the_size_vs_perplexity_chart_has_a_point_per_measured_variant_and_fp32_first(tmp_path: Path) -> None:
    results = {
        "phi2": {
            "4bit": {"status": "ok", "size_bytes": 2_000_000, "perplexity_change": 0.031},
            REFERENCE: {"status": "ok", "size_bytes": 8_000_000, "perplexity_change": 0.0},
            "8bit": {"status": "unavailable", "reason": "no kernel"},
            "merged_domains": {"code": {REFERENCE: {"status": "ok"}}},
        }
    }
    assert plot_rows(results) == [
        {"model": "phi2", "variant": REFERENCE, "size_mb": 8.0, "perplexity_change_pct": 0.0},
        {"model": "phi2", "variant": "4bit", "size_mb": 2.0, "perplexity_change_pct": 3.1},
    ]
    unavailable = {"phi2": {"8bit": {"status": "unavailable", "reason": "no kernel"}}}
    (row,) = json.loads(write_plot(unavailable, tmp_path / "q.json").read_text())
    assert row["size_mb"] == "" and "unavailable" in row["note"]
