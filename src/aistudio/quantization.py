"""Quantized variants of a saved model, and what each costs and saves against the fp32 original.

Four variants (names in config.VARIANTS), each a standard HF directory (safetensors weights, the
quantization config in config.json, tokenizer, model card) that `from_pretrained` reloads
without a recipe:

    4bit              bitsandbytes NF4, double-quantised, compute in `quantization.compute_dtype`
    8bit              bitsandbytes LLM.int8
    dynamic           torchao int8 dynamic activations + int8 per-channel weights
    int8_weight_only  torchao int8 per-channel weights, activations in float

Whether a variant works is probed, not assumed: the model is quantised, saved, reloaded and
run. A backend that fails any step on this machine (not installed, no kernel for the
hardware, a layer width bitsandbytes cannot tile) makes the variant `unavailable` with the reason;
the stage goes on with the others and the reason is written where the weights would have been.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from aistudio import layout, tracking
from aistudio.config import FP32, LoraConfig, MlflowConfig, Params, QuantizationConfig
from aistudio.config import VARIANTS as CONFIG_VARIANTS
from aistudio.errors import UserError
from aistudio.io import read_jsonl, write_json
from aistudio.layout import merged_dir, split_path
from aistudio.modeling.family import IGNORE_INDEX, ModelFamily
from aistudio.modeling.loading import ModelCard, load_model_dir, save_model_dir
from aistudio.modeling.prompts import Example, prompt_format
from aistudio.plots import data as plot_data
from aistudio.training.adapters import ADAPTER_FILES, AdapterSet, attach_lora, save_adapter

log = logging.getLogger(__name__)

STAGE = "quantize_models"
VARIANT_NAMES: tuple[str, ...] = CONFIG_VARIANTS
# The unquantized model every variant is compared with; its directory is the source model's.
REFERENCE = FP32
VARIANT_FILE = "variant.json"

Status = Literal["ok", "unavailable"]

# Perplexity batches: small enough that one batch of logits (batch x length x vocab) stays modest.
PERPLEXITY_BATCH_SIZE = 8
SMOKE_RECORD = {"instruction": "Say something short.", "output": "Something short."}


def smoke_example(tokenizer: Any) -> Example:
    return prompt_format(tokenizer).example(SMOKE_RECORD)


# --- layout -------------------------------------------------------------------------------------


def variant_dir(
    model: str, variant: str, domain: str | None = None, root: Path = layout.QUANTIZED_DIR
) -> Path:
    """layout.quantized_dir of a variant under `root`; the fp32 reference is the source model's
    own directory (the base, or the merged domain model)."""
    if variant == REFERENCE:
        return merged_dir(model, domain, root) if domain else layout.base_dir(model)
    if variant not in VARIANT_NAMES:
        raise UserError(
            f"unknown quantized variant '{variant}': expected one of {[*VARIANT_NAMES, REFERENCE]}"
        )
    return layout.quantized_dir(model, variant, domain, root)


# --- how each variant is made -------------------------------------------------------------------

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


VARIANTS: dict[str, VariantSpec] = {
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


def _device_kwargs() -> dict[str, Any]:
    # bitsandbytes and torchao quantise while loading onto the target device; pin it explicitly.
    return {"device_map": {"": 0}} if torch.cuda.is_available() else {"device_map": "cpu"}


def _device(model: Any) -> torch.device:
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


# --- quantize, save, reload ---------------------------------------------------------------------


@dataclass(frozen=True)
class VariantOutcome:
    """What quantize_variant produced: an `ok` directory, or `unavailable` and the reason why."""

    variant: str
    status: Status
    directory: Path
    method: str = ""
    backend: str = ""
    reason: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "variant": self.variant,
            "status": self.status,
            "directory": str(self.directory),
        }
        if self.method:
            data["method"] = self.method
        if self.backend:
            data["backend"] = self.backend
        if self.reason:
            data["reason"] = self.reason
        if self.notes:
            data["notes"] = list(self.notes)
        return data


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
    batch = {k: v.to(_device(model)) for k, v in family.collate([encoded], tokenizer).items()}
    loss = model(**batch).loss
    if not bool(torch.isfinite(loss)):
        raise RuntimeError(f"the quantized model returns a non-finite loss ({loss.item()})")
    family.generate(model, tokenizer, [smoke.prompt], max_new_tokens=2)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


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
        **_device_kwargs(),
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
    reloaded, tokenizer, _, family = load_model_dir(scratch, **_device_kwargs())
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
                f"{recipe.method} fails on {device}: {_describe(exc)}{_width_hint(source_dir, spec)}"
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


def read_variant_info(directory: Path) -> dict[str, Any] | None:
    """The recorded variant.json of a quantized directory; None for an unquantized model directory."""
    path = directory / VARIANT_FILE
    return json.loads(path.read_text()) if path.exists() else None


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
    model, tokenizer, card, family = load_model_dir(directory, expect_model, **_device_kwargs())
    model.eval()
    return model, tokenizer, card, family


# --- measuring a variant -------------------------------------------------------------------------


def weight_bytes(directory: Path) -> int:
    """Bytes of the weight files on disk (safetensors shards), not tokenizer or config."""
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


@torch.no_grad()
def perplexity(
    model: Any,
    tokenizer: Any,
    family: ModelFamily,
    records: Sequence[Mapping[str, Any]],
    max_length: int = 256,
    batch_size: int = PERPLEXITY_BATCH_SIZE,
) -> tuple[float | None, int]:
    """exp(token-weighted mean NLL) of the records' targets given their prompts, and the token count.

    Summed per batch and divided once at the end, so batches of different sizes weigh by tokens;
    only one batch of logits exists at a time.
    """
    fmt = prompt_format(tokenizer)
    encoded = [
        family.encode(fmt.example(r), tokenizer, max_length, loss_on_output_only=True) for r in records
    ]
    features = [e for e in encoded if e is not None]
    total_nll, total_tokens = 0.0, 0
    device = _device(model)
    # A decoder-only model predicts token t+1 at position t; an encoder-decoder's logits align with labels.
    shift = not bool(getattr(model.config, "is_encoder_decoder", False))
    for start in range(0, len(features), batch_size):
        batch = {
            k: v.to(device)
            for k, v in family.collate(features[start : start + batch_size], tokenizer).items()
        }
        labels = batch["labels"]
        # Labels go in only where the model needs them to build decoder inputs; its own mean loss is
        # not token-weighted across batches, so it is not used.
        inputs = {k: v for k, v in batch.items() if not (shift and k == "labels")}
        with quiet_int8_cast_warning():
            logits = model(**inputs).logits
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        total_nll += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        ).item()
        total_tokens += int((labels != IGNORE_INDEX).sum())
        del logits
    if not total_tokens:
        return None, 0
    return math.exp(total_nll / total_tokens), total_tokens


def generation_latency(
    model: Any, tokenizer: Any, family: ModelFamily, prompts: Sequence[str], max_new_tokens: int
) -> dict[str, float | None]:
    """Median seconds per prompt (one at a time, greedy) and generated tokens per second.

    Every prompt generates exactly max_new_tokens (min_new_tokens pins it), so a variant that hits
    EOS early is not mistaken for a faster one.
    """
    if not prompts:
        return {"latency_p50_s": None, "tokens_per_second": None}

    def generate(prompt: str) -> None:
        with quiet_int8_cast_warning():
            family.generate(
                model, tokenizer, [prompt], max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens
            )

    # The first call pays one-off costs (allocator growth, kernel selection); keep it out of the timings.
    generate(prompts[0])
    seconds = []
    for prompt in prompts:
        start = time.perf_counter()
        generate(prompt)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return {
        "latency_p50_s": round(statistics.median(seconds), 6),
        "tokens_per_second": round(max_new_tokens * len(seconds) / sum(seconds), 3),
    }


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 6)


def relative_to(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    """size_ratio and latency_ratio (variant / fp32) and perplexity_change (variant / fp32 - 1)."""
    ppl_ratio = _ratio(metrics.get("perplexity"), reference.get("perplexity"))
    return {
        "size_ratio": _ratio(metrics.get("size_bytes"), reference.get("size_bytes")),
        "latency_ratio": _ratio(metrics.get("latency_p50_s"), reference.get("latency_p50_s")),
        "perplexity_change": None if ppl_ratio is None else round(ppl_ratio - 1.0, 6),
    }


def measure_variant(
    model: Any,
    tokenizer: Any,
    family: ModelFamily,
    prompts: Sequence[str],
    eval_records: Sequence[Mapping[str, Any]],
    cfg: QuantizationConfig,
    *,
    model_dir: Path | None = None,
    load_seconds: float | None = None,
    reference: Mapping[str, Any] | None = None,
    max_length: int = 256,
) -> dict[str, Any]:
    """Size on disk, load time, p50 latency, tokens/s and perplexity; ratios against `reference`.

    `model_dir` defaults to where the model was loaded from; without `reference` the ratios are those
    of the reference itself (1.0, change 0.0).
    """
    model.eval()
    directory = Path(model_dir or model.name_or_path)
    ppl, tokens = perplexity(model, tokenizer, family, eval_records[: cfg.perplexity_samples], max_length)
    timing = generation_latency(model, tokenizer, family, prompts[: cfg.latency_prompts], cfg.max_new_tokens)
    metrics: dict[str, Any] = {
        "size_bytes": weight_bytes(directory),
        "load_seconds": None if load_seconds is None else round(load_seconds, 6),
        **timing,
        "perplexity": None if ppl is None else round(ppl, 6),
        "perplexity_tokens": tokens,
    }
    return {**metrics, **relative_to(metrics, reference or metrics)}


# --- LoRA on a quantized base --------------------------------------------------------------------


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
    batch = {k: v.to(_device(model)) for k, v in family.collate([encoded], tokenizer).items()}
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
        return False, f"PEFT cannot serve LoRA adapters on the {variant} base: {_describe(exc)}"
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


# --- the stage ------------------------------------------------------------------------------------


def merge_domain_model(model_name: str, domain: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold one domain adapter into the fp32 base and save it as a standalone model directory."""
    model, tokenizer, base, family = load_model_dir(layout.base_dir(model_name), expect_model=model_name)
    merged = AdapterSet.load(model, family, {domain: adapter_dir}).merged(domain)
    metrics = {"adapter": str(adapter_dir)}
    card = ModelCard(model_name, family.name, "merged", domain, metrics, purpose=base.purpose)
    save_model_dir(out_dir, merged, tokenizer, card)
    return out_dir


