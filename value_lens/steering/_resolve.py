"""The door of :mod:`value_lens.steering.steer`: an axis and strengths become per-layer values.

:func:`at_layers` is the one place that tells a ValueAxis from a direction tensor ``[d_model]`` /
``[n_layers, d_model]``: it checks the axis against the model, resolves the layers, and returns
``{layer: direction}`` plus the calibration (the one given, with the axis's stored scales filling
the gaps). :func:`~value_lens.core.conventions.hook_name` (the layer convention's, re-exported
here) fixes where a layer is hooked and :func:`raw_strength` converts a strength to raw residual
units; :func:`value_lens.steering.operator.resolve_operator` applies it to every strength of an
operator. Hook functions and the context manager only read these values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float

from value_lens.core.conventions import POINTS, Point, hook_name, resolve_layer, resolve_layers
from value_lens.core.model import d_model as model_d_model
from value_lens.core.model import n_layers as model_n_layers
from value_lens.core.protocols import HookedModel
from value_lens.errors import AxisMismatchError, InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.strength import UNITS, Calibration, Unit, axis_calibration, to_raw

__all__ = [
    "POINTS",
    "AxisAtLayers",
    "AxisLike",
    "Point",
    "at_layers",
    "check_alpha",
    "check_options",
    "hook_name",
    "per_layer",
    "raw_strength",
    "resolve_alpha_keys",
]


@dataclass(frozen=True)
class AxisAtLayers:
    """An axis converted at the door: one float32 direction per resolved layer.

    Attributes:
        directions: layer -> direction ``[d_model]`` (unit length when normalised).
        calibration: scales for percent/sd strengths (given, then the axis's own), or None.
        n_layers: the depth layers were resolved against (None for a bare ``[d]`` vector
            without a model).
    """

    directions: dict[int, Float[torch.Tensor, " D"]]
    calibration: Calibration | None
    n_layers: int | None


AxisLike = ValueAxis | torch.Tensor | AxisAtLayers
"""A fitted :class:`ValueAxis`, a direction tensor ``[d_model]`` or ``[n_layers, d_model]``, or
an axis already converted by :func:`at_layers` (reused as it is, e.g. across a dose grid)."""


def check_options(unit: object, point: object) -> None:
    """Friendly errors for untyped callers (the CLI, notebooks) before anything else runs."""
    for value, allowed, what in (
        (unit, UNITS, "strength unit"),
        (point, tuple(POINTS), "hook point"),
    ):
        if value not in allowed:
            raise InputError(f"unknown {what} {value!r}; use one of {allowed}")


def check_alpha(alpha: object, what: str = "alpha") -> float:
    """``alpha`` as a finite float, or an :class:`InputError` naming ``what``."""
    try:
        a = float(alpha)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {alpha!r}") from None
    if not math.isfinite(a):
        raise InputError(f"{what} is {a}; steering strengths must be finite numbers")
    return a


def per_layer(
    alpha: float | Sequence[float] | Mapping[int, float] | torch.Tensor, layers: list[int]
) -> list[float]:
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


def _layers(layers: int | Sequence[int], n: int | None) -> list[int]:
    if isinstance(layers, Mapping):
        raise InputError("layers must be an int or a list of ints; put per-layer values in alpha")
    if n is not None:
        return resolve_layers(layers, n)
    chosen = [layers] if isinstance(layers, int) else list(layers)
    for layer in chosen:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise InputError(f"layer must be an int, got {layer!r}")
        if layer < 0:
            raise InputError(
                "a negative layer needs a ValueAxis, an [n_layers, d] tensor or a model to "
                "resolve it"
            )
    return sorted(set(chosen))


def at_layers(
    axis: AxisLike,
    layers: int | Sequence[int],
    *,
    model: HookedModel | None = None,
    normalize: bool = True,
    calibration: Calibration | None = None,
    check_model_id: bool = True,
) -> AxisAtLayers:
    """Convert ``axis`` once: checked against ``model``, one direction per resolved layer.

    >>> at = at_layers(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), -1)
    >>> at.directions, at.n_layers
    ({1: tensor([0., 1.])}, 2)
    """
    if isinstance(axis, AxisAtLayers):  # converted before: pick the layers, merge calibrations
        chosen = _layers(layers, axis.n_layers)
        missing = [layer for layer in chosen if layer not in axis.directions]
        if missing:
            raise InputError(
                f"the converted axis holds layers {sorted(axis.directions)}, not {missing}"
            )
        cal = axis.calibration
        if calibration is not None:
            cal = calibration if cal is None else calibration.merged(cal)
        return AxisAtLayers({layer: axis.directions[layer] for layer in chosen}, cal, axis.n_layers)
    n = None if model is None else model_n_layers(model)
    if isinstance(axis, torch.Tensor):
        v = axis.detach().to("cpu", torch.float32)
        if v.ndim not in (1, 2):
            raise InputError(
                f"a direction tensor must be [d_model] or [n_layers, d_model], got {tuple(v.shape)}"
            )
        if model is not None and v.shape[-1] != model_d_model(model):
            raise AxisMismatchError(
                f"the direction has d_model {v.shape[-1]} but the model has "
                f"{model_d_model(model)}; use a direction from this model"
            )
        if v.ndim == 2 and n is not None and v.shape[0] != n:
            raise AxisMismatchError(
                f"the direction tensor has {v.shape[0]} rows but the model has {n} blocks; "
                "pass one row per layer, or a single [d_model] vector"
            )
        n = v.shape[0] if v.ndim == 2 else n
        if not bool(torch.isfinite(v).all()):
            raise InputError("the direction contains NaN or Inf")
        chosen = _layers(layers, n)
        rows = {layer: v[layer] if v.ndim == 2 else v for layer in chosen}
        if normalize:
            rows = {layer: _unit(r) for layer, r in rows.items()}
        return AxisAtLayers(rows, calibration, n)
    if not isinstance(axis, ValueAxis):
        raise InputError(
            f"axis must be a ValueAxis or a direction tensor, got {type(axis).__name__}"
        )
    if model is not None:
        axis.check_compatible(model, check_model_id=check_model_id)
    chosen = _layers(layers, axis.n_layers)
    rows = {layer: axis.direction(layer, unit=normalize).to(torch.float32) for layer in chosen}
    stored = axis_calibration(axis)
    cal = stored if calibration is None else calibration.merged(stored)
    return AxisAtLayers(rows, cal, axis.n_layers)


def _unit(v: Float[torch.Tensor, " D"]) -> Float[torch.Tensor, " D"]:
    norm = float(v.norm())
    if norm == 0:
        raise InputError("the direction is zero; it cannot be normalised")
    return v / norm


def raw_strength(alpha: float, layer: int, *, unit: Unit, calibration: Calibration | None) -> float:
    """``alpha`` in raw residual units at ``layer`` (raw passes through)."""
    a = check_alpha(alpha)
    if unit == "raw":
        return a
    return check_alpha(to_raw(a, layer, unit, calibration), "the converted alpha")


def resolve_alpha_keys(
    alpha: float | Sequence[float] | Mapping[int, float], n_layers: int | None
) -> float | Sequence[float] | Mapping[int, float]:
    """A ``{layer: alpha}`` map with negative layers resolved (other forms unchanged)."""
    if not isinstance(alpha, Mapping) or n_layers is None:
        return alpha
    return {resolve_layer(k, n_layers): v for k, v in alpha.items()}
