"""The feature store: each model's tokenized splits, built once by `build_features` and read by training.

A store lives under data/features/<model>/<fingerprint>/, the fingerprint naming everything the token
ids depend on (tokenizer files, prompt format, family, max_length, label masking, the processed
splits). A reader recomputes it for its own tokenizer and settings and refuses a store built for others.
"""