def latency_prompts(records: Sequence[Mapping[str, Any]], count: int, tokenizer: Any) -> list[str]:
    """The fixed prompt set: the first `count` validation prompts (the split order is deterministic),
    in the format the model was trained with."""
    fmt = prompt_format(tokenizer)
    return [fmt.example(r).prompt for r in records[:count]]


@dataclass
class MeasureInputs:
    prompts: list[str]
    records: list[dict[str, Any]]
    max_length: int
    adapters: dict[str, Path] = field(default_factory=dict)


def quantize_and_measure(
    source_dir: Path,
    out_dir_of: Callable[[str], Path],
    cfg: QuantizationConfig,
    inputs: MeasureInputs,
) -> dict[str, dict[str, Any]]:
    """{fp32: reference, <variant>: status + metrics + LoRA compatibility} for one source model."""
    start = time.perf_counter()
    model, tokenizer, _, family = load_variant(source_dir)
    load_seconds = time.perf_counter() - start
    reference = measure_variant(
        model,
        tokenizer,
        family,
        inputs.prompts,
        inputs.records,
        cfg,
        model_dir=source_dir,
        load_seconds=load_seconds,
        max_length=inputs.max_length,
    )
    del model
    results: dict[str, dict[str, Any]] = {
        REFERENCE: {"status": "ok", "method": "unquantized fp32", "directory": str(source_dir), **reference}
    }
    if inputs.adapters:
        compatible, reason = lora_compatibility(source_dir, inputs.adapters)
        results[REFERENCE].update({"lora_compatible": compatible, "lora_reason": reason})
    for variant in cfg.variants:
        outcome = quantize_variant(source_dir, variant, cfg, out_dir_of(variant))
        entry = outcome.to_json()
        entry.pop("variant")
        if outcome.ok:
            start = time.perf_counter()
            model, tokenizer, _, family = load_variant(outcome.directory)
            load_seconds = time.perf_counter() - start
            entry.update(
                measure_variant(
                    model,
                    tokenizer,
                    family,
                    inputs.prompts,
                    inputs.records,
                    cfg,
                    model_dir=outcome.directory,
                    load_seconds=load_seconds,
                    reference=reference,
                    max_length=inputs.max_length,
                )
            )
            del model
            if inputs.adapters:
                compatible, reason = lora_compatibility(outcome.directory, inputs.adapters)
                entry.update({"lora_compatible": compatible, "lora_reason": reason})
                info = read_variant_info(outcome.directory) or {}
                write_json(
                    outcome.directory / VARIANT_FILE,
                    {**info, "lora_compatible": compatible, "lora_reason": reason},
                )
        log.info(
            "%s %s: %s", source_dir, variant, {k: entry.get(k) for k in ("status", "size_ratio", "reason")}
        )
        results[variant] = entry
    return results


