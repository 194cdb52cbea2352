"""The feedback loop: served answers and what users said about them become training data.

tokens   signed feedback tokens (any replica can verify one) and the replay guard
store    the JSONL feedback store the server appends to (responses and feedback outcomes)
collect  accepted and corrected pairs of a store → a raw source prepare_data ingests
retrain  snapshot the collected data as a data version, audit the trigger, run the retrain
"""
