"""Byte-level BPE tokenizers trained on our own data, saved as standard HF tokenizer directories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast


@dataclass(frozen=True)
class SpecialTokens:
    pad: str
    eos: str
    unk: str
    bos: str | None = None

    def ordered(self) -> list[str]:
        # Order fixes ids: pad first so seq2seq models get pad_token_id 0 like T5.
        return list(dict.fromkeys(t for t in (self.pad, self.eos, self.unk, self.bos) if t is not None))


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, min_frequency: int, special: SpecialTokens
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; any byte sequence stays encodable, so nothing maps to <unk>."""
    core = Tokenizer(models.BPE(unk_token=special.unk))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special.ordered(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=special.pad,
        eos_token=special.eos,
        unk_token=special.unk,
        bos_token=special.bos,
        clean_up_tokenization_spaces=False,
    )