def _stage_run(
    mlflow_cfg: MlflowConfig | None, section: Mapping[str, Any], inputs: Sequence[Path], name: str
):
    if mlflow_cfg is None:
        return nullcontext()
    return tracking.stage_run(mlflow_cfg, STAGE, section, inputs, run_name=name)


def _log_to_mlflow(results: Mapping[str, Any], variant_dirs: Mapping[str, Path]) -> None:
    import mlflow

    tracking.log_metrics(results)
    for key, entry in tracking.flatten(results).items():
        if key.endswith((".status", ".method", ".reason", ".lora_reason")):
            mlflow.set_tag(f"quantization.{key}", str(entry)[:5000])
    mlflow.log_dict(dict(results), "quantization.json")
    for variant, directory in variant_dirs.items():
        mlflow.log_artifacts(str(directory), artifact_path=f"variants/{variant}")


def check_base_models(model_names: Sequence[str]) -> None:
    """Every named model has its saved base directory; one UserError lists all that do not."""
    problems = []
    for name in model_names:
        base = layout.base_dir(name)
        if not base.is_dir():
            problems.append(f"{base}: model directory not found (run train_base_models first: dvc repro)")
        elif (card := ModelCard.load(base)).model != name:
            problems.append(f"{base}: holds model '{card.model}', expected '{name}'")
    if problems:
        raise UserError(problems)


