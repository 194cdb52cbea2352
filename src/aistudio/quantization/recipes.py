"""How each variant is built: the from_pretrained quantization_config that produces it, and the
backend whose import decides whether it is possible at all. One entry per config.QuantizedVariant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from aistudio.config import QuantizationConfig, QuantizedVariant

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Recipe:
    """One way to produce a variant: a from_pretrained quantization_config and what it is called."""

    method: str
    quantization_config: Callable[[QuantizationConfig], Any]


def _bnb_4bit(cfg: QuantizationConfig) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=_DTYPES[cfg.compute_dtype],
    )


def _bnb_8bit(cfg: QuantizationConfig) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=True)


def _torchao(config_name: str) -> Callable[[QuantizationConfig], Any]:
    def build(cfg: QuantizationConfig) -> Any:
        import torchao.quantization as ao
        from transformers import TorchAoConfig

        # set_inductor_config=False: we do not torch.compile, so leave the global inductor settings alone.
        return TorchAoConfig(getattr(ao, config_name)(set_inductor_config=False))

    return build


@dataclass(frozen=True)
class VariantSpec:
    name: str
    backend: str  # the package whose import decides whether the variant is possible at all
    recipes: tuple[Recipe, ...]  # tried in order; the first that round-trips is used
    cpu_note: str = ""  # what a reader of the metrics should know when it ran on CPU
    cpu_width_multiple: int | None = None  # hidden sizes the CPU kernels can tile


VARIANTS: dict[QuantizedVariant, VariantSpec] = {
    "4bit": VariantSpec(
        "4bit", "bitsandbytes", (Recipe("bitsandbytes nf4 (4-bit)", _bnb_4bit),), cpu_width_multiple=64
    ),
    "8bit": VariantSpec(
        "8bit",
        "bitsandbytes",
        (Recipe("bitsandbytes LLM.int8 (8-bit)", _bnb_8bit),),
        cpu_note="LLM.int8 on CPU casts activations to float16 for every int8 matmul",
    ),
    # torchao >= 0.14 stores both as Int8Tensor, which its safetensors support flattens. Two
    # variants, not a fallback: their speed and quality differ, and the gates choose between them.
    "dynamic": VariantSpec(
        "dynamic",
        "torchao",
        (
            Recipe(
                "torchao Int8DynamicActivationInt8WeightConfig",
                _torchao("Int8DynamicActivationInt8WeightConfig"),
            ),
        ),
    ),
    "int8_weight_only": VariantSpec(
        "int8_weight_only",
        "torchao",
        (Recipe("torchao Int8WeightOnlyConfig", _torchao("Int8WeightOnlyConfig")),),
    ),
}


def backend_version(backend: str) -> tuple[str | None, str]:
    """(version, '') when `backend` imports, else (None, why not)."""
    try:
        module = __import__(backend)
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything from ImportError to OSError
        return None, f"{backend} does not import: {type(exc).__name__}: {exc}"
    return str(getattr(module, "__version__", "unknown")), ""
