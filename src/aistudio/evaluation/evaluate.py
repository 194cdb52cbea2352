"""Evaluate one form of one model on one domain: bounded, batched generation plus perplexity.

A *form* (results.FORMS) is one way of serving a base model. The caller builds a `generate_fn`
and an `nll_fn` per form (make_generate_fn, make_nll_fn below); `evaluate_form` only measures.

Latency is per *batch*: each timed call generates a whole batch, and every request in it waits
for all of it. Dividing the batch time by its size would report a per-request latency that no
request experiences, so p50/p95 are over batch times and throughput is tokens over total time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from aistudio.config import EvaluationConfig
from aistudio.errors import UserError
from aistudio.evaluation.behavioural import SHOWN_CHARS, GenerateFn
from aistudio.evaluation.metrics import PASS_AT_1, PERPLEXITY, domain_metrics, latency_summary, sample_scores
from aistudio.evaluation.perplexity import encoded_nll, is_encoder_decoder, mean_nll, perplexity
from aistudio.evaluation.results import FORMS, FormResult
from aistudio.evaluation.sandbox import has_tests, pass_at_1
from aistudio.modeling.family import Encoded, ModelFamily
from aistudio.modeling.prompts import PromptFormat
from aistudio.training.adapters import BASE_ALIASES, AdapterSet

Record = Mapping[str, Any]
# Where a domain's answer is complete for scoring: an instruct model closes its code block and then
# explains it for as long again; pass@1 runs the block, so the explanation is not generated.
STOP_STRINGS: dict[str, tuple[str, ...]] = {"code": ("\n```\n",)}
NllFn = Callable[[Sequence[Record]], tuple[float, int]]
TokenCounter = Callable[[str], int]


def _batches(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _token_counts(outputs: Sequence[str], count_tokens: TokenCounter | None) -> list[int]:
    if isinstance(outputs, Completions):
        return outputs.new_tokens
    if count_tokens is None:
        raise ValueError("generate_fn returned plain strings: pass count_tokens, or return Completions")
    return [count_tokens(o) for o in outputs]


def evaluate_form(
    generate_fn: GenerateFn,
    nll_fn: NllFn,
    records: Sequence[Record],
    domain: str,
    cfg: EvaluationConfig,
    *,
    form: str,
    fmt: PromptFormat,
    count_tokens: TokenCounter | None = None,
    n_examples: int = 3,
    warm_up: bool = True,
) -> FormResult:
    """Task metrics, perplexity and latency of one form on the first cfg.max_samples_per_domain records.

    Records that carry unit tests (`tests`, `entry_point`: the code domain) also get pass@1, their
    completions run against the tests in the sandbox (cfg.sandbox).

    `generate_fn` must already carry cfg.max_new_tokens (make_generate_fn does); it is called once
    untimed on the first prompt, so one-time costs (allocation, lazy init) stay out of p95 (skip it
    with `warm_up=False` for a model an earlier form already ran), then once per batch of
    cfg.batch_size prompts. Generated tokens come from the Completions it
    returns; a generate_fn returning plain strings needs `count_tokens` instead. Perplexity is
    over the same bounded records' reference targets. `fmt` is the model's prompt format
    (`prompt_format(tokenizer)`): records become the prompts the model was trained on.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form '{form}'; expected one of {list(FORMS)}")
    records = list(records[: cfg.max_samples_per_domain])
    if not records:
        raise UserError(f"no test records for domain '{domain}': nothing to evaluate the {form} form on")
    strays = sorted({str(r["domain"]) for r in records if r.get("domain") and r["domain"] != domain})
    if strays:
        raise ValueError(f"records for domain '{domain}' include other domain(s) {strays}")
    examples = [fmt.example(r) for r in records]
    prompts = [e.prompt for e in examples]
    references = [e.target for e in examples]

    if warm_up:
        generate_fn(prompts[:1])  # untimed
    predictions: list[str] = []
    tokens: list[int] = []
    seconds: list[float] = []
    for batch in _batches(prompts, cfg.batch_size):
        start = time.perf_counter()
        outputs = generate_fn(batch)
        seconds.append(time.perf_counter() - start)
        if len(outputs) != len(batch):
            raise ValueError(f"generate_fn returned {len(outputs)} completion(s) for {len(batch)} prompt(s)")
        predictions += outputs
        tokens += _token_counts(outputs, count_tokens)

    nll, n_tokens = nll_fn(records)
    metrics = {
        PERPLEXITY: perplexity(nll),
        "nll": nll,
        "nll_tokens": n_tokens,
        **latency_summary(seconds, tokens),
        "mean_new_tokens": sum(tokens) / len(tokens),
        **domain_metrics(domain, predictions, references),
    }
    outcomes: list[str | None] = [None] * len(records)
    scores = sample_scores(domain, predictions, references)
    if any(has_tests(r) for r in records):
        executed, results = pass_at_1(predictions, records, cfg.sandbox)
        metrics.update(executed)
        outcomes = [r.outcome if r else None for r in results]
        scores[PASS_AT_1] = [float(r.passed) for r in results if r is not None]
    shown = [
        {"prompt": p[-SHOWN_CHARS:], "reference": r[:SHOWN_CHARS], "prediction": o[:SHOWN_CHARS]}
        | ({"tests": outcome} if outcome else {})
        for p, r, o, outcome in list(zip(prompts, references, predictions, outcomes, strict=True))[
            :n_examples
        ]
    ]
    return FormResult(form, domain, len(records), metrics, shown, scores)


