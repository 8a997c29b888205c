"""The fields of a :class:`~value_lens.fitting.axis.ValueAxis` fitted on statistics: the method's
directions in a full ``[n_layers, d_model]`` table, the strength scales (mean residual norm,
projection sd) and the readout transform, all per layer; and (:func:`restricted_fields`) those
of an axis cut down to some of its layers.

Example:
    >>> import torch
    >>> from value_lens.fitting.stats import ActivationStats
    >>> s = ActivationStats([0], ["g"], [0, 1], torch.tensor([[1, 1]]),
    ...     torch.tensor([[[[0.0, 0.0], [3.0, 4.0]]]]), torch.tensor([[[1.0, 5.0]]]))
    >>> f = fitted_fields(s, "mean_diff", 2, {})
    >>> f["directions"].tolist(), f["resid_norm"].tolist()[0]
    ([[3.0, 4.0], [0.0, 0.0]], 3.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from value_lens.core.conventions import resolve_layer
from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import LayerError
from value_lens.fitting.methods import FitFn, Fitter, get_fitter
from value_lens.fitting.methods.common import pooled_covariance
from value_lens.fitting.methods.registry import as_directions
from value_lens.fitting.stats import ActivationStats

__all__ = ["fitted_fields", "restricted_fields"]


def fitted_fields(
    stats: ActivationStats,
    method: str | Fitter | FitFn,
    n_layers: int | None,
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """Keyword arguments of the axis ``method`` (with ``kwargs``) fits on ``stats``.

    ``n_layers`` defaults to the model's layer count recorded by :func:`collect_stats`.
    ``proj_std`` is measured on the second moments when the stats hold them (pooled, or the
    per-group class moments of BEFORE and AFTER), else left NaN.
    """
    fitter = get_fitter(method)
    dirs, info, readout = as_directions(fitter.fit(stats, **kwargs), fitter.name)
    n = int(n_layers or stats.meta.get("n_layers_model") or (max(stats.layers) + 1))
    idx = torch.tensor(stats.layers)
    full = torch.zeros(n, stats.d_model)
    full[idx] = dirs.float()
    norms = torch.full((n,), float("nan"))
    norms[idx] = stats.turn_mean_norm().float()
    std = torch.full((n,), float("nan"))
    cov = _covariance(stats)
    if cov is not None:
        u = dirs.double() / dirs.double().norm(dim=-1, keepdim=True).clamp_min(1e-30)
        std[idx] = torch.einsum("ld,lde,le->l", u, cov, u).clamp_min(0).sqrt().float()
    return {
        "directions": full,
        "layers": tuple(stats.layers),
        "model_id": str(stats.meta.get("model_id", "")),
        "method": fitter.name,
        "dataset": str(stats.meta.get("dataset", "")),
        "dataset_hash": str(stats.meta.get("dataset_hash", "")),
        "fit_info": _jsonable(info),
        "resid_norm": norms,
        "proj_std": std,
        "readout": None if readout is None else readout.expand(idx, n),
    }


def restricted_fields(axis: Any, layers: int | Sequence[int]) -> dict[str, Any]:
    """The fields of :class:`~value_lens.fitting.axis.ValueAxis` ``axis`` that change when it
    keeps only ``layers`` (negative ones count from the end): the other rows of the directions
    and of the readout transform zeroed, as in an axis fitted at ``layers`` alone, and their
    strength scales unknown (NaN).

    Raises:
        LayerError: for no layer, a layer out of range, or one the axis has no direction at.
    """
    n = axis.n_layers
    keep = sorted({resolve_layer(x, n) for x in ([layers] if isinstance(layers, int) else layers)})
    if not keep:
        raise LayerError("no layers were given; name the fitted layers to keep")
    missing = [x for x in keep if x not in axis.layers]
    if missing:
        raise LayerError(
            f"layers {missing} have no fitted direction; fitted layers: {list(axis.layers)}"
        )
    idx = torch.tensor(keep)
    drop = torch.ones(n, dtype=torch.bool)
    drop[idx] = False
    readout = axis.readout
    if readout is not None:  # the kept rows only, then zero rows elsewhere (as a fit makes it)
        rows = {k: t[idx] for k, t in readout.tensors().items()}
        readout = type(readout).from_tensors(rows, readout.info()).expand(idx, n)
    return {
        "directions": axis.directions.masked_fill(drop[:, None], 0.0),
        "layers": tuple(keep),
        "resid_norm": axis.resid_norm.masked_fill(drop, float("nan")),
        "proj_std": axis.proj_std.masked_fill(drop, float("nan")),
        "readout": readout,
    }


def _covariance(stats: ActivationStats) -> torch.Tensor | None:
    """Per-layer covariance of the tokens the projection sd is measured on: the pooled moments'
    tokens, else the BEFORE and AFTER tokens of the class moments; None without either."""
    if stats.moments is not None and float(stats.moments.n) > 1:
        m = stats.moments
        mu = m.x / m.n
        return m.xx / m.n - mu[:, :, None] * mu[:, None, :]
    cm = stats.class_moments
    if cm is None:
        return None
    labels = tuple(c for c in (BEFORE, AFTER) if c in cm.labels and c in stats.classes)
    n = float(stats.count[:, [stats.class_index(c) for c in labels]].sum()) if labels else 0.0
    return pooled_covariance(stats, cm, labels)[2] if n >= 2 else None


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x
