"""Model families (causal | seq2seq), tokenizer, tiny offline builders and loading."""
