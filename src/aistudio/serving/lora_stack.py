"""Mixed-adapter steps in one pass per LoRA module: every resident adapter's A and B stacked.

PEFT's own mixed batch (`adapter_names`) loops, in every LoRA module, over the adapters present:
gather their rows, two small matmuls, scatter back — for SmolLM2 with 7 targets x 30 layers and
four adapters, some 5,000 small ops per decode step, which cost more than the base model's own
matmuls on CPU. Here each module keeps A_all = [A_1; ...; A_n] and B_all = [B_1 ... B_n], and a
mixed step adds, to the base layer's output,

    (x @ A_all^T * M) @ B_all^T * s

where M zeroes every column that is not the row's own adapter's (a base row has none) and s is
the row's adapter scaling: three ops per module whatever the number of adapters (the punica /
S-LoRA idea, done with dense matmuls, which is what pays on CPU). PEFT still loads, owns and
serves single-adapter steps; during a mixed step its adapter layers are switched off and this
module's forward hooks add the stacked LoRA term instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class _ModuleStack:
    a: torch.Tensor  # [sum r, in]
    b: torch.Tensor  # [out, sum r]
    layout: tuple[tuple[str, int], ...]  # (adapter, r) per column segment, in column order
    scaling: dict[str, float]
    key: tuple[Any, ...]  # modules with equal keys share one per-step mask


def _lora_modules(model: nn.Module) -> list[nn.Module]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _stackable(module: nn.Module, names: Sequence[str]) -> bool:
    """Plain LoRA on a Linear: DoRA and the other variants, and LoRA on embeddings or convs, are
    left to PEFT's own mixed batch."""
    return isinstance(module.base_layer, nn.Linear) and not any(n in module.lora_variant for n in names)


class LoraStack:
    """Stacked LoRA weights of a PeftModel, applied per row while `route(...)` is active."""

    def __init__(self) -> None:
        self._stacks: dict[int, _ModuleStack] = {}
        self._hooks: list[Any] = []
        self._masks: dict[tuple[Any, ...], torch.Tensor] = {}
        self._scales: dict[tuple[Any, ...], torch.Tensor] = {}
        self._rows: list[str | None] | None = None

    def rebuild(self, peft_model: Any, adapters: Sequence[str]) -> bool:
        """(Re)stack `adapters`' weights (call after every load or unload); False when some
        adapter cannot be stacked and mixed steps must use PEFT's own path."""
        for handle in self._hooks:
            handle.remove()
        self._hooks, self._stacks = [], {}
        if peft_model is None:
            return True
        modules = [(m, [n for n in adapters if n in m.lora_A]) for m in _lora_modules(peft_model)]
        if not all(_stackable(m, names) for m, names in modules if names):
            return False
        for module, names in modules:
            if not names:
                continue
            layout = tuple((n, module.lora_A[n].weight.shape[0]) for n in names)
            scaling = {n: float(module.scaling[n]) for n in names}
            self._stacks[id(module)] = _ModuleStack(
                a=torch.cat([module.lora_A[n].weight for n in names], dim=0).detach(),
                b=torch.cat([module.lora_B[n].weight for n in names], dim=1).detach(),
                layout=layout,
                scaling=scaling,
                key=(layout, tuple(sorted(scaling.items()))),
            )
            self._hooks.append(module.register_forward_hook(self._add_lora))
        return True

    @contextmanager
    def route(self, rows: Sequence[str | None]) -> Iterator[None]:
        """Within the context, row i of every forward gets adapter rows[i] (None: the base)."""
        self._rows, self._masks, self._scales = list(rows), {}, {}
        try:
            yield
        finally:
            self._rows = None

    def _row_terms(self, stack: _ModuleStack, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = stack.key
        mask = self._masks.get(key)
        if mask is None:
            assert self._rows is not None
            width = sum(r for _, r in stack.layout)
            mask = torch.zeros(len(self._rows), 1, width, dtype=like.dtype)
            scale = torch.zeros(len(self._rows), 1, 1, dtype=like.dtype)
            start = {}
            offset = 0
            for name, r in stack.layout:
                start[name] = (offset, r)
                offset += r
            for row, name in enumerate(self._rows):
                if name in start:
                    first, r = start[name]
                    mask[row, 0, first : first + r] = 1.0
                    scale[row] = stack.scaling[name]
            self._masks[key], self._scales[key] = mask, scale
        return mask, self._scales[key]

    def _add_lora(
        self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor
    ) -> torch.Tensor | None:
        if self._rows is None:
            return None
        stack = self._stacks[id(module)]
        x = inputs[0]
        mask, scale = self._row_terms(stack, output)
        hidden = functional.linear(x.to(stack.a.dtype), stack.a) * mask
        return output + (functional.linear(hidden, stack.b) * scale).to(output.dtype)
