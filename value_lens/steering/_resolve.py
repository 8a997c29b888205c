"""Argument resolution for :mod:`value_lens.steering.steer`: strengths, directions and hook names."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float

from value_lens.core.conventions import resolve_layer
from value_lens.errors import InputError, LayerError

__all__ = ["POINTS", "check_alpha", "direction", "hook_name", "per_layer"]

POINTS: dict[str, str] = {
    "resid_post": "blocks.{layer}.hook_resid_post",
    "resid_pre": "blocks.{next}.hook_resid_pre",  # the same stream, at block layer+1's input
}


def check_alpha(alpha: float, what: str = "alpha") -> float:
    """``alpha`` as a finite float, or an :class:`InputError` naming ``what``."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {alpha!r}") from None
    if not math.isfinite(a):
        raise InputError(f"{what} is {a}; steering strengths must be finite numbers")
    return a


def direction(axis: Any, layer: int, normalize: bool) -> Float[torch.Tensor, " d"]:
    """The steering direction at ``layer`` from a ValueAxis or a tensor ``[d]``/``[L, d]``."""
    if isinstance(axis, torch.Tensor):
        v = axis.detach().to("cpu", torch.float32)
        if v.ndim == 2:
            v = v[resolve_layer(layer, v.shape[0])]
        elif v.ndim != 1:
            raise InputError(
                f"a direction tensor must be [d_model] or [n_layers, d_model], got {tuple(v.shape)}"
            )
        if not bool(torch.isfinite(v).all()):
            raise InputError("the direction contains NaN or Inf")
        if normalize:
            n = float(v.norm())
            if n == 0:
                raise InputError("the direction is zero; it cannot be normalised")
            v = v / n
        return v
    if not hasattr(axis, "direction"):
        raise InputError(
            f"axis must be a ValueAxis or a direction tensor, got {type(axis).__name__}"
        )
    resolve_layer(layer, axis.n_layers)
    return axis.direction(layer, unit=normalize).to(torch.float32)


def hook_name(point: str, layer: int, n_layers: int | None) -> str:
    """The hook carrying value_lens ``layer`` (block ``layer``'s output) at ``point``.

    ``resid_pre`` is the next block's input, so the last layer has none (checked when
    ``n_layers`` is known).

    >>> hook_name("resid_pre", 3, 8), hook_name("resid_post", 3, 8)
    ('blocks.4.hook_resid_pre', 'blocks.3.hook_resid_post')
    """
    if point == "resid_pre" and n_layers is not None and layer + 1 >= n_layers:
        raise LayerError(
            f"point='resid_pre' at layer {layer} hooks the input of block {layer + 1}, but the "
            f"model has {n_layers} blocks; use point='resid_post' (the same residual stream)"
        )
    return POINTS[point].format(layer=layer, next=layer + 1)


def per_layer(alpha: Any, layers: list[int]) -> list[float]:
    """One checked alpha per layer from a number, a sequence or a ``{layer: alpha}`` map."""
    if isinstance(alpha, Mapping):
        missing = [layer for layer in layers if layer not in alpha]
        if missing:
            raise InputError(f"alpha has no value for layers {missing}; give one per layer")
        return [check_alpha(alpha[layer]) for layer in layers]
    if isinstance(alpha, Sequence | torch.Tensor) and not isinstance(alpha, str):
        vals = list(alpha.tolist() if isinstance(alpha, torch.Tensor) else alpha)
        if len(vals) != len(layers):
            raise InputError(f"got {len(vals)} alphas for {len(layers)} layers {layers}")
        return [check_alpha(x) for x in vals]
    return [check_alpha(alpha)] * len(layers)
