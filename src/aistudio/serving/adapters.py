"""The LoRA adapters resident on the served base model: routing per row, loading, unloading, LRU.

`AdapterPool` owns the model the runner calls: the plain base model until an adapter is resident,
then the PeftModel around it. Each forward asks `route(names)` how to run its rows:

- every row on the base model → the adapter layers are switched off (no LoRA math at all);
- every row on one adapter → that adapter is made active (PEFT's fast single-adapter path);
- a mix → one forward serves every adapter in the step: the stacked LoRA term of `LoraStack`
  (three ops per module, measured 0.84-0.88x of a base-only step on SmolLM2 with four adapters,
  where PEFT's per-row `adapter_names` gave 0.61-0.68x), or PEFT's `adapter_names` for adapters
  the stack cannot hold (DoRA and other variants, LoRA on embeddings).

The switch is only made when the mode changes, and only the scheduler's worker thread calls
`route`, `load` and `unload` (between steps), so no lock is held around the model. Pins (a queued
or running request on an adapter) are counted under a small lock, because requests are accepted
on the event loop: an adapter with pins is never evicted or unloaded.

A new adapter is checked against the base first: its task type, and for every LoRA weight the
module it targets must exist with matching in/out features — an adapter trained for another base
is refused before a byte of it is loaded into the model.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from aistudio.serving.lora_stack import LoraStack
from aistudio.training.adapters import ADAPTER_FILES, BASE_ALIASES, PEFT_BASE_ROW

log = logging.getLogger(__name__)

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>A|B)(?:\.[^.]+)?\.weight$")

# Called after every load, unload and eviction: {"action", "adapter", "source", "sha256", "caller", ...}.
AuditHook = Callable[[Mapping[str, Any]], None]


class AdapterError(Exception):
    """A load or unload that cannot happen; `kind` picks the HTTP answer."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # exists | busy | unknown | in_use | incompatible | invalid
        self.message = message


@dataclass(frozen=True)
class ResidentAdapter:
    name: str
    source: str
    sha256: str | None  # of the manifest the adapter was verified against
    loaded_at: float


