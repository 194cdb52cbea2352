"""The markdown report renders every section."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistudio.config import GatesConfig
from aistudio.evaluation.gates import check_gates, gate_summary
from aistudio.evaluation.report import render_report, write_report
from aistudio.evaluation.results import FORMS, FormResult


def _results() -> dict:
    table: dict = {}
    for model, scale in (("phi2", 1.0), ("codet5p", 2.0)):
        for domain, task in (
            ("code", {"parse_rate": 0.5, "exact_match": 0.0}),
            ("summarization", {"rougeL": 0.3}),
        ):
            table.setdefault(model, {})[domain] = {
                form: FormResult(
                    form,
                    domain,
                    4,
                    {
                        "perplexity": scale * (10 + i),
                        "p95_s": 0.1 * (i + 1),
                        "tokens_per_second": 50.0,
                        **task,
                    },
                )
                for i, form in enumerate(FORMS)
            }
    # One model's results as read back from JSON: the report takes both.
    table["codet5p"] = {
        d: {f: r.to_json() for f, r in forms.items()} for d, forms in table["codet5p"].items()
    }
    return table


def _gates(results: dict) -> dict:
    champion = {"domains": {"code": {"perplexity": 12.5, "parse_rate": 0.75}}}
    return {
        model: check_gates(
            gate_summary(domains, "quantized_lora"),
            GatesConfig(max_perplexity=20.0),
            champion if model == "phi2" else None,
        )
        for model, domains in results.items()
    }


def test_report_has_results_comparison_gates_and_behaviour_sections(tmp_path: Path) -> None:
    results = _results()
    behaviour = {
        "phi2": {
            "code": {
                "invariance": {"invariant_share": 0.5, "rule": "same parse outcome"},
                "minimum_functionality": {"pass_rate": 1.0, "error": None},
            }
        }
    }
    path = write_report(tmp_path / "metrics" / "evaluation_report.md", results, _gates(results), behaviour)
    text = path.read_text()
    for heading in (
        "# Evaluation report",
        "## Results by model, domain and form",
        "### phi2 / code",
        "### codet5p / summarization",
        "## Base vs fine-tuned vs quantized vs champion",
        "## Gates",
        "### codet5p: **failed**",
        "## Behavioural checks",
    ):
        assert heading in text, heading
    assert "| domain | metric | base | fine-tuned | LoRA | quantized LoRA | champion |" in text
    # phi2 code perplexity across the four forms, then the champion's value.
    assert "| code | perplexity | 10 | 11 | 12 | 13 | 12.5 |" in text
    assert "No champion registered yet." in text  # codet5p
    assert "perplexity 26 > 20 for code" in text  # codet5p quantized_lora perplexity = 2 × 13


def test_a_single_gate_report_needs_a_single_model() -> None:
    results = _results()
    gates = _gates(results)
    assert "### phi2: " in render_report({"phi2": results["phi2"]}, gates["phi2"])
    with pytest.raises(ValueError, match="one GateReport for 2 models"):
        render_report(results, gates["phi2"])
