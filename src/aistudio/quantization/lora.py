"""LoRA on a quantized base: do the domain adapters load, change the output and serve a mixed
batch on each variant? A random probe adapter stands in when none was trained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from aistudio import layout
from aistudio.config import LoraConfig
from aistudio.modeling.loading import load_model_dir
from aistudio.quantization.quantize import load_variant, smoke_example
from aistudio.quantization.runtime import describe_error, model_device, quiet_int8_cast_warning
from aistudio.quantization.variants import REFERENCE
from aistudio.training.adapters import ADAPTER_FILES, AdapterSet, attach_lora, save_adapter


def probe_adapter(source_dir: Path, lora: LoraConfig, out_dir: Path) -> Path:
    """A random (untrained) LoRA adapter for the model in `source_dir`, when no trained one exists.

    PEFT initialises lora_B to zero, which would make the adapter a no-op; it is filled with noise
    so a base that silently ignored the adapter shows up as unchanged outputs.
    """
    model, _, _, family = load_model_dir(source_dir)
    peft_model = attach_lora(model, family, lora.model_copy(update={"qlora": False}), adapter_name="probe")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return save_adapter(peft_model, out_dir, "probe")


@torch.no_grad()
def lora_compatibility(directory: Path, adapters: Mapping[str, Path]) -> tuple[bool, str]:
    """Load `adapters` onto the variant in `directory`; they must change the output and serve a
    mixed batch. (bool, a sentence saying what was checked or what failed)."""
    model, tokenizer, card, family = load_variant(directory)
    variant = card.metrics.get("variant", REFERENCE)
    smoke = smoke_example(tokenizer)
    encoded = family.encode(smoke, tokenizer, max_length=128, loss_on_output_only=False)
    assert encoded is not None
    batch = {k: v.to(model_device(model)) for k, v in family.collate([encoded], tokenizer).items()}
    try:
        with quiet_int8_cast_warning():
            bare = model(**batch).logits
            adapter_set = AdapterSet.load(model, family, adapters)
            names = adapter_set.names
            adapter_set.use(names[0])
            adapted = adapter_set.forward(batch).logits
            adapter_set.generate(
                tokenizer,
                [smoke.prompt] * (len(names) + 1),
                adapter_names=[*names, None],
                max_new_tokens=2,
            )
    except Exception as exc:  # noqa: BLE001 - PEFT refuses unsupported layers with ValueError, TypeError, ...
        return False, f"PEFT cannot serve LoRA adapters on the {variant} base: {describe_error(exc)}"
    if not bool(torch.isfinite(adapted).all()):
        return False, f"LoRA on the {variant} base returns non-finite logits"
    if torch.equal(adapted, bare):
        return False, f"adapters load on the {variant} base but leave its output unchanged (not applied)"
    return (
        True,
        f"{len(names)} adapter(s) load, change the output and serve a mixed batch on the {variant} base",
    )


def trained_adapters(model_name: str, domains: Sequence[str]) -> dict[str, Path]:
    """The domain adapters the LoRA stage saved for `model_name` (domains it skipped are absent)."""
    found = {d: layout.lora_dir(model_name, d) for d in domains}
    return {d: p for d, p in found.items() if all((p / f).is_file() for f in ADAPTER_FILES)}
