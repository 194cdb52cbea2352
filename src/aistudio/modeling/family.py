"""The two model families behind one interface.

Everything downstream (training, LoRA, quantization, evaluation, serving) asks the family how to
build inputs and labels, which LoRA modules to target and how to generate — never `if smollm2`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PhiConfig,
    PhiForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from aistudio.config import TinyArchitecture
from aistudio.modeling.prompts import Example, prompt_format
from aistudio.modeling.tokenizer import SpecialTokens

IGNORE_INDEX = -100
# Share of max_length reserved for the target when the prompt alone would not fit.
TARGET_SHARE = 0.25


def truncate_middle(ids: Sequence[int], limit: int, keep_tail: int) -> list[int]:
    """Drop tokens from the middle so the instruction head and the response marker both survive."""
    if len(ids) <= limit:
        return list(ids)
    tail = min(keep_tail, limit // 2)
    return list(ids[: limit - tail]) + list(ids[len(ids) - tail :])


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


class ModelFamily(ABC):
    name: ClassVar[str]
    peft_task_type: ClassVar[str]
    special_tokens: ClassVar[SpecialTokens]
    auto_class: ClassVar[Any]
    # Whether the models' forward divides the summed token loss by the Trainer's num_items_in_batch
    # (HF causal LMs do, through `loss_function`); a forward that averages per batch itself must say so,
    # or the Trainer multiplies that mean by the world size (T5's loss reads 2x on 2 processes).
    loss_uses_num_items: ClassVar[bool] = True

    # --- building -------------------------------------------------------------------------------
    @abstractmethod
    def build_tiny(
        self, arch: TinyArchitecture, tokenizer: PreTrainedTokenizerBase, seed: int
    ) -> PreTrainedModel:
        """A random-init model of this family sized by `arch`, its vocabulary from `tokenizer`."""

    # --- inputs ---------------------------------------------------------------------------------
    def token_ids(self, tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
        # Special tokens are added explicitly by each family, the same way for hub and tiny tokenizers.
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_tail(self, tokenizer: PreTrainedTokenizerBase) -> int:
        """Tokens kept from the end of an over-long prompt: the format's answer marker and one before it."""
        return len(self.token_ids(tokenizer, prompt_format(tokenizer).answer_marker)) + 1

    def prompt_overhead(self, tokenizer: PreTrainedTokenizerBase, template: str) -> int:
        return len(self.token_ids(tokenizer, template)) + 2

    @abstractmethod
    def encode(
        self, example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int, loss_on_output_only: bool
    ) -> Encoded | None:
        """Token ids and labels for one example; None when it cannot fit in max_length."""

    @abstractmethod
    def collate(
        self, features: Sequence[Encoded], tokenizer: PreTrainedTokenizerBase
    ) -> dict[str, torch.Tensor]:
        """A padded training batch."""

    # --- generation -----------------------------------------------------------------------------
    @abstractmethod
    def prompt_batch(
        self, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int
    ) -> dict[str, torch.Tensor]:
        """Model inputs for generation from raw prompt strings."""

    @abstractmethod
    def decode_generated(
        self, tokenizer: PreTrainedTokenizerBase, batch: dict[str, torch.Tensor], output: torch.Tensor
    ) -> list[list[int]]:
        """The newly generated token ids of each row of `output`."""

    @torch.no_grad()
    def generate(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        max_new_tokens: int = 32,
        max_prompt_length: int = 384,
        adapter_names: Sequence[str] | None = None,
        **sampling: Any,
    ) -> list[str]:
        """Generate one completion per prompt; `adapter_names` runs a mixed-adapter batch (PEFT)."""
        batch = self.prompt_batch(tokenizer, prompts, max_prompt_length)
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        extra = {"adapter_names": list(adapter_names)} if adapter_names is not None else {}
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            do_sample=bool(sampling.get("temperature")) and sampling.get("do_sample", True),
            **{k: v for k, v in sampling.items() if k != "do_sample" and v is not None},
            **extra,
        )
        return [
            tokenizer.decode(ids, skip_special_tokens=True)
            for ids in self.decode_generated(tokenizer, batch, output)
        ]


