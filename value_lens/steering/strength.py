"""Steering strength units and their calibration.

A steering strength ``alpha`` is given in one of three units:

* ``"raw"``: residual-stream units; the hook adds ``alpha * v_hat``.
* ``"percent"``: percent of the layer's mean residual L2 norm. The paper's ``alpha = 25`` at
  layer 21 of Qwen3-8B is 8.4% of that layer's norm, so ``alpha=8.4, unit="percent"`` there.
* ``"sd"``: standard deviations of the projection onto the unit direction.

:class:`Calibration` stores the per-layer scales (mean norm, projection sd) for one model, is
saved as JSON, and comes from :func:`calibrate`: from an ``ActivationStats`` (its
``mean_norm()``), from the scales a ``ValueAxis`` stored when it was fitted, or from a quick
forward pass over supplied texts. In the text pass the first token of each text is skipped:
attention-sink tokens carry residual norms tens of times larger than the rest and would
dominate the mean.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from value_lens.core.conventions import resolve_layers
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.io import atomic_write_text
from value_lens.core.model import model_device, model_id, n_layers, to_token_ids
from value_lens.core.protocols import HookedModel
from value_lens.errors import CalibrationError, InputError

__all__ = ["UNITS", "Calibration", "Unit", "axis_calibration", "calibrate", "to_raw"]

Unit = Literal["raw", "percent", "sd"]
UNITS: tuple[Unit, ...] = get_args(Unit)


def _finite_dict(values: Mapping[int, float]) -> dict[int, float]:
    return {int(k): float(v) for k, v in values.items() if math.isfinite(float(v)) and v > 0}


@dataclass(frozen=True)
class Calibration:
    """Per-layer scales that convert percent / sd strengths to raw units.

    Attributes:
        model_id: the model the scales were measured on.
        resid_norm: layer -> mean residual L2 norm (the 100% of a percent strength).
        proj_std: layer -> sd of the projection on the axis's unit direction (1 sd).
        source: where the numbers came from (``"stats"``, ``"axis"``, ``"texts"``).
        n_tokens: tokens the scales were measured on (0 if unknown).
    """

    model_id: str = ""
    resid_norm: dict[int, float] = field(default_factory=dict)
    proj_std: dict[int, float] = field(default_factory=dict)
    source: str = ""
    n_tokens: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "resid_norm", _finite_dict(self.resid_norm))
        object.__setattr__(self, "proj_std", _finite_dict(self.proj_std))

    def scale(self, layer: int, unit: Unit) -> float:
        """Raw residual units per 1 unit of ``unit`` at ``layer``.

        >>> Calibration(resid_norm={3: 200.0}).scale(3, "percent")
        2.0
        """
        if unit == "raw":
            return 1.0
        table, what = (
            (self.resid_norm, "mean residual norm")
            if unit == "percent"
            else (self.proj_std, "projection sd")
            if unit == "sd"
            else ({}, "")
        )
        if unit not in UNITS:
            raise InputError(f"unknown strength unit {unit!r}; use one of {UNITS}")
        if layer not in table:
            raise CalibrationError(
                f"no {what} calibrated for layer {layer} (calibrated layers: "
                f"{sorted(table) or 'none'}); run value_lens.calibrate(model, axis, texts=...) "
                "or calibrate(stats=...) for that layer and pass calibration=..., "
                "or use unit='raw'"
            )
        return (table[layer] / 100.0) if unit == "percent" else table[layer]

    def merged(self, other: Calibration) -> Calibration:
        """These scales, with ``other`` filling layers this one lacks."""
        return Calibration(
            self.model_id or other.model_id,
            {**other.resid_norm, **self.resid_norm},
            {**other.proj_std, **self.proj_std},
            "+".join(s for s in (self.source, other.source) if s),
            max(self.n_tokens, other.n_tokens),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "resid_norm": {str(k): v for k, v in sorted(self.resid_norm.items())},
            "proj_std": {str(k): v for k, v in sorted(self.proj_std.items())},
            "source": self.source,
            "n_tokens": self.n_tokens,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        try:
            return cls(
                str(d.get("model_id", "")),
                {int(k): float(v) for k, v in d.get("resid_norm", {}).items()},
                {int(k): float(v) for k, v in d.get("proj_std", {}).items()},
                str(d.get("source", "")),
                int(d.get("n_tokens", 0)),
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise InputError(f"not a Calibration dict ({e}); save one with Calibration.save") from e

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically; returns the path."""
        p = Path(path)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=2))
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text()))


def axis_calibration(axis: Any) -> Calibration:
    """The scales a ValueAxis stored when it was fitted (NaN entries dropped)."""
    layers = range(axis.n_layers)
    return Calibration(
        axis.model_id,
        {i: float(axis.resid_norm[i]) for i in layers},
        {i: float(axis.proj_std[i]) for i in layers},
        "axis",
    )


