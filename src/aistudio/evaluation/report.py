"""The evaluation report (markdown); the rows behind its `dvc plots` charts are in plots.py.

`results` is always model → domain → form → FormResult (or its JSON form). Gate reports are one
per model: pass a mapping model → GateReport, or a single GateReport when there is one model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio.evaluation.gates import PLUMBING, PLUMBING_NOTE, GateReport
from aistudio.evaluation.metrics import P95_LATENCY, PERPLEXITY, TOKENS_PER_SECOND, primary_metric
from aistudio.evaluation.results import FORMS, FormResult, form_metrics
from aistudio.io import atomic_writer

Results = Mapping[str, Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]]]
Variants = Mapping[str, Mapping[str, Any]]  # model → VariantChoice.to_json()


@dataclass(frozen=True)
class Delta:
    """A difference from the base, shown with its sign."""

    value: float


FORM_TITLES: dict[str, str] = {
    "base": "base",
    "domain": "fine-tuned",
    "lora": "LoRA",
    "quantized_lora": "quantized LoRA",
}
# The forms compared with the base in the gains table.
COMPARED_FORMS: tuple[str, ...] = tuple(f for f in FORMS if f != "base")
# Columns first in every per-domain table; the domain's task metrics follow.
_LEADING = (PERPLEXITY, P95_LATENCY, TOKENS_PER_SECOND)


def key_metric(domain: str) -> str:
    """The metric a domain is judged on (metrics.PRIMARY_METRICS)."""
    return primary_metric(domain).name


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Delta):
        return f"{value.value:+.4g}"
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


def _samples(result: FormResult | Mapping[str, Any]) -> int | None:
    return result.n_samples if isinstance(result, FormResult) else result.get("n_samples")


def gain_rows(domains: Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per domain and metric (the primary one, and perplexity): the base value and each form - base."""
    rows = []
    for domain, forms in domains.items():
        if "base" not in forms:
            continue
        base = form_metrics(forms["base"])
        metrics = list(dict.fromkeys((key_metric(domain), PERPLEXITY)))
        for metric in metrics:
            row: dict[str, Any] = {
                "domain": domain,
                "metric": metric,
                "primary": metric == key_metric(domain),
                "samples": _samples(forms["base"]),
                "base": base.get(metric),
            }
            for form in COMPARED_FORMS:
                value = form_metrics(forms[form]).get(metric) if form in forms else None
                known = value is not None and base.get(metric) is not None
                row[f"{form}_minus_base"] = value - base[metric] if known else None
            rows.append(row)
    return rows


def _delta(value: float | None) -> Delta | None:
    return None if value is None else Delta(value)


def _gains_section(results: Results) -> list[str]:
    lines = [
        "## Gains over the base",
        "",
        "Each form minus the base on the same held-out test records, per domain; the primary metric "
        "first (higher is better for pass@1 and ROUGE-L, lower for perplexity).",
        "",
    ]
    for model, domains in results.items():
        rows = gain_rows(domains)
        lines += [f"### {model}", ""]
        lines += _table(
            ["domain", "metric", "samples", "base", *(f"{FORM_TITLES[f]} − base" for f in COMPARED_FORMS)],
            (
                [
                    r["domain"],
                    f"**{r['metric']}**" if r["primary"] else r["metric"],
                    r["samples"],
                    r["base"],
                    *(
                        None if r[f"{f}_minus_base"] is None else Delta(r[f"{f}_minus_base"])
                        for f in COMPARED_FORMS
                    ),
                ]
                for r in rows
            ),
        )
    return lines


def _variants_section(variants: Variants) -> list[str]:
    lines = ["## Served variant (chosen by the gates)", ""]
    for model, choice in variants.items():
        lines += [f"### {model}: {choice['variant']}", "", choice["reason"], ""]
        lines += _table(
            ["variant", "size (MB)", "perplexity cost", "passes", "verdict"],
            (
                [
                    c["variant"],
                    None if c["size_bytes"] is None else c["size_bytes"] / 1e6,
                    c["cost"],
                    c["passed"],
                    c["verdict"],
                ]
                for c in choice["candidates"]
            ),
        )
    return lines


def _gates_section(gates: Mapping[str, GateReport]) -> list[str]:
    lines = ["## Gates", ""]
    if not gates:
        return lines + ["No gates were checked.", ""]
    for model, report in gates.items():
        verdict = "passed" if report.passed else f"**failed** ({len(report.failures)} gate(s))"
        label = " — plumbing gates" if report.gate_set == PLUMBING else ""
        lines += [f"### {model}: {verdict}{label}", ""]
        if report.gate_set == PLUMBING:
            lines += [f"_{PLUMBING_NOTE[0].upper()}{PLUMBING_NOTE[1:]}._", ""]
        lines += _table(
            ["gate", "domain", "metric", "value", "threshold", "result", "reason"],
            ([r.name, r.domain, r.metric, r.value, r.threshold, r.passed, r.reason] for r in report.results),
        )
    return lines


def _behaviour_section(behaviour: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """model → domain → {'invariance': ..., 'minimum_functionality': ...} (behavioural.py reports)."""
    lines = [
        "## Behavioural checks",
        "",
        "On the served form; gated by min_invariance_share and min_functionality_pass_rate.",
        "",
    ]
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
    variants: Variants | None = None,
) -> str:
    gate_map = _gate_map(gates, results)
    lines = ["# Evaluation report", ""]
    if gate_map:
        lines += _table(
            ["model", "gates", "gate set", "served variant"],
            (
                [m, r.passed, r.gate_set, (variants or {}).get(m, {}).get("variant")]
                for m, r in gate_map.items()
            ),
        )
    lines += _gains_section(results)
    if variants:
        lines += _variants_section(variants)
    lines += _gates_section(gate_map)
    lines += _results_section(results)
    lines += _comparison_section(results, gate_map)
    if behaviour:
        lines += _behaviour_section(behaviour)
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    path: Path,
    results: Results,
    gate: GateReport | Mapping[str, GateReport] | None,
    behaviour: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    variants: Variants | None = None,
) -> Path:
    """Write the markdown report (layout.EVALUATION_REPORT in the stage) atomically."""
    with atomic_writer(Path(path)) as out:
        out.write(render_report(results, gate, behaviour, variants))
    return Path(path)