def _linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Module name (as in the base model) → (in_features, out_features) of every Linear."""
    shapes = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".lora_" not in name:
            shapes[name.removesuffix(".base_layer").removeprefix("base_model.model.")] = (
                module.in_features,
                module.out_features,
            )
    return shapes


def check_compatible(
    directory: Path, base_shapes: Mapping[str, tuple[int, int]], task_type: str
) -> list[str]:
    """Problems that make the adapter in `directory` unusable on this base (empty: compatible)."""
    from safetensors import safe_open

    missing = [f for f in ADAPTER_FILES if not (directory / f).is_file()]
    if missing:
        return [f"adapter directory lacks {', '.join(missing)}"]
    config = json.loads((directory / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
    problems = []
    if config.get("peft_type") != "LORA":
        problems.append(f"adapter is {config.get('peft_type')}, only LORA adapters are served")
    if config.get("task_type") != task_type:
        problems.append(f"adapter was trained for {config.get('task_type')}, the base model is {task_type}")
    with safe_open(str(directory / ADAPTER_FILES[1]), framework="pt") as weights:
        for key in weights.keys():  # noqa: SIM118 - safe_open has no __iter__
            match = _LORA_KEY.match(key)
            if match is None:
                continue
            module, part = match["module"], match["part"]
            shape = tuple(weights.get_slice(key).get_shape())
            if module not in base_shapes:
                problems.append(f"adapter targets {module}, which this base model does not have")
                continue
            fan_in, fan_out = base_shapes[module]
            ok = shape[1] == fan_in if part == "A" else shape[0] == fan_out
            if len(shape) != 2 or not ok:
                expected = f"[r, {fan_in}]" if part == "A" else f"[{fan_out}, r]"
                problems.append(
                    f"adapter weight for {module} has shape {list(shape)}, the base needs {expected}"
                )
    return sorted(set(problems))[:5]


class AdapterPool:
    def __init__(
        self,
        model: Any,
        task_type: str,
        max_loras: int,
        initial: Mapping[str, ResidentAdapter] | None = None,
        audit: AuditHook | None = None,
    ) -> None:
        """`model`: the base PreTrainedModel, or a PeftModel already carrying `initial`'s adapters."""
        from peft import PeftModel

        self.peft: Any = model if isinstance(model, PeftModel) else None
        self.base = model.get_base_model() if self.peft is not None else model
        self.task_type = task_type
        self.max_loras = max_loras
        self._resident: OrderedDict[str, ResidentAdapter] = OrderedDict(initial or {})  # LRU: oldest first
        if len(self._resident) > max_loras:
            raise ValueError(f"{len(self._resident)} adapters in the bundle but max_loras is {max_loras}")
        self._pins: dict[str, int] = {}
        self._lock = threading.Lock()
        self._mode: tuple[str, str | None] | None = None
        self._base_shapes = _linear_shapes(self.base)
        self._audit = audit
        self.evictions = 0
        self.loads = 0
        self.stack = LoraStack()
        self._stacked = self.stack.rebuild(self.peft, self.names)
        self.on_change: Callable[[str, str], None] | None = None  # (action, name), for metrics

    # --- what is resident ------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._resident)

    def info(self, name: str) -> ResidentAdapter:
        return self._resident[name]

    def __contains__(self, name: object) -> bool:
        return name in self._resident

    @property
    def model(self) -> Any:
        return self.peft if self.peft is not None else self.base

    # --- pins (event loop and worker thread) ---------------------------------------------------------

    def pin(self, name: str | None) -> None:
        """A request on `name` was accepted: it may not be evicted until `unpin`."""
        if name is None:
            return
        with self._lock:
            if name not in self._resident:
                raise AdapterError("unknown", f"adapter '{name}' is not loaded")
            self._pins[name] = self._pins.get(name, 0) + 1
            self._resident.move_to_end(name)

    def unpin(self, name: str | None) -> None:
        if name is None:
            return
        with self._lock:
            left = self._pins.get(name, 0) - 1
            if left > 0:
                self._pins[name] = left
            else:
                self._pins.pop(name, None)

    def in_use(self, name: str) -> int:
        with self._lock:
            return self._pins.get(name, 0)

    # --- routing (worker thread) -------------------------------------------------------------------

    @contextmanager
    def route(self, names: Sequence[str | None]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """(model to call, extra forward kwargs) serving row i through adapter names[i]."""
        rows = [None if n is None or n in BASE_ALIASES else n for n in names]
        distinct = set(rows)
        if self.peft is None:
            if distinct != {None}:
                raise AdapterError("unknown", f"adapter(s) {sorted(n for n in distinct if n)} are not loaded")
            yield self.base, {}
            return
        if distinct == {None}:
            self._switch(("base", None))
            yield self.peft, {}
        elif len(distinct) == 1:
            self._switch(("single", rows[0]))
            yield self.peft, {}
        elif self._stacked:
            # PEFT's layers off, the stack's hooks add each row's own LoRA term.
            self._switch(("stacked", None))
            with self.stack.route(rows):
                yield self.peft, {}
        else:
            self._switch(("mixed", None))
            yield self.peft, {"adapter_names": [n or PEFT_BASE_ROW for n in rows]}

    def _switch(self, mode: tuple[str, str | None]) -> None:
        if mode == self._mode:
            return
        kind, name = mode
        if kind in ("base", "stacked"):
            self.peft.base_model.disable_adapter_layers()
        else:
            self.peft.base_model.enable_adapter_layers()
            # Mixed rows need the layers on; which adapter is "active" then does not matter.
            target = name if name is not None else next(iter(self._resident))
            self.peft.set_adapter(target, inference_mode=True)
        self._mode = mode

    # --- loading and unloading (worker thread, between steps) ----------------------------------------

    def restack(self) -> None:
        """Stack the resident adapters again (after their weights changed dtype or device)."""
        self._stacked = self.stack.rebuild(self.peft, self.names)

    def check(self, directory: Path) -> None:
        problems = check_compatible(directory, self._base_shapes, self.task_type)
        if problems:
            raise AdapterError(
                "incompatible", "adapter does not fit the served base model: " + "; ".join(problems)
            )

    def _evict_one(self) -> str:
        with self._lock:
            idle = [n for n in self._resident if not self._pins.get(n)]
        if not idle:
            raise AdapterError(
                "busy",
                f"all {self.max_loras} adapter slots (max_loras) hold adapters with requests in flight; "
                "retry when one is idle, or unload one",
            )
        victim = idle[0]  # least recently used
        self._remove(victim)
        self.evictions += 1
        return victim

    def load(
        self, name: str, directory: Path, source: str, sha256: str | None, caller: str, now: float
    ) -> list[str]:
        """Make `directory`'s adapter resident as `name`; returns the names evicted to make room."""
        if name in self._resident:
            raise AdapterError("exists", f"an adapter named '{name}' is already loaded; unload it first")
        self.check(directory)
        evicted = []
        while len(self._resident) >= self.max_loras:
            evicted.append(self._evict_one())
        if self.peft is None:
            from peft import PeftModel

            self.peft = PeftModel.from_pretrained(self.base, str(directory), adapter_name=name)
        else:
            self.peft.load_adapter(str(directory), adapter_name=name)
        self.peft.eval()
        self._mode = None  # a new adapter's layers start in whatever state PEFT gives them
        with self._lock:
            self._resident[name] = ResidentAdapter(name, source, sha256, now)
        self._stacked = self.stack.rebuild(self.peft, self.names)
        self.loads += 1
        for victim in evicted:
            self._record("evict", victim, caller, reason=f"LRU, to make room for '{name}'")
        self._record("load", name, caller, source=source, sha256=sha256)
        return evicted

    def unload(self, name: str, caller: str) -> None:
        if name not in self._resident:
            raise AdapterError("unknown", f"no adapter named '{name}' is loaded")
        if self.in_use(name):
            raise AdapterError("in_use", f"adapter '{name}' has {self.in_use(name)} request(s) in flight")
        self._remove(name)
        self._record("unload", name, caller)

    def _remove(self, name: str) -> None:
        with self._lock:
            resident = self._resident.pop(name)
        if self.peft is not None and name in self.peft.peft_config:
            if len(self.peft.peft_config) > 1:
                self.peft.delete_adapter(name)
            else:
                # PEFT cannot hold zero adapters: the last one goes with the wrapper, back to the base.
                self.base = self.peft.unload()
                self.peft = None
        self._mode = None
        self._stacked = self.stack.rebuild(self.peft, self.names)
        log.info("adapter %s (from %s) removed", name, resident.source)

    def _record(self, action: str, name: str, caller: str, **facts: Any) -> None:
        if self.on_change is not None:
            self.on_change(action, name)
        if self._audit is not None:
            try:
                self._audit({"action": action, "adapter": name, "caller": caller, **facts})
            except Exception:  # an audit sink that fails must not take the server down with it
                log.exception("audit hook failed for %s of adapter %s", action, name)
