"""Where the evaluate stage writes its metrics, report and plots."""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path("metrics")
EVALUATION_METRICS = METRICS_DIR / "evaluation.json"
EVALUATION_REPORT = METRICS_DIR / "evaluation_report.md"
PLOTS_DIR = METRICS_DIR / "plots" / "evaluation"


def plot_path(domain: str) -> Path:
    """One bar-chart data file per domain: a list of {model, form, perplexity, ...} rows."""
    return PLOTS_DIR / f"{domain}.json"