def quantize_model(
    params: Params,
    model_name: str,
    processed_dir: Path,
    mlflow_cfg: MlflowConfig | None = None,
    out: Path = layout.QUANTIZED_DIR,
) -> dict[str, Any]:
    """The quantize_models stage for one model: every variant of the base (and, with
    quantization.merged_domains, of each merged domain model) under `out`, measured against its
    fp32 source."""
    if model_name not in params.models:
        raise UserError(f"--model '{model_name}' is not in params.yaml models {sorted(params.models)}")
    cfg = params.quantization
    base = layout.base_dir(model_name)
    check_base_models([model_name])
    validation_path = split_path(processed_dir, "validation")
    if not validation_path.exists():
        raise UserError(f"{validation_path}: missing; run `dvc repro prepare_data` first")
    records = read_jsonl(validation_path)
    adapters = trained_adapters(model_name, params.data.domains)
    section = {"model": model_name, "quantization": cfg.model_dump()}
    lineage = [base / "model.safetensors", validation_path, *adapters.values()]
    with (
        tempfile.TemporaryDirectory() as scratch,
        _stage_run(mlflow_cfg, section, lineage, f"quantize-{model_name}"),
    ):
        # Without trained adapters, LoRA compatibility is still measured, with a random probe adapter.
        lora_check = adapters or {"probe": probe_adapter(base, params.lora, Path(scratch) / "probe")}
        inputs = MeasureInputs(
            latency_prompts(records, cfg.latency_prompts, AutoTokenizer.from_pretrained(base)),
            records[: cfg.perplexity_samples],
            params.base_training(model_name).max_length,
            lora_check,
        )
        results: dict[str, Any] = quantize_and_measure(
            base, lambda v: variant_dir(model_name, v, root=out), cfg, inputs
        )
        results[REFERENCE]["lora_adapters"] = (
            "trained" if adapters else "random probe (no trained adapters found)"
        )
        if cfg.merged_domains:
            results["merged_domains"] = _merged_domains(params, model_name, adapters, inputs, out)
        if mlflow_cfg is not None:
            ok = {
                v: variant_dir(model_name, v, root=out) for v in cfg.variants if results[v]["status"] == "ok"
            }
            _log_to_mlflow(results, ok)
    return results


