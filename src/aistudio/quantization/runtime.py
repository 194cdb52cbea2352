"""Where a quantized model runs, and the backend log noise its inference would otherwise print."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def device_kwargs() -> dict[str, Any]:
    # bitsandbytes and torchao quantise while loading onto the target device; pin it explicitly.
    return {"device_map": {"": 0}} if torch.cuda.is_available() else {"device_map": "cpu"}


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def quiet_int8_cast_warning() -> Iterator[None]:
    """Silence LLM.int8's per-matmul "inputs will be cast to float16" log line on CPU.

    It fires for every linear layer of every token; the variant's notes say it once instead.
    """
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def describe_error(exc: BaseException) -> str:
    """One line for a backend failure: its type and the start of its message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