def _pad_to(seqs: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    rows = [
        ([value] * (width - len(s)) + list(s)) if left else (list(s) + [value] * (width - len(s)))
        for s in seqs
    ]
    return torch.tensor(rows, dtype=torch.long)


def _mask(seqs: Sequence[Sequence[int]], left: bool = False) -> torch.Tensor:
    return _pad_to([[1] * len(s) for s in seqs], 0, left)


class CausalFamily(ModelFamily):
    """Decoder-only LMs (SmolLM2, Phi-2): prompt + target in one sequence; loss on the target by default."""

    name = "causal"
    peft_task_type = "CAUSAL_LM"
    special_tokens = SpecialTokens(pad="<pad>", eos="<|endoftext|>", unk="<unk>", bos="<|endoftext|>")
    auto_class = AutoModelForCausalLM

    def build_tiny(
        self, arch: TinyArchitecture, tokenizer: PreTrainedTokenizerBase, seed: int
    ) -> PreTrainedModel:
        torch.manual_seed(seed)
        config = PhiConfig(
            vocab_size=len(tokenizer),
            hidden_size=arch.hidden_size,
            intermediate_size=arch.intermediate_size,
            num_hidden_layers=arch.num_layers,
            num_attention_heads=arch.num_heads,
            max_position_embeddings=arch.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attention_dropout=0.0,
        )
        return PhiForCausalLM(config)

    def encode(
        self, example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int, loss_on_output_only: bool
    ) -> Encoded | None:
        prompt = self.token_ids(tokenizer, example.prompt)
        target = self.token_ids(tokenizer, example.target) + [tokenizer.eos_token_id]
        reserved = min(len(target), max(2, int(max_length * TARGET_SHARE)))
        prompt = truncate_middle(prompt, max_length - reserved, self.prompt_tail(tokenizer))
        room = max_length - len(prompt)
        if room < 2:  # the window is too small for any target: nothing left to learn from
            return None
        target = target[:room]
        masked = [IGNORE_INDEX] * len(prompt) if loss_on_output_only else list(prompt)
        # Labels are masked by position, not by pad id, so EOS is learned even where pad == eos.
        return Encoded(prompt + target, masked + target)

    def collate(
        self, features: Sequence[Encoded], tokenizer: PreTrainedTokenizerBase
    ) -> dict[str, torch.Tensor]:
        ids = [f.input_ids for f in features]
        return {
            "input_ids": _pad_to(ids, tokenizer.pad_token_id),
            "attention_mask": _mask(ids),
            "labels": _pad_to([f.labels for f in features], IGNORE_INDEX),
        }

    def prompt_batch(
        self, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int
    ) -> dict[str, torch.Tensor]:
        # Left padding so every prompt ends where generation starts.
        tail = self.prompt_tail(tokenizer)
        ids = [
            truncate_middle(self.token_ids(tokenizer, p), max_length, tail) or [tokenizer.eos_token_id]
            for p in prompts
        ]
        return {
            "input_ids": _pad_to(ids, tokenizer.pad_token_id, left=True),
            "attention_mask": _mask(ids, left=True),
        }

    def decode_generated(
        self, tokenizer: PreTrainedTokenizerBase, batch: dict[str, torch.Tensor], output: torch.Tensor
    ) -> list[list[int]]:
        width = batch["input_ids"].shape[1]
        return [row[width:].tolist() for row in output]


class Seq2SeqFamily(ModelFamily):
    """Encoder-decoder LMs (CodeT5+, T5): prompt → encoder, target → decoder labels."""

    name = "seq2seq"
    peft_task_type = "SEQ_2_SEQ_LM"
    special_tokens = SpecialTokens(pad="<pad>", eos="</s>", unk="<unk>")
    auto_class = AutoModelForSeq2SeqLM
    loss_uses_num_items = False  # T5ForConditionalGeneration: CrossEntropyLoss mean over the batch

    def build_tiny(
        self, arch: TinyArchitecture, tokenizer: PreTrainedTokenizerBase, seed: int
    ) -> PreTrainedModel:
        torch.manual_seed(seed)
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=arch.hidden_size,
            d_kv=arch.hidden_size // arch.num_heads,
            d_ff=arch.intermediate_size,
            num_layers=arch.num_layers,
            num_decoder_layers=arch.num_layers,
            num_heads=arch.num_heads,
            dropout_rate=0.0,
            feed_forward_proj="relu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
        return T5ForConditionalGeneration(config)

    def encode(
        self, example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int, loss_on_output_only: bool
    ) -> Encoded | None:
        source = truncate_middle(
            self.token_ids(tokenizer, example.prompt), max_length - 1, self.prompt_tail(tokenizer)
        )
        source.append(tokenizer.eos_token_id)
        target = self.token_ids(tokenizer, example.target)[: max_length - 1] + [tokenizer.eos_token_id]
        return Encoded(source, target)

    def collate(
        self, features: Sequence[Encoded], tokenizer: PreTrainedTokenizerBase
    ) -> dict[str, torch.Tensor]:
        ids = [f.input_ids for f in features]
        return {
            "input_ids": _pad_to(ids, tokenizer.pad_token_id),
            "attention_mask": _mask(ids),
            "labels": _pad_to([f.labels for f in features], IGNORE_INDEX),
        }

    def prompt_batch(
        self, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int
    ) -> dict[str, torch.Tensor]:
        tail = self.prompt_tail(tokenizer)
        ids = [
            truncate_middle(self.token_ids(tokenizer, p), max_length - 1, tail) + [tokenizer.eos_token_id]
            for p in prompts
        ]
        return {"input_ids": _pad_to(ids, tokenizer.pad_token_id), "attention_mask": _mask(ids)}

    def decode_generated(
        self, tokenizer: PreTrainedTokenizerBase, batch: dict[str, torch.Tensor], output: torch.Tensor
    ) -> list[list[int]]:
        return [row.tolist() for row in output]


FAMILIES: dict[str, ModelFamily] = {"causal": CausalFamily(), "seq2seq": Seq2SeqFamily()}


def family_for(name: str) -> ModelFamily:
    return FAMILIES[name]
