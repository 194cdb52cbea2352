"""Which variant production serves: the smallest whose quality cost passes the gate.

Each candidate (evaluation.serving_variants) is measured as it would be served — its base with
the domain adapters — and its *cost* is the worst domain's perplexity increase over fp32 + the
same adapters. The rule:

1. a candidate that is unavailable, cannot carry LoRA adapters, or costs more than
   gates.max_quantized_perplexity_increase is out, with its reason;
2. of the rest, the smallest on disk wins; candidates within `size_tolerance` of that size count
   as equally small (bitsandbytes int8 and torchao int8 differ by 0.1%), and among those the
   lowest cost wins, then the order of evaluation.serving_variants;
3. when none passes, the cheapest-cost candidate is reported as chosen and the quantization gate
   fails with it: the candidate is held, not crashed (fp32, always among the defaults, costs 0).

Pure functions over measurements, so the rule is tested without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Sizes within 5% of the smallest passing variant are "as small"; then quality decides.
SIZE_TOLERANCE = 0.05


@dataclass(frozen=True)
class VariantCandidate:
    """One variant as measured for serving; `cost` is None when it could not be measured."""

    variant: str
    size_bytes: int | None
    cost: float | None  # worst domain's perplexity increase over fp32 + LoRA
    reason: str = ""  # why it could not be measured (unavailable, no LoRA on it, ...)
    per_domain: dict[str, float] | None = None

    def passes(self, max_increase: float) -> bool:
        return self.cost is not None and self.size_bytes is not None and self.cost <= max_increase

    def verdict(self, max_increase: float) -> str:
        if self.cost is None or self.size_bytes is None:
            return self.reason or "not measured"
        op = "<=" if self.passes(max_increase) else ">"
        return f"perplexity {self.cost:+.2%} {op} +{max_increase:.2%}"


@dataclass(frozen=True)
class VariantChoice:
    variant: str
    passed: bool
    reason: str
    candidates: tuple[VariantCandidate, ...]
    max_increase: float

    @property
    def chosen(self) -> VariantCandidate:
        return next(c for c in self.candidates if c.variant == self.variant)

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "passed": self.passed,
            "reason": self.reason,
            "max_quantized_perplexity_increase": self.max_increase,
            "candidates": [
                {**asdict(c), "passed": c.passes(self.max_increase), "verdict": c.verdict(self.max_increase)}
                for c in self.candidates
            ],
        }

    def short(self) -> dict[str, Any]:
        """What the bundle manifest and the registry tag keep: the variant and why."""
        return {"variant": self.variant, "passed": self.passed, "reason": self.reason}


def _mb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.0f} MB"


def choose_variant(
    candidates: Sequence[VariantCandidate], max_increase: float, size_tolerance: float = SIZE_TOLERANCE
) -> VariantChoice:
    """Apply the rule of this module's docstring; `candidates` in evaluation.serving_variants order."""
    if not candidates:
        raise ValueError("no serving variant candidates: evaluation.serving_variants is empty")
    order = {c.variant: i for i, c in enumerate(candidates)}
    passing = [c for c in candidates if c.passes(max_increase)]
    rejected = [
        f"{c.variant} ({_mb(c.size_bytes)}): {c.verdict(max_increase)}"
        for c in sorted(candidates, key=lambda c: (c.size_bytes or 0, order[c.variant]))
        if not c.passes(max_increase)
    ]
    if not passing:
        measured = [c for c in candidates if c.cost is not None and c.size_bytes is not None]
        pool = measured or list(candidates)
        fallback = min(pool, key=lambda c: (c.cost if c.cost is not None else float("inf"), order[c.variant]))
        reason = f"no variant's quality cost passes; {fallback.variant} costs least. Rejected: "
        reason += "; ".join(rejected)
        return VariantChoice(fallback.variant, False, reason, tuple(candidates), max_increase)
    sizes = {c.variant: int(c.size_bytes or 0) for c in passing}  # passes() implies a size
    smallest = min(sizes.values())
    as_small = [c for c in passing if sizes[c.variant] <= smallest * (1 + size_tolerance)]
    chosen = min(as_small, key=lambda c: (c.cost, order[c.variant]))
    reason = (
        f"smallest variant whose quality cost passes: {chosen.variant} "
        f"({_mb(chosen.size_bytes)}, {chosen.verdict(max_increase)})"
    )
    ties = [c.variant for c in as_small if c is not chosen]
    if ties:
        reason += f"; as small within {size_tolerance:.0%}, but costlier: {', '.join(ties)}"
    if rejected:
        reason += f". Rejected: {'; '.join(rejected)}"
    return VariantChoice(chosen.variant, True, reason, tuple(candidates), max_increase)
