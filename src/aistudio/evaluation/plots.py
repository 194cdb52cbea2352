"""The data behind the evaluation charts of `dvc plots show`: one flat table per chart.

Each chart is one metric as grouped bars: x = domain, one bar per form (base, fine-tuned, LoRA,
quantized LoRA), one panel per model. A chart takes the first of its metric names a form reports,
so a metric renamed in evaluation keeps its chart; a new chart is one BarChart here and one
`plots:` entry in dvc.yaml (y: {metrics/plots/evaluation/<column>.json: <column>}).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio.evaluation.metrics import P95_LATENCY, PERPLEXITY, ROUGE_L
from aistudio.evaluation.report import FORM_TITLES, Results
from aistudio.evaluation.results import FORMS, form_metrics
from aistudio.layout import EVALUATION_PLOTS_DIR, evaluation_plot
from aistudio.plots import data as plot_data


@dataclass(frozen=True)
class BarChart:
    column: str  # the data file's stem and its value column, as dvc.yaml names them
    metrics: tuple[str, ...]  # the metric names it draws, first found wins
    subject: str  # what an empty chart's note says is missing

    @property
    def columns(self) -> tuple[str, ...]:
        return (*plot_data.EVALUATION_COLUMNS, self.column)


CHARTS: tuple[BarChart, ...] = (
    BarChart("pass_at_1", ("pass_at_1",), "pass@1 (code domain)"),
    BarChart("rouge_l", ("rouge_l", ROUGE_L), "ROUGE-L (summarization domain)"),
    BarChart("perplexity", (PERPLEXITY,), "perplexity"),
    BarChart("latency_p95_s", ("latency_p95_s", P95_LATENCY), "p95 generation latency"),
)


def _form_order(form: str) -> int:
    return FORMS.index(form) if form in FORMS else len(FORMS)


def _value(metrics: Mapping[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = metrics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def chart_rows(results: Results, chart: BarChart) -> list[dict[str, Any]]:
    """One row per model × domain × form that reports the chart's metric, in FORMS order."""
    rows = []
    for model, domains in results.items():
        for domain, forms in domains.items():
            for form in sorted(forms, key=_form_order):
                value = _value(form_metrics(forms[form]), chart.metrics)
                if value is not None:
                    rows.append(
                        {
                            "model": model,
                            "domain": domain,
                            "form": FORM_TITLES.get(form, form),
                            "form_order": _form_order(form),
                            chart.column: value,
                        }
                    )
    return rows


def write_charts(results: Results, directory: Path = EVALUATION_PLOTS_DIR) -> list[Path]:
    """Every chart's file (layout.evaluation_plot); a metric no form reports gets an empty chart
    with a note."""
    written = []
    for chart in CHARTS:
        note = f"no model and form reported {chart.subject} in this evaluation"
        path = Path(directory) / evaluation_plot(chart.column).name
        written.append(plot_data.write_json(path, chart_rows(results, chart), chart.columns, note))
    return written
