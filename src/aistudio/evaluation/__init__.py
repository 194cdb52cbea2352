"""Evaluation: task metrics, perplexity, behavioural checks, per-form evaluation, gates and the report."""
