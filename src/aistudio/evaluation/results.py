"""What an evaluation produces, kept free of torch so gates, reports and the registry can read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# base: the base model; domain: the full domain fine-tune; lora: base + the domain's adapter (fp32);
# quantized_lora: quantized base + the same adapter, what production serves.
FORMS: tuple[str, ...] = ("base", "domain", "lora", "quantized_lora")


@dataclass(frozen=True)
class FormResult:
    """Metrics of one form on one domain; `examples` are a few (prompt, reference, prediction) rows.

    `scores` holds, for a metric scored per sample (pass@1, ROUGE-L), each sample's score in record order:
    two forms measured on the same records pair up sample by sample (the gates' noise allowance).
    """

    form: str
    domain: str
    n_samples: int
    metrics: dict[str, float]
    examples: list[dict[str, str]] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FormResult:
        return cls(**data)


def form_metrics(result: FormResult | Mapping[str, Any]) -> Mapping[str, float]:
    """The metrics of a FormResult or of its JSON form (as read back from a metrics file)."""
    return result.metrics if isinstance(result, FormResult) else result["metrics"]


def form_scores(result: FormResult | Mapping[str, Any], metric: str) -> list[float]:
    """Per-sample scores of `metric` (empty when the metric is not scored per sample)."""
    scores = result.scores if isinstance(result, FormResult) else result.get("scores") or {}
    return list(scores.get(metric, []))
