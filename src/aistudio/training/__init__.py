"""Training: trainer factory, packing, checkpoints, HPO and LoRA adapters."""
