"""The evaluation report (markdown); the rows behind its `dvc plots` charts are in plots.py.

`results` is always model → domain → form → FormResult (or its JSON form). Gate reports are one
per model: pass a mapping model → GateReport, or a single GateReport when there is one model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aistudio.evaluation.gates import GateReport
from aistudio.evaluation.metrics import (
    P95_LATENCY,
    PARSE_RATE,
    PERPLEXITY,
    ROUGE_L,
    TOKEN_F1,
    TOKENS_PER_SECOND,
)
from aistudio.evaluation.results import FORMS, FormResult, form_metrics
from aistudio.io import atomic_writer

Results = Mapping[str, Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]]]

# The one task metric the comparison table shows per domain; open-ended domains use token F1.
KEY_METRIC: dict[str, str] = {"summarization": ROUGE_L, "code": PARSE_RATE}
FORM_TITLES: dict[str, str] = {
    "base": "base",
    "domain": "fine-tuned",
    "lora": "LoRA",
    "quantized_lora": "quantized LoRA",
}
# Columns first in every per-domain table; the domain's task metrics follow.
_LEADING = (PERPLEXITY, P95_LATENCY, TOKENS_PER_SECOND)


def key_metric(domain: str) -> str:
    return KEY_METRIC.get(domain, TOKEN_F1)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "pass" if value else "**FAIL**"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _ordered_forms(forms: Mapping[str, Any]) -> list[str]:
    return [f for f in FORMS if f in forms] + sorted(f for f in forms if f not in FORMS)


def _gate_map(
    gates: GateReport | Mapping[str, GateReport] | None, models: Iterable[str]
) -> dict[str, GateReport]:
    if gates is None:
        return {}
    if isinstance(gates, GateReport):
        names = list(models)
        if len(names) != 1:
            raise ValueError(
                f"one GateReport for {len(names)} models {names}: pass a mapping model → GateReport"
            )
        return {names[0]: gates}
    return dict(gates)


def _results_section(results: Results) -> list[str]:
    lines = ["## Results by model, domain and form", ""]
    for model, domains in results.items():
        for domain, forms in domains.items():
            metrics = {f: form_metrics(forms[f]) for f in _ordered_forms(forms)}
            task = sorted({k for m in metrics.values() for k in m} - set(_LEADING))
            columns = [c for c in _LEADING if any(c in m for m in metrics.values())] + task
            samples = {
                f: (r.n_samples if isinstance(r, FormResult) else r.get("n_samples"))
                for f, r in forms.items()
            }
            lines += [f"### {model} / {domain}", ""]
            lines += _table(
                ["form", "samples", *columns],
                (
                    [FORM_TITLES.get(f, f), samples[f], *(m.get(c) for c in columns)]
                    for f, m in metrics.items()
                ),
            )
    return lines


def _comparison_section(results: Results, gates: Mapping[str, GateReport]) -> list[str]:
    lines = [
        "## Base vs fine-tuned vs quantized vs champion",
        "",
        "Champion values are the registered champion's summary (serving form); — where absent.",
        "",
    ]
    for model, domains in results.items():
        champion = gates[model].champion if model in gates else None
        champion_domains = (champion or {}).get("domains") or {}
        rows = []
        for domain, forms in domains.items():
            for metric in (PERPLEXITY, key_metric(domain), P95_LATENCY):
                cells = [form_metrics(forms[f]).get(metric) if f in forms else None for f in FORMS]
                rows.append([domain, metric, *cells, (champion_domains.get(domain) or {}).get(metric)])
        lines += [f"### {model}", ""]
        if champion is None:
            lines += ["No champion registered yet.", ""]
        lines += _table(["domain", "metric", *(FORM_TITLES[f] for f in FORMS), "champion"], rows)
    return lines


def _gates_section(gates: Mapping[str, GateReport]) -> list[str]:
    lines = ["## Gates", ""]
    if not gates:
        return lines + ["No gates were checked.", ""]
    for model, report in gates.items():
        verdict = "passed" if report.passed else f"**failed** ({len(report.failures)} gate(s))"
        lines += [f"### {model}: {verdict}", ""]
        lines += _table(
            ["gate", "domain", "metric", "value", "threshold", "result", "reason"],
            ([r.name, r.domain, r.metric, r.value, r.threshold, r.passed, r.reason] for r in report.results),
        )
    return lines


def _behaviour_section(behaviour: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """model → domain → {'invariance': ..., 'minimum_functionality': ...} (behavioural.py reports)."""
    lines = ["## Behavioural checks", "", "Reported, not gated: small models are expected to fail some.", ""]
    rows = []
    for model, domains in behaviour.items():
        for domain, checks in domains.items():
            invariance = checks.get("invariance") or {}
            functionality = checks.get("minimum_functionality") or {}
            rows.append(
                [
                    model,
                    domain,
                    invariance.get("invariant_share"),
                    invariance.get("rule"),
                    functionality.get("pass_rate"),
                    functionality.get("error"),
                ]
            )
    return lines + _table(
        ["model", "domain", "invariance share", "invariance rule", "min. functionality pass rate", "error"],
        rows,
    )


def render_report(
    results: Results,
    gates: GateReport | Mapping[str, GateReport] | None,
    behaviour: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> str:
    gate_map = _gate_map(gates, results)
    lines = ["# Evaluation report", ""]
    if gate_map:
        lines += _table(["model", "gates"], ([m, r.passed] for m, r in gate_map.items()))
    lines += _results_section(results)
    lines += _comparison_section(results, gate_map)
    lines += _gates_section(gate_map)
    if behaviour:
        lines += _behaviour_section(behaviour)
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    path: Path,
    results: Results,
    gate: GateReport | Mapping[str, GateReport] | None,
    behaviour: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> Path:
    """Write the markdown report (layout.EVALUATION_REPORT in the stage) atomically."""
    with atomic_writer(Path(path)) as out:
        out.write(render_report(results, gate, behaviour))
    return Path(path)