def write_quantization_metrics(
    path: Path, results: Mapping[str, Any], models: Sequence[str]
) -> dict[str, Any]:
    """metrics/quantization.json: a partial run (--model) keeps the other models' entries, but
    never those of models no longer in params.yaml."""
    previous = json.loads(path.read_text()) if path.exists() else {}
    merged = {**{name: entry for name, entry in previous.items() if name in models}, **results}
    write_json(path, merged)
    return merged


def _merged_domains(
    params: Params, model_name: str, adapters: Mapping[str, Path], inputs: MeasureInputs, out: Path
) -> dict[str, Any]:
    cfg = params.quantization
    # Same prompts and records as the base, so merged and base numbers compare; no LoRA on a merged model.
    plain = MeasureInputs(inputs.prompts, inputs.records, inputs.max_length)
    merged: dict[str, Any] = {}
    for domain in params.data.domains:
        if domain not in adapters:
            reason = f"no adapter at {layout.lora_dir(model_name, domain)} (skipped by train_lora_adapters)"
            merged[domain] = {
                v: {"status": "unavailable", "reason": reason} for v in [REFERENCE, *cfg.variants]
            }
            continue
        source = merge_domain_model(model_name, domain, adapters[domain], merged_dir(model_name, domain, out))
        merged[domain] = quantize_and_measure(
            source, lambda v, d=domain: variant_dir(model_name, v, d, out), cfg, plain
        )
    return merged


# --- the size vs perplexity chart ----------------------------------------------------------------


def plot_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One point per model × measured variant of the base (fp32 included, at 0 %), from
    metrics/quantization.json; unavailable variants have no point."""
    rows = []
    for model, variants in results.items():
        for variant in [REFERENCE, *(v for v in variants if v != REFERENCE)]:
            entry = variants.get(variant)
            if not isinstance(entry, Mapping) or entry.get("status") != "ok":
                continue  # also skips merged_domains, a nested table per domain
            size, change = entry.get("size_bytes"), entry.get("perplexity_change")
            if size is None or change is None:
                continue
            rows.append(
                {
                    "model": model,
                    "variant": variant,
                    "size_mb": round(size / 1e6, 3),
                    "perplexity_change_pct": round(100 * change, 3),
                }
            )
    return rows


def write_plot(results: Mapping[str, Mapping[str, Any]], path: Path = layout.QUANTIZATION_PLOT) -> Path:
    note = "no variant was measured: every one is unavailable here (reasons in metrics/quantization.json)"
    return plot_data.write_json(path, plot_rows(results), plot_data.QUANTIZATION_COLUMNS, note)
