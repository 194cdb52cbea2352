"""The variant names, where each variant lives, and the recipe behind each: no backend needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from aistudio import layout
from aistudio.config import QuantizationConfig, QuantizedVariant
from aistudio.errors import UserError
from aistudio.layout import merged_dir
from aistudio.quantization.quantize import quantize_variant
from aistudio.quantization.recipes import VARIANTS
from aistudio.quantization.variants import REFERENCE, VARIANT_NAMES, variant_dir


def test_variants_live_under_models_quantized_and_fp32_is_the_source_model() -> None:
    assert VARIANT_NAMES == get_args(QuantizedVariant)
    assert variant_dir("phi2", "4bit") == Path("models/quantized/phi2/4bit")
    assert variant_dir("phi2", "dynamic", "code") == Path("models/quantized/phi2/domains/code/dynamic")
    assert variant_dir("phi2", REFERENCE) == layout.base_dir("phi2")
    assert (
        variant_dir("phi2", REFERENCE, "code")
        == merged_dir("phi2", "code")
        == Path("models/quantized/phi2/domains/code/merged")
    )


def test_every_variant_named_in_the_config_has_its_recipe() -> None:
    assert set(VARIANTS) == set(VARIANT_NAMES)
    assert all(VARIANTS[name].name == name and VARIANTS[name].recipes for name in VARIANT_NAMES)


def test_unknown_variant_is_a_user_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"unknown quantized variant '2bit'.*" + re.escape(str([*VARIANT_NAMES, REFERENCE]))
    ):
        variant_dir("phi2", "2bit")
    with pytest.raises(UserError, match="quantization.variants: unknown variant '2bit'"):
        quantize_variant(tmp_path, "2bit", QuantizationConfig(), tmp_path / "out")


def test_variant_names_and_records_import_without_torch() -> None:
    # Evaluation and bundling ask where a variant lives without loading a quantization backend.
    code = "import sys, aistudio.quantization.variants; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
