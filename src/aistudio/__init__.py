"""AI Studio MLOps: raw text to quantized, LoRA-specialised small language models."""

__version__ = "0.1.0"