def calibrate(
    model: HookedModel | None = None,
    axis: Any = None,
    *,
    stats: Any = None,
    texts: Iterable[str] | None = None,
    layers: int | Iterable[int] | None = None,
    max_tokens: int = 512,
) -> Calibration:
    """Measure strength scales from ``stats``, ``texts`` (a quick pass) or the ``axis``.

    Sources are combined, the earlier winning per layer: texts, then stats, then the axis's
    stored ``resid_norm``/``proj_std``. ``proj_std`` from texts needs ``axis``.

    Args:
        model: needed for ``texts``.
        axis: a ValueAxis (its stored scales, and the direction for the projection sd).
        stats: an ``ActivationStats``; its ``turn_mean_norm()`` per collected layer (placebo
            turns left out).
        texts: texts for a quick forward pass (first token of each skipped).
        layers: layers to measure from texts (default: the axis's fitted layers, else all).
        max_tokens: per-text token cap for the quick pass.

    >>> from value_lens.testing import tiny_qwen3
    >>> cal = calibrate(tiny_qwen3(), texts=["one small text", "and another one"])
    >>> sorted(cal.resid_norm), cal.source
    ([0, 1], 'texts')
    """
    if stats is None and texts is None and axis is None:
        raise CalibrationError(
            "nothing to calibrate from; pass stats=ActivationStats, texts=[...] with a model, "
            "or an axis fitted with value_lens (it stores resid_norm/proj_std)"
        )
    out = Calibration()
    if texts is not None:
        if model is None:
            raise InputError("calibrate(texts=...) needs the model to run them through")
        out = _from_texts(model, axis, list(texts), layers, max_tokens)
    if stats is not None:
        norms = stats.turn_mean_norm()
        mid = str(stats.meta.get("model_id", "")) if hasattr(stats, "meta") else ""
        s = Calibration(
            mid,
            {int(layer): float(norms[i]) for i, layer in enumerate(stats.layers)},
            {},
            "stats",
            int(stats.n_tokens),
        )
        out = out.merged(s) if out.source else s
    if axis is not None:
        a = axis_calibration(axis)
        out = out.merged(a) if out.source else a
    return out


def _from_texts(
    model: HookedModel, axis: Any, texts: list[str], layers: Any, max_tokens: int
) -> Calibration:
    if not texts:
        raise InputError("calibrate(texts=...) got no texts")
    if layers is None and axis is not None and axis.layers:
        layers = list(axis.layers)
    sel = resolve_layers(layers, n_layers(model))
    if axis is not None:
        axis.check_compatible(model)
    dev = model_device(model)
    norm_sum = dict.fromkeys(sel, 0.0)
    p_sum = dict.fromkeys(sel, 0.0)
    p_sq = dict.fromkeys(sel, 0.0)
    units = {
        layer: axis.direction(layer).to(dev, torch.float64) if axis is not None else None
        for layer in sel
    }
    count = 0

    def reader(layer: int, resid: torch.Tensor) -> None:
        h = resid[0, 1:].to(torch.float64)
        norm_sum[layer] += float(h.norm(dim=-1).sum())
        u = units[layer]
        if u is not None:
            p = h @ u
            p_sum[layer] += float(p.sum())
            p_sq[layer] += float((p * p).sum())

    for text in texts:
        ids = to_token_ids(model, text)[:max_tokens]
        if ids.numel() < 2:
            continue
        run_resid_hooks(model, ids[None].to(dev), dict.fromkeys(sel, reader))
        count += ids.numel() - 1
    if count == 0:
        raise CalibrationError(
            "the calibration texts have no tokens past the first; pass longer texts"
        )
    sd: dict[int, float] = {}
    if axis is not None and count > 1:
        for layer in sel:
            mean = p_sum[layer] / count
            var = max(p_sq[layer] / count - mean * mean, 0.0) * count / (count - 1)
            sd[layer] = math.sqrt(var)
    return Calibration(
        model_id(model), {layer: norm_sum[layer] / count for layer in sel}, sd, "texts", count
    )


def to_raw(alpha: float, layer: int, unit: Unit, calibration: Calibration | None) -> float:
    """``alpha`` in ``unit`` at ``layer`` converted to raw residual units.

    >>> to_raw(10.0, 20, "percent", Calibration(resid_norm={20: 250.0}))
    25.0

    Raises:
        CalibrationError: a percent/sd strength with no calibration for that layer.
    """
    if unit not in UNITS:
        raise InputError(f"unknown strength unit {unit!r}; use one of {UNITS}")
    if unit == "raw":
        return float(alpha)
    if calibration is None:
        raise CalibrationError(
            f"a {unit!r} strength needs a calibration: pass calibration=value_lens.calibrate("
            "model, axis, texts=[...]) (or stats=...), use an axis fitted with value_lens "
            "(it stores resid_norm/proj_std), or give alpha in unit='raw'"
        )
    return float(alpha) * calibration.scale(layer, unit)
