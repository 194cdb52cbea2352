"""The size vs perplexity chart of metrics/quantization.json (a declared DVC plot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aistudio import layout
from aistudio.plots import data as plot_data
from aistudio.quantization.variants import REFERENCE


def plot_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One point per model × measured variant of the base (fp32 included, at 0 %), from
    metrics/quantization.json; unavailable variants have no point."""
    rows = []
    for model, variants in results.items():
        for variant in [REFERENCE, *(v for v in variants if v != REFERENCE)]:
            entry = variants.get(variant)
            if not isinstance(entry, Mapping) or entry.get("status") != "ok":
                continue  # also skips merged_domains, a nested table per domain
            size, change = entry.get("size_bytes"), entry.get("perplexity_change")
            if size is None or change is None:
                continue
            rows.append(
                {
                    "model": model,
                    "variant": variant,
                    "size_mb": round(size / 1e6, 3),
                    "perplexity_change_pct": round(100 * change, 3),
                }
            )
    return rows


def write_plot(results: Mapping[str, Mapping[str, Any]], path: Path = layout.QUANTIZATION_PLOT) -> Path:
    note = "no variant was measured: every one is unavailable here (reasons in metrics/quantization.json)"
    return plot_data.write_json(path, plot_rows(results), plot_data.QUANTIZATION_COLUMNS, note)
