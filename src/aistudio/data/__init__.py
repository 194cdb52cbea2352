"""Data layer: ingest, quality, PII, safety, dedup, balance, split — pure functions on records."""
