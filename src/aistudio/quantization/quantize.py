"""Quantise, save, reload and run: one variant directory, or the reason it cannot be made here;
and loading a variant (or the fp32 reference) back for inference."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from aistudio.config import QuantizationConfig
from aistudio.errors import UserError
from aistudio.io import write_json
from aistudio.modeling.family import ModelFamily
from aistudio.modeling.loading import ModelCard, load_model_dir
from aistudio.modeling.prompts import Example, prompt_format
from aistudio.quantization.recipes import VARIANTS, Recipe, VariantSpec, backend_version
from aistudio.quantization.runtime import describe_error, device_kwargs, model_device, quiet_int8_cast_warning
from aistudio.quantization.variants import VARIANT_FILE, VariantOutcome, read_variant_info

log = logging.getLogger(__name__)

SMOKE_RECORD = {"instruction": "Say something short.", "output": "Something short."}


def smoke_example(tokenizer: Any) -> Example:
    return prompt_format(tokenizer).example(SMOKE_RECORD)


@torch.no_grad()
def smoke_check(model: Any, tokenizer: Any, family: ModelFamily) -> None:
    """One loss and a two-token generation; raises when the backend cannot run this model.

    bitsandbytes fails at the first matmul, not at load time, on widths it cannot tile (the CPU
    4-bit kernels need multiples of 64), so loading alone proves nothing.
    """
    smoke = smoke_example(tokenizer)
    encoded = family.encode(smoke, tokenizer, max_length=128, loss_on_output_only=False)
    if encoded is None:  # pragma: no cover - the example is far shorter than 128 tokens
        raise RuntimeError("smoke example does not fit in 128 tokens")
    batch = {k: v.to(model_device(model)) for k, v in family.collate([encoded], tokenizer).items()}
    loss = model(**batch).loss
    if not bool(torch.isfinite(loss)):
        raise RuntimeError(f"the quantized model returns a non-finite loss ({loss.item()})")
    family.generate(model, tokenizer, [smoke.prompt], max_new_tokens=2)


def _write_unavailable(out_dir: Path, outcome: VariantOutcome) -> None:
    # The reason sits where the weights would be, so a later load says why instead of "not found".
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    write_json(out_dir / VARIANT_FILE, _variant_record(outcome))


def _variant_record(outcome: VariantOutcome) -> dict[str, Any]:
    # The file lives in the directory it would name; a stored path would go stale when the folder moves.
    return {k: v for k, v in outcome.to_json().items() if k != "directory"}


def _try_recipe(
    source_dir: Path, spec: VariantSpec, recipe: Recipe, cfg: QuantizationConfig, scratch: Path
) -> tuple[str, ...]:
    """Quantise, save into `scratch`, reload and run; return notes worth keeping.

    Only the reloaded copy is run: it is what every later stage gets, and a backend that cannot run
    this model fails there just as it would have before saving.
    """
    model, tokenizer, card, _ = load_model_dir(
        source_dir,
        quantization_config=recipe.quantization_config(cfg),
        dtype=torch.float32,
        **device_kwargs(),
    )
    model.save_pretrained(scratch, safe_serialization=True)
    tokenizer.save_pretrained(scratch)
    stray = sorted(p.name for p in scratch.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"})
    if stray:
        raise RuntimeError(f"save_pretrained wrote pickled weights {stray}; only safetensors are allowed")
    metrics = {
        "variant": spec.name,
        "method": recipe.method,
        "source": str(source_dir),
        "source_stage": card.stage,
    }
    ModelCard(card.model, card.family, "quantized", card.domain, metrics, purpose=card.purpose).save(scratch)
    del model
    reloaded, tokenizer, _, family = load_model_dir(scratch, **device_kwargs())
    reloaded.eval()
    with quiet_int8_cast_warning():
        smoke_check(reloaded, tokenizer, family)
    return (spec.cpu_note,) if spec.cpu_note and not torch.cuda.is_available() else ()


def _width_hint(source_dir: Path, spec: VariantSpec) -> str:
    """The likely fix when a CPU kernel cannot tile this model's hidden size ('' when that is not it)."""
    if spec.cpu_width_multiple is None or torch.cuda.is_available():
        return ""
    from transformers import AutoConfig

    hidden = getattr(AutoConfig.from_pretrained(source_dir), "hidden_size", None)
    if not isinstance(hidden, int) or hidden % spec.cpu_width_multiple == 0:
        return ""
    return (
        f" (hidden size {hidden} is not a multiple of {spec.cpu_width_multiple}, which {spec.backend}'s "
        f"CPU kernels need: choose another size or drop '{spec.name}' from quantization.variants)"
    )


def quantize_variant(
    source_dir: Path, variant: str, cfg: QuantizationConfig, out_dir: Path
) -> VariantOutcome:
    """Quantise the fp32 model saved in `source_dir` into `out_dir`, or record why it cannot be.

    `out_dir` is replaced only once the new variant has been saved, reloaded and run.
    """
    if variant not in VARIANTS:
        raise UserError(
            f"params.yaml: quantization.variants: unknown variant '{variant}' (expected {list(VARIANTS)})"
        )
    spec = VARIANTS[variant]
    version, missing = backend_version(spec.backend)
    if version is None:
        outcome = VariantOutcome(variant, "unavailable", out_dir, reason=missing)
        _write_unavailable(out_dir, outcome)
        return outcome
    backend = f"{spec.backend} {version}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    failures: list[str] = []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for recipe in spec.recipes:
        scratch = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
        scratch.chmod(0o755)  # mkdtemp makes it private; it becomes the published model directory
        try:
            notes = _try_recipe(source_dir, spec, recipe, cfg, scratch)
        except UserError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        except Exception as exc:  # noqa: BLE001 - backend failures surface as RuntimeError, AssertionError, ...
            shutil.rmtree(scratch, ignore_errors=True)
            failures.append(
                f"{recipe.method} fails on {device}: {describe_error(exc)}{_width_hint(source_dir, spec)}"
            )
            log.warning("%s: %s", variant, failures[-1])
            continue
        if failures:
            notes = (*notes, *(f"fell back: {f}" for f in failures))
        outcome = VariantOutcome(variant, "ok", out_dir, recipe.method, backend, notes=notes)
        write_json(scratch / VARIANT_FILE, _variant_record(outcome))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(scratch, out_dir)
        return outcome
    outcome = VariantOutcome(variant, "unavailable", out_dir, backend=backend, reason="; ".join(failures))
    _write_unavailable(out_dir, outcome)
    return outcome


def load_variant(directory: Path, expect_model: str | None = None) -> tuple[Any, Any, ModelCard, ModelFamily]:
    """Reload a directory quantize_variant wrote (or the fp32 reference), ready for inference.

    The quantization config travels in config.json, so no recipe is needed; an unavailable variant
    is refused with the reason recorded when it was produced.
    """
    info = read_variant_info(directory)
    if info is not None and info.get("status") != "ok":
        raise UserError(
            f"{directory}: variant '{info.get('variant')}' is unavailable on the machine that produced it: "
            f"{info.get('reason', 'no reason recorded')}; serve another variant (evaluation.serving_variant)"
        )
    model, tokenizer, card, family = load_model_dir(directory, expect_model, **device_kwargs())
    model.eval()
    return model, tokenizer, card, family
