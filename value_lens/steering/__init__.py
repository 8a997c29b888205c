"""Steering: hook functions that add, clamp or ablate the axis, KV-cache-correct position masks,
strength units and dose-response grids. Never imports ``evals`` or ``viz``."""
