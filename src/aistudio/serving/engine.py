"""The engine: one loaded bundle served by the iteration-level scheduler, addressed by OpenAI model ids.

What it wires together: the tokenizer and family (prompt → token ids exactly as the model sees
them), the `AdapterPool` (resident adapters, routed per row), the family's `ModelRunner` (forward
passes over a KV cache), the JSON grammars for `response_format`, and the `Scheduler` whose one
worker thread runs every step. Model ids: the base model is `<base>`; every resident adapter is
`<base>:<adapter>` (a bare adapter name and `base` are accepted too, as vLLM and the A/B config use).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aistudio.bundle import LoadedBundle
from aistudio.serving.adapter_sources import Fetched
from aistudio.serving.adapters import AdapterError, AdapterPool, AuditHook, ResidentAdapter
from aistudio.serving.constrained import JsonGrammars
from aistudio.serving.model_runner import CausalRunner, Seq2SeqRunner
from aistudio.serving.scheduler import Scheduler, SchedulerLimits, StepObserver
from aistudio.training.adapters import BASE_ALIASES

# The id separator between base model and adapter in /v1/models: "<base>:<adapter>".
ADAPTER_SEPARATOR = ":"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), where bf16 pays on CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_dtype(setting: str) -> torch.dtype:
    if setting == "auto":
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    return DTYPES[setting]


class GenerationEngine:
    """One base model and its adapters behind the scheduler."""

    def __init__(
        self,
        bundle: LoadedBundle,
        limits: SchedulerLimits,
        served_model_name: str | None = None,
        max_loras: int = 8,
        dtype: str = "float32",
        observer: StepObserver | None = None,
        audit: AuditHook | None = None,
    ) -> None:
        self.bundle = bundle
        self.tokenizer = bundle.tokenizer
        self.family = bundle.family
        self.base_id = served_model_name or bundle.manifest.model
        self.model_name = bundle.manifest.model
        self.created = int(time.time())
        self.dtype = resolve_dtype(dtype)
        model = getattr(bundle.model, "model", bundle.model)  # an AdapterSet's PeftModel, or the model
        if self.dtype != torch.float32:
            model.to(self.dtype)
        hf = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = hf.config
        # Decoder-only models have a hard position limit; T5's relative positions have none.
        self.context_window: int | None = (
            None if config.is_encoder_decoder else getattr(config, "max_position_embeddings", None)
        )
        now = time.time()
        initial = {name: ResidentAdapter(name, f"bundle:{name}", None, now) for name in bundle.adapter_names}
        self.adapters = AdapterPool(model, self.family.peft_task_type, max_loras, initial, audit)
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        if config.is_encoder_decoder:
            columns = 4 * (limits.max_kv_tokens + 1)
            self.runner: Any = Seq2SeqRunner(
                self.adapters.route, limits.max_rows, columns, pad, int(config.decoder_start_token_id)
            )
        else:
            columns = min(self.context_window or limits.max_kv_tokens, limits.max_kv_tokens)
            self.runner = CausalRunner(self.adapters.route, limits.max_rows, columns, pad)
        vocab = hf.get_output_embeddings().weight.shape[0]
        self.grammars = JsonGrammars(self.tokenizer, vocab)
        self.scheduler = Scheduler(
            self.runner,
            self.family.name,
            limits,
            self.decode,
            self.eos_ids(hf),
            self.grammars,
            None if config.is_encoder_decoder else self.score_prompt,
            observer,
        )

    def eos_ids(self, hf: Any) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(hf, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {int(i) for i in ids if i is not None}

    # --- model ids ---------------------------------------------------------------------------------

    def adapter_id(self, adapter: str) -> str:
        return f"{self.base_id}{ADAPTER_SEPARATOR}{adapter}"

    @property
    def adapter_names(self) -> tuple[str, ...]:
        return self.adapters.names

    @property
    def model_ids(self) -> list[str]:
        return [self.base_id, *(self.adapter_id(a) for a in self.adapters.names)]

    def resolve(self, model: str) -> str | None:
        """An id → the adapter it selects (None for the base model); unknown ids → LookupError."""
        if model == self.base_id or model in BASE_ALIASES:
            return None
        base, sep, adapter = model.partition(ADAPTER_SEPARATOR)
        if sep and base == self.base_id and adapter in self.adapters:
            return adapter
        if not sep and model in self.adapters:
            return model
        raise LookupError(model)

    def model_label(self, adapter: str | None) -> str:
        return self.adapter_id(adapter) if adapter else self.base_id

    # --- tokens ------------------------------------------------------------------------------------

    def prompt_ids(self, prompt: str) -> list[int]:
        """Exactly the ids the model will see for `prompt` (the family adds its special tokens)."""
        batch = self.family.prompt_batch(self.tokenizer, [prompt], 1 << 30)
        return batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self.grammars.vocab_size

    # --- worker-thread work --------------------------------------------------------------------------

    @torch.inference_mode()
    def score_prompt(self, ids: list[int], adapter: str | None) -> torch.Tensor:
        """Logits at every position of `ids` (for echo with logprobs), no cache involved."""
        with self.adapters.route([adapter]) as (model, extra):
            return model(input_ids=torch.tensor([ids]), **extra).logits[0].float()

    def load_adapter(self, name: str, fetched: Fetched, caller: str) -> list[str]:
        """Make a verified adapter resident (call it through `scheduler.call`: it changes the model)."""
        verified = fetched.adapter
        if verified.model != self.model_name:
            raise AdapterError(
                "incompatible",
                f"adapter from {verified.source} belongs to base model '{verified.model}', "
                f"this server serves '{self.model_name}'",
            )
        evicted = self.adapters.load(
            name, verified.directory, verified.source, verified.manifest_sha256, caller, time.time()
        )
        if self.dtype != torch.float32 and self.adapters.peft is not None:
            self.adapters.peft.to(self.dtype)
            self.adapters.restack()
        return evicted

    def describe_adapters(self) -> Mapping[str, ResidentAdapter]:
        return {name: self.adapters.info(name) for name in self.adapters.names}
