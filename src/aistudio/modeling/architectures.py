"""What each supported architecture calls its attention and MLP projections (by `config.model_type`).

`lora.target_modules: family` means "every projection of this architecture": LoRA on all of them
learns a domain in fewer steps than q/v alone, for a small share of extra parameters. Names are
matched by PEFT as module-name suffixes; a name an architecture lacks is harmless as long as one
of the names matches (T5 v1.0 has `wi`, T5 v1.1 and Flan-T5 have `wi_0`/`wi_1`).
"""

from __future__ import annotations

_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_T5_LIKE = ("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo")

LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "llama": _LLAMA_LIKE,  # SmolLM2, Llama 2/3
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),  # Phi-1.5, Phi-2, the tiny causal init
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "t5": _T5_LIKE,  # T5, CodeT5+ 220M, the tiny seq2seq init
    "mt5": _T5_LIKE,
}


def lora_targets(model_type: str) -> tuple[str, ...] | None:
    """The projections LoRA adapts on `model_type`, or None for an architecture not listed here."""
    return LORA_TARGETS.get(model_type)
