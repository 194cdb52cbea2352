"""The variant names and where each variant lives: no torch, so evaluation and bundling can ask
without loading a backend.

The names themselves are defined once, as config.QuantizedVariant; fp32 (config.FP32) is the
unquantized reference every variant is measured against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aistudio import layout
from aistudio.config import FP32, VARIANTS
from aistudio.errors import UserError
from aistudio.layout import merged_dir

VARIANT_NAMES: tuple[str, ...] = VARIANTS
# The unquantized model every variant is compared with; its directory is the source model's.
REFERENCE = FP32
VARIANT_FILE = "variant.json"

Status = Literal["ok", "unavailable"]


def variant_dir(
    model: str, variant: str, domain: str | None = None, root: Path = layout.QUANTIZED_DIR
) -> Path:
    """layout.quantized_dir of a variant under `root`; the fp32 reference is the source model's
    own directory (the base, or the merged domain model)."""
    if variant == REFERENCE:
        return merged_dir(model, domain, root) if domain else layout.base_dir(model)
    if variant not in VARIANT_NAMES:
        raise UserError(
            f"unknown quantized variant '{variant}': expected one of {[*VARIANT_NAMES, REFERENCE]}"
        )
    return layout.quantized_dir(model, variant, domain, root)


@dataclass(frozen=True)
class VariantOutcome:
    """What quantize_variant produced: an `ok` directory, or `unavailable` and the reason why."""

    variant: str
    status: Status
    directory: Path
    method: str = ""
    backend: str = ""
    reason: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "variant": self.variant,
            "status": self.status,
            "directory": str(self.directory),
        }
        if self.method:
            data["method"] = self.method
        if self.backend:
            data["backend"] = self.backend
        if self.reason:
            data["reason"] = self.reason
        if self.notes:
            data["notes"] = list(self.notes)
        return data


def read_variant_info(directory: Path) -> dict[str, Any] | None:
    """The recorded variant.json of a quantized directory; None for an unquantized model directory."""
    path = directory / VARIANT_FILE
    return json.loads(path.read_text()) if path.exists() else None
