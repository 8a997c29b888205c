"""Shared helpers for the evaluation-suite tests."""

from __future__ import annotations

import torch

from value_lens import ValueAxis
from value_lens.model import d_model, model_id, n_layers


def random_axis(model, seed: int = 0) -> ValueAxis:
    gen = torch.Generator().manual_seed(seed)
    return ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=gen), model_id=model_id(model)
    )


def has_generate() -> bool:
    try:
        import value_lens.generate  # noqa: F401
    except ImportError:
        return False
    return True
