"""The one set of jaxtyping dimension names used in value_lens's annotations.

A name means the same size wherever it appears in one signature (jaxtyping checks that under
the test suite's import hook); ``_T`` is a per-item length that is not checked across items,
``...`` any leading dimensions. ``tests/project/test_shapes.py`` fails on any other name.

Example:
    >>> DIMS["D"]
    'd_model, the residual stream width'
"""

from __future__ import annotations

__all__ = ["DIMS", "EXTRA"]

DIMS: dict[str, str] = {
    "B": "batch (sequences in a forward pass)",
    "T": "positions of one sequence",
    "N": "tokens or items pooled across sequences",
    "L": "layers the object holds (every model layer, or the selected ones)",
    "D": "d_model, the residual stream width",
    "G": "groups (criteria)",
    "C": "classes (token labels)",
    "K": "directions, basis columns or other counted rows",
    "F": "features (e.g. the position features an eraser removes)",
    "S": "draws (random or shuffled repeats)",
    "V": "vocabulary",
}
"""Name -> meaning."""

EXTRA: frozenset[str] = frozenset({"_T", "..."})
"""Allowed besides :data:`DIMS` (and literal sizes such as ``2``)."""
