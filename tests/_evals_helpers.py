"""Shared helpers for the evaluation-suite tests: random axes and an HF cosine oracle."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from value_lens import ValueAxis
from value_lens.core.model import d_model, model_id, n_layers

THINK_OFF = "<think>\n\n</think>\n\n"
"""The empty think block Qwen3 puts before a reply when thinking is off."""


def random_axis(model, seed: int = 0) -> ValueAxis:
    gen = torch.Generator().manual_seed(seed)
    return ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=gen), model_id=model_id(model)
    )


def turn(role: str, content: str) -> str:
    """One ChatML turn as Qwen3 renders it (written by hand, not by a template)."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def hf_cosines(tiny_hf, text: str, axis: ValueAxis, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-token cos(h, v) from HF ``hidden_states[layer + 1]``, token character offsets)."""
    hf, tok = tiny_hf
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor(enc["input_ids"])[None]
    with torch.no_grad():
        hs = hf(ids, output_hidden_states=True).hidden_states
    assert layer + 1 < len(hs) - 1, (
        "HF's last hidden state is after the final norm; use a lower layer"
    )
    h = hs[layer + 1][0].double()
    v = axis.direction(layer, unit=False).double()
    cos = F.cosine_similarity(h, v[None], dim=-1).numpy()
    return cos, np.asarray(enc["offset_mapping"])


def hf_span_mean(tiny_hf, text: str, start: int, end: int, axis: ValueAxis, layer: int) -> float:
    """Mean HF cosine over the tokens overlapping characters ``[start, end)`` of ``text``."""
    cos, offs = hf_cosines(tiny_hf, text, axis, layer)
    inside = (offs[:, 0] < end) & (offs[:, 1] > start)
    assert inside.any()
    return float(cos[inside].mean())


def has_generate() -> bool:
    try:
        import value_lens.core.generate  # noqa: F401
    except ImportError:
        return False
    return True
