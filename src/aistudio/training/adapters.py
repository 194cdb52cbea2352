"""LoRA adapters: attach, QLoRA on a 4-bit base, save as two files, and serve many on one base.

An adapter directory holds exactly `adapter_config.json` and `adapter_model.safetensors`; the base
model it belongs to is recorded by whoever saves it (the stage's model card), not by PEFT's README.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

from aistudio.config import LoraConfig
from aistudio.errors import UserError
from aistudio.modeling.architectures import LORA_TARGETS, lora_targets
from aistudio.modeling.family import ModelFamily

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# PEFT's own name for "no adapter on this row" in a mixed-adapter batch (peft/tuners/lora/layer.py).
PEFT_BASE_ROW = "__base__"
# What callers may write for the base model; adapters cannot take these names.
BASE_ALIASES = frozenset({"base", PEFT_BASE_ROW})


def lora_target_modules(model_type: str, setting: list[str] | str) -> list[str] | str:
    """`family` → every attention and MLP projection of the architecture (`config.model_type`);
    `all-linear` and explicit lists pass through."""
    if setting == "family":
        targets = lora_targets(model_type)
        if targets is None:
            raise UserError(
                f"params.yaml: lora.target_modules 'family' knows no projections for architecture "
                f"'{model_type}' (known: {', '.join(sorted(LORA_TARGETS))}); list its module names "
                "or use all-linear"
            )
        return list(targets)
    if setting == "all-linear":
        return "all-linear"
    if isinstance(setting, str):
        raise UserError(
            f"params.yaml: lora.target_modules must be 'family', 'all-linear' or a list (got '{setting}')"
        )
    return list(setting)


def is_4bit(model: Any) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def attach_lora(
    model: PreTrainedModel | PeftModel,
    family: ModelFamily,
    cfg: LoraConfig,
    adapter_name: str = "default",
    gradient_checkpointing: bool = False,
) -> PeftModel:
    """Wrap `model` in a trainable LoRA adapter; on a PeftModel, add `adapter_name` and make it active.

    With `cfg.qlora` the caller passes a 4-bit base (`load_4bit_base`). Gradient checkpointing is
    off by default: it only pays off on real models, and the Trainer can switch it on later.
    """
    if adapter_name in BASE_ALIASES:
        raise UserError(f"adapter name '{adapter_name}' is reserved for the base model; choose another name")
    if cfg.qlora and not is_4bit(model):
        raise UserError(
            "params.yaml: lora.qlora is true but the base model is not 4-bit; load it with load_4bit_base"
        )
    if is_4bit(model) and not cfg.qlora:
        raise UserError("params.yaml: lora.qlora is false but the base model is 4-bit; set lora.qlora: true")
    peft_config = PeftLoraConfig(
        task_type=family.peft_task_type,
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=lora_target_modules(model.config.model_type, cfg.target_modules),
    )
    if isinstance(model, PeftModel):
        model.add_adapter(adapter_name, peft_config)
        model.set_adapter(adapter_name)
        return model
    if cfg.qlora:
        # Freezes the base, upcasts norms to fp32 and lets gradients reach the LoRA inputs.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return get_peft_model(model, peft_config, adapter_name=adapter_name)


def bnb_4bit_config() -> BitsAndBytesConfig:
    # fp32 compute: CPU bitsandbytes has no fast fp16 path, and the tiny models train in fp32.
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )


def qlora_available() -> tuple[bool, str]:
    """Whether bitsandbytes 4-bit works here, and a sentence saying why (or why not)."""
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything from ImportError to OSError
        return False, f"bitsandbytes does not import: {type(exc).__name__}: {exc}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # 64 wide: bitsandbytes' CPU 4-bit kernels fail on widths that are not a multiple of 64.
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4").to(
            device
        )
        with torch.no_grad():
            out = layer(torch.ones(2, 64, device=device))
    except Exception as exc:  # noqa: BLE001 - backend failures surface as RuntimeError, NotImplementedError, ...
        return (
            False,
            f"bitsandbytes {bnb.__version__} cannot run a 4-bit layer on {device}: {type(exc).__name__}: "
            f"{exc}",
        )
    if not getattr(layer.weight, "bnb_quantized", False):
        return False, f"bitsandbytes {bnb.__version__} did not quantize a 4-bit layer on {device}"
    if not bool(torch.isfinite(out).all()):
        return False, f"bitsandbytes {bnb.__version__} 4-bit layer on {device} returned non-finite values"
    return True, f"bitsandbytes {bnb.__version__}: 4-bit nf4 layer runs on {device}"


def qlora_load_kwargs() -> dict[str, Any]:
    """from_pretrained arguments for an nf4 (double-quantised) base with fp32 compute."""
    ok, reason = qlora_available()
    if not ok:
        raise UserError(
            f"params.yaml: lora.qlora is true but {reason}; set lora.qlora: false on this machine"
        )
    kwargs: dict[str, Any] = {"quantization_config": bnb_4bit_config(), "dtype": torch.float32}
    if not torch.cuda.is_available():
        kwargs["device_map"] = "cpu"
    return kwargs


def load_4bit_base(directory: Path, family: ModelFamily, **load_kwargs: Any) -> PreTrainedModel:
    """A saved HF model directory loaded with nf4 weights (double-quantised) and fp32 compute."""
    return family.auto_class.from_pretrained(directory, **{**qlora_load_kwargs(), **load_kwargs})


def _parameter_count(param: torch.nn.Parameter) -> int:
    if param.__class__.__name__ == "Params4bit":
        # Two 4-bit weights per stored byte: count weights, not storage.
        storage = getattr(param, "quant_storage", None)
        return param.numel() * 2 * (storage.itemsize if storage is not None else param.element_size())
    return param.numel()


def trainable_parameter_share(model: torch.nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts; `reduction` is the share LoRA spares from training."""
    trainable = total = 0
    for param in model.parameters():
        count = _parameter_count(param)
        total += count
        trainable += count if param.requires_grad else 0
    share = trainable / total if total else 0.0
    return {"trainable": trainable, "total": total, "share": share, "reduction": 1.0 - share}


