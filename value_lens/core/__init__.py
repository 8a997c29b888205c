"""Core: load models, the layer convention, chat text with message spans, hook runners, atomic
artifacts, and seeded batched generation. Imports nothing else from value_lens but ``errors``."""