# --- generation that counts its tokens -------------------------------------------------------------


class Completions(list[str]):
    """Completion texts that also carry how many tokens each one took to generate.

    A plain list of strings to anyone who only wants text (behavioural checks, metrics).
    """

    def __init__(self, texts: Sequence[str], new_tokens: Sequence[int]) -> None:
        if len(texts) != len(new_tokens):
            raise ValueError(f"{len(texts)} completion(s) with {len(new_tokens)} token count(s)")
        super().__init__(texts)
        self.new_tokens = list(new_tokens)


def _generated_token_count(ids: Sequence[int], eos_token_id: int | None) -> int:
    # Up to and including the first EOS: a row that stops early is padded to the batch's longest.
    # Not "non-pad tokens": an untrained model may well generate the pad id itself.
    for position, token in enumerate(ids):
        if token == eos_token_id:
            return position + 1
    return len(ids)


@torch.no_grad()
def generate_completions(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    prompts: Sequence[str],
    max_new_tokens: int,
    max_prompt_length: int = 384,
    stop_strings: Sequence[str] = (),
) -> Completions:
    """Greedy completions exactly as ModelFamily.generate makes them, with their token counts.

    Decoded text cannot be re-tokenized into the count reliably (a byte-level BPE model can emit
    half a UTF-8 character, which decodes to U+FFFD: one token becomes three), so the ids are
    counted before decoding. A row also stops at any of `stop_strings` (kept in its text).
    """
    batch = family.prompt_batch(tokenizer, prompts, max_prompt_length)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    stopping = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    output = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        do_sample=False,
        **stopping,
    )
    rows = family.decode_generated(tokenizer, batch, output)
    # An encoder-decoder's rows start with the decoder start token, which was given, not generated.
    skip = 1 if is_encoder_decoder(model) else 0
    return Completions(
        [tokenizer.decode(ids, skip_special_tokens=True) for ids in rows],
        [_generated_token_count(ids[skip:], tokenizer.eos_token_id) for ids in rows],
    )


# --- closures the caller builds per form ----------------------------------------------------------


def _plain_model(model: Any, adapter: str | None) -> Any:
    if adapter is not None and adapter not in BASE_ALIASES:
        raise ValueError(f"adapter '{adapter}' needs an AdapterSet; got a plain {type(model).__name__}")
    return model.eval()


def make_generate_fn(
    model_or_adapter_set: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    adapter: str | None,
    max_new_tokens: int,
    max_prompt_length: int = 384,
    stop_strings: Sequence[str] = (),
) -> GenerateFn:
    """Greedy Completions from a model, or from an AdapterSet with `adapter` (None/'base': bare base).

    Each call selects its adapter first, so closures over one AdapterSet can be interleaved.
    """
    if isinstance(model_or_adapter_set, AdapterSet):
        adapters = model_or_adapter_set

        def generate_with_adapter(prompts: list[str]) -> list[str]:
            adapters.use(adapter)
            return generate_completions(
                adapters.model, tokenizer, family, prompts, max_new_tokens, max_prompt_length, stop_strings
            )

        return generate_with_adapter
    model = _plain_model(model_or_adapter_set, adapter)

    def generate(prompts: list[str]) -> list[str]:
        return generate_completions(
            model, tokenizer, family, prompts, max_new_tokens, max_prompt_length, stop_strings
        )

    return generate


def make_nll_fn(
    model_or_adapter_set: Any,
    tokenizer: PreTrainedTokenizerBase,
    family: ModelFamily,
    adapter: str | None,
    batch_size: int,
    max_length: int,
    encoded: Sequence[Encoded | None] | None = None,
) -> NllFn:
    """records → (mean NLL, target tokens) under the model, or under the AdapterSet's `adapter`.

    `encoded`: the token ids of exactly the records the function will be given, in order (None where
    one did not fit), read from the feature store instead of encoding the records again.
    """

    def measure(target: Any, records: Sequence[Record]) -> tuple[float, int]:
        if encoded is None:
            return mean_nll(target, tokenizer, family, records, batch_size, max_length)
        if len(encoded) != len(records):
            raise ValueError(f"{len(records)} record(s) given, {len(encoded)} encoded for them")
        return encoded_nll(target, tokenizer, family, [e for e in encoded if e is not None], batch_size)

    if isinstance(model_or_adapter_set, AdapterSet):
        adapters = model_or_adapter_set

        def nll_with_adapter(records: Sequence[Record]) -> tuple[float, int]:
            adapters.use(adapter)
            return measure(adapters.model, records)

        return nll_with_adapter
    model = _plain_model(model_or_adapter_set, adapter)

    def nll(records: Sequence[Record]) -> tuple[float, int]:
        return measure(model, records)

    return nll
