from __future__ import annotations

import pytest
import torch

from aistudio.errors import UserError
from aistudio.training.precision import CPU_BF16_MIN_PARAMS, cpu_supports_bf16, resolve_precision


def test_auto_picks_what_the_hardware_has() -> None:
    if torch.cuda.is_available():
        assert resolve_precision("auto") == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    else:
        assert resolve_precision("auto") == "fp32"
        with pytest.raises(UserError, match="training.precision is fp16 but no CUDA GPU"):
            resolve_precision("fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rule; a GPU picks by its own support")
def test_auto_on_a_cpu_takes_bf16_only_for_a_large_model_on_native_bf16() -> None:
    assert resolve_precision("auto", n_params=CPU_BF16_MIN_PARAMS - 1) == "fp32"
    large = resolve_precision("auto", n_params=CPU_BF16_MIN_PARAMS)
    assert large == ("bf16" if cpu_supports_bf16() else "fp32")


def test_forced_bf16_is_refused_where_unsupported() -> None:
    supported = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_supports_bf16()
    if supported:
        assert resolve_precision("bf16") == "bf16"
    else:
        with pytest.raises(UserError, match="lora.training.precision is bf16 but this machine has no bf16"):
            resolve_precision("bf16", "lora.training.precision")
