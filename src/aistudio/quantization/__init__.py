"""Quantized variants of a saved model, and what each costs and saves against the fp32 original.

Four variants (names in config.QuantizedVariant), each a standard HF directory (safetensors weights,
the quantization config in config.json, tokenizer, model card) that `from_pretrained` reloads
without a recipe:

    4bit              bitsandbytes NF4, double-quantised, compute in `quantization.compute_dtype`
    8bit              bitsandbytes LLM.int8
    dynamic           torchao int8 dynamic activations + int8 per-channel weights
    int8_weight_only  torchao int8 per-channel weights, activations in float

Whether a variant works is probed, not assumed: the model is quantised, saved, reloaded and
run. A backend that fails any step on this machine (not installed, no kernel for the
hardware, a layer width bitsandbytes cannot tile) makes the variant `unavailable` with the reason;
the stage goes on with the others and the reason is written where the weights would have been.

Modules, lowest first: `variants` (the names, where each lives, what was recorded; no torch),
`recipes` (how each variant is built), `runtime` (device placement and backend log noise),
`quantize` (quantise, save, reload, run; load one back), `measurement` (size, load time, latency,
tokens/s, perplexity), `lora` (LoRA adapters on a quantized base), `stage` (what quantize_models
runs) and `plot` (the size vs perplexity chart).
"""