def save_adapter(
    peft_model: PeftModel,
    directory: Path,
    adapter_name: str = "default",
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write one adapter as exactly ADAPTER_FILES into `directory` (no README, tokenizer or pickle).

    `state_dict` is the model's gathered full state when training sharded it; PEFT picks the
    adapter's weights out of it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}.") as scratch:
        peft_model.save_pretrained(
            scratch, safe_serialization=True, selected_adapters=[adapter_name], state_dict=state_dict
        )
        # PEFT writes a non-default adapter into a sub-folder named after it, and a README at the top.
        written = Path(scratch) if adapter_name == "default" else Path(scratch) / adapter_name
        for name in ADAPTER_FILES:
            shutil.move(written / name, directory / name)
    for extra in directory.iterdir():
        if extra.name not in ADAPTER_FILES:
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    return directory


def _check_adapter_dir(name: str, path: Path, family: ModelFamily) -> None:
    missing = [f for f in ADAPTER_FILES if not (path / f).is_file()]
    if missing:
        raise UserError(
            f"adapter '{name}': {path} lacks {', '.join(missing)} (run the lora stage: dvc repro)"
        )
    task = PeftConfig.from_pretrained(str(path)).task_type
    if task != family.peft_task_type:
        raise UserError(
            f"adapter '{name}': {path} was trained for {task}, but the base model is {family.name} "
            f"({family.peft_task_type}); pair it with a {family.name} base"
        )


class AdapterSet:
    """One base model carrying any number of named LoRA adapters, switchable or mixed per row."""

    def __init__(self, model: PeftModel, family: ModelFamily) -> None:
        self.model = model
        self.family = family
        self._active: str | None = model.active_adapter

    @classmethod
    def load(
        cls, base_model: PreTrainedModel, family: ModelFamily, adapters: Mapping[str, Path]
    ) -> AdapterSet:
        """Load every adapter in `adapters` (name → directory) onto `base_model`, in inference mode."""
        if not adapters:
            raise UserError("no adapters to load: pass at least one name → adapter directory")
        for name, path in adapters.items():
            if name in BASE_ALIASES:
                raise UserError(f"adapter name '{name}' is reserved for the base model; rename it")
            _check_adapter_dir(name, Path(path), family)
        (first, first_path), *rest = adapters.items()
        model = PeftModel.from_pretrained(base_model, str(first_path), adapter_name=first)
        for name, path in rest:
            model.load_adapter(str(path), adapter_name=name)
        model.set_adapter(first, inference_mode=True)
        # Mixed-adapter batches are refused in training mode; this set only serves.
        model.eval()
        return cls(model, family)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.model.peft_config)

    @property
    def active(self) -> str | None:
        """The adapter `use` selected; None while serving the bare base model."""
        return self._active

    def _check(self, name: str) -> None:
        if name not in self.model.peft_config:
            raise UserError(
                f"unknown adapter '{name}': loaded adapters are {', '.join(self.names)} (or 'base')"
            )

    def _enable(self, name: str) -> None:
        self.model.base_model.enable_adapter_layers()
        # inference_mode keeps the adapter frozen: enabling layers would otherwise turn its grads on.
        self.model.set_adapter(name, inference_mode=True)

    def use(self, name: str | None) -> None:
        """Serve one adapter for every row from now on; None or 'base' serves the bare base model.

        The switch is made on `self.model` itself, so code holding the PeftModel sees it too.
        """
        if name is None or name in BASE_ALIASES:
            self.model.base_model.disable_adapter_layers()
            self._active = None
            return
        self._check(name)
        self._enable(name)
        self._active = name

    @contextmanager
    def _adapter_layers_on(self) -> Iterator[None]:
        # A per-row adapter list only reaches the LoRA layers while they are enabled; after
        # `use(None)` they are off, which would silently serve the base model on every row.
        if self._active is not None:
            yield
            return
        self._enable(self.model.active_adapter)
        try:
            yield
        finally:
            self.model.base_model.disable_adapter_layers()

    def row_adapters(self, adapter_names: Sequence[str | None]) -> list[str]:
        """Per-row names as PEFT expects them: base rows become PEFT_BASE_ROW, unknown names fail."""
        rows = [PEFT_BASE_ROW if n is None or n in BASE_ALIASES else n for n in adapter_names]
        for name in dict.fromkeys(n for n in rows if n != PEFT_BASE_ROW):
            self._check(name)
        return rows

    @torch.no_grad()
    def forward(
        self, batch: Mapping[str, torch.Tensor], adapter_names: Sequence[str | None] | None = None
    ) -> Any:
        """One forward pass; `adapter_names` picks an adapter per row, else the `use` choice applies."""
        if adapter_names is None:
            return self.model(**batch)
        rows = self.row_adapters(adapter_names)
        _check_rows(rows, batch["input_ids"].shape[0])
        with self._adapter_layers_on():
            return self.model(**batch, adapter_names=rows)

    def generate(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        adapter_names: Sequence[str | None] | None = None,
        **kw: Any,
    ) -> list[str]:
        """Completions for `prompts`, row i through adapter_names[i], all in one batch."""
        if adapter_names is None:
            return self.family.generate(self.model, tokenizer, prompts, **kw)
        rows = self.row_adapters(adapter_names)
        _check_rows(rows, len(prompts))
        with self._adapter_layers_on():
            return self.family.generate(self.model, tokenizer, prompts, adapter_names=rows, **kw)

    def merged(self, name: str | None) -> PreTrainedModel:
        """A standalone copy with adapter `name` folded into the weights; the set stays usable."""
        if name is not None and name not in BASE_ALIASES:
            self._check(name)
        twin = copy.deepcopy(self.model)
        if name is None or name in BASE_ALIASES:
            return twin.unload()
        twin.base_model.enable_adapter_layers()
        twin.set_adapter(name, inference_mode=True)
        return twin.merge_and_unload(adapter_names=[name])


def _check_rows(rows: Sequence[str], batch_size: int) -> None:
    if len(rows) != batch_size:
        raise ValueError(f"adapter_names has {len(rows)} entries for a batch of {batch_size} rows")
