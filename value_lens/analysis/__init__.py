"""Analysis: per-token readout, held-out layer sweeps with their position controls, metrics and
text metrics. Builds on core, data and fitting."""
