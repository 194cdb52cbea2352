"""Evaluation charts: one flat table per metric, rows per model × domain × form, notes when empty."""

from __future__ import annotations

import json
from pathlib import Path

from aistudio.evaluation.plots import CHARTS, BarChart, chart_rows, write_charts
from aistudio.evaluation.results import FORMS, FormResult
from aistudio.plots.data import NOTE


def _results() -> dict:
    results: dict = {}
    for model in ("smollm2", "t5_small"):
        for domain, task in (("code", {"pass_at_1": 0.25}), ("summarization", {"rougeL": 0.3})):
            results.setdefault(model, {})[domain] = {
                # Reversed on purpose: rows follow FORMS order, not the order forms were evaluated in.
                form: FormResult(form, domain, 4, {"perplexity": 10.0 + i, "p95_s": 0.1, **task})
                for i, form in reversed(list(enumerate(FORMS)))
            }
    results["t5_small"] = {  # as read back from metrics/evaluation.json
        d: {f: r.to_json() for f, r in forms.items()} for d, forms in results["t5_small"].items()
    }
    return results


def _chart(column: str) -> BarChart:
    return next(c for c in CHARTS if c.column == column)


def test_a_chart_has_one_row_per_model_domain_and_form_in_forms_order() -> None:
    rows = chart_rows(_results(), _chart("perplexity"))
    assert len(rows) == 2 * 2 * len(FORMS)
    assert [r["form_order"] for r in rows[:4]] == [0, 1, 2, 3]
    assert rows[0] == {
        "model": "smollm2",
        "domain": "code",
        "form": "base",
        "form_order": 0,
        "perplexity": 10.0,
    }
    assert [r["form"] for r in rows[:4]] == ["base", "fine-tuned", "LoRA", "quantized LoRA"]


def test_a_chart_draws_only_the_domains_that_report_its_metric() -> None:
    rows = chart_rows(_results(), _chart("pass_at_1"))
    assert {r["domain"] for r in rows} == {"code"} and len(rows) == 2 * len(FORMS)


def test_a_renamed_metric_keeps_its_chart() -> None:
    # evaluation reports rougeL today; the chart's column stays rouge_l whichever name arrives.
    rows = chart_rows(_results(), _chart("rouge_l"))
    assert {r["domain"] for r in rows} == {"summarization"}
    assert all(r["rouge_l"] == 0.3 for r in rows)


def test_every_chart_file_has_uniform_rows_and_a_metric_nobody_reports_leaves_a_note(tmp_path: Path) -> None:
    results = _results()
    for forms in results["smollm2"].values():  # no p95 latency anywhere
        for result in forms.values():
            result.metrics.pop("p95_s")
    for forms in results["t5_small"].values():
        for result in forms.values():
            result["metrics"].pop("p95_s")
    written = write_charts(results, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{c.column}.json" for c in CHARTS)
    for chart in CHARTS:
        rows = json.loads((tmp_path / f"{chart.column}.json").read_text())
        assert rows and all(list(r) == list(chart.columns) for r in rows), chart
    latency = json.loads((tmp_path / "latency_p95_s.json").read_text())
    assert len(latency) == 1 and "p95 generation latency" in latency[0][NOTE]
    assert latency[0]["latency_p95_s"] == ""
