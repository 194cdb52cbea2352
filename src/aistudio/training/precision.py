"""Pick the training precision the hardware supports; refuse a forced one it does not."""

from __future__ import annotations

from typing import Literal

import torch

from aistudio.errors import UserError

Precision = Literal["fp32", "bf16", "fp16"]

# On a CPU a model below this trains in fp32: bf16 pays off on large matmuls (not measured on small
# ones), and the tiny random-init models keep their fp32 numerics. A SmolLM2-135M fine-tune step
# (batch 4, 256 tokens) takes 3.7-4.5 s in bf16 against 5.2-6.2 s in fp32 on 2 AMX cores.
CPU_BF16_MIN_PARAMS = 50_000_000


def cpu_supports_bf16() -> bool:
    # Native bf16 matmuls need AVX512-BF16 or AMX; elsewhere torch emulates them slowly.
    capability = torch.backends.cpu.get_cpu_capability().lower()
    flags = _cpu_flags()
    return "amx" in capability or "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return ""


def resolve_precision(setting: str, key: str = "training.precision", n_params: int = 0) -> Precision:
    """auto: bf16 on GPUs that have it, else fp16 on GPU; on a CPU, bf16 for a model of at least
    CPU_BF16_MIN_PARAMS parameters where the CPU computes bf16 natively (AMX, AVX512-BF16), else fp32.

    bf16 is autocast: weights, optimizer state and the saved model stay fp32.
    """
    cuda = torch.cuda.is_available()
    if setting == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if n_params >= CPU_BF16_MIN_PARAMS and cpu_supports_bf16() else "fp32"
    if setting == "fp16" and not cuda:
        raise UserError(f"params.yaml: {key} is fp16 but no CUDA GPU is available; use auto or fp32")
    if setting == "bf16" and not (torch.cuda.is_bf16_supported() if cuda else cpu_supports_bf16()):
        raise UserError(f"params.yaml: {key} is bf16 but this machine has no bf16 support; use auto or fp32")
    return setting  # type: ignore[return-value]
