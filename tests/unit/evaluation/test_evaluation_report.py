"""The markdown report renders every section."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistudio.config import GatesConfig
from aistudio.evaluation.gates import PLUMBING, check_gates, gate_summary
from aistudio.evaluation.report import gain_rows, render_report, write_report
from aistudio.evaluation.results import FORMS, FormResult
from aistudio.evaluation.variant_choice import VariantCandidate, choose_variant


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


def test_gains_show_each_form_minus_the_base_with_the_sample_count() -> None:
    results = _results()
    rows = {(r["domain"], r["metric"]): r for r in gain_rows(results["phi2"])}
    code = rows[("code", "pass_at_1")]
    assert code["primary"] and code["base"] is None  # no pass@1 in these results: shown as missing
    perplexity = rows[("code", "perplexity")]
    assert perplexity["samples"] == 4 and perplexity["base"] == 10.0
    assert (perplexity["domain_minus_base"], perplexity["lora_minus_base"]) == (1.0, 2.0)
    assert perplexity["quantized_lora_minus_base"] == 3.0
    rouge = rows[("summarization", "rougeL")]
    assert rouge["primary"] and rouge["lora_minus_base"] == 0.0
    text = render_report(results, _gates(results))
    assert "## Gains over the base" in text
    assert (
        "| domain | metric | samples | base | fine-tuned − base | LoRA − base | quantized LoRA − base |"
        in text
    )
    assert "| code | perplexity | 4 | 10 | +1 | +2 | +3 |" in text


def test_the_served_variant_section_lists_every_candidate_and_the_reason() -> None:
    candidates = [
        VariantCandidate("4bit", 169_000_000, 0.25),
        VariantCandidate("int8_weight_only", 220_000_000, 0.0),
    ]
    choice = choose_variant(candidates, 0.05)
    results = _results()
    text = render_report(results, _gates(results), variants={"phi2": choice.to_json()})
    assert "## Served variant (chosen by the gates)" in text
    assert "### phi2: int8_weight_only" in text
    assert choice.reason in text
    assert "| 4bit | 169 | 0.25 | **FAIL** | perplexity +25.00% > +5.00% |" in text


def test_plumbing_gates_are_labelled_in_the_report() -> None:
    results = {"t5": _results()["phi2"]}
    report = check_gates(gate_summary(results["t5"], "quantized_lora"), GatesConfig(), None, PLUMBING)
    text = render_report(results, {"t5": report})
    assert "— plumbing gates" in text and "not model quality" in text
