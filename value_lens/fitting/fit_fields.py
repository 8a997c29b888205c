"""The fields of a :class:`~value_lens.fitting.axis.ValueAxis` fitted on statistics: the method's
directions in a full ``[n_layers, d_model]`` table, the strength scales (mean residual norm,
projection sd) and the readout transform, all per layer.

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

from collections.abc import Mapping
from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.fitting.methods import FitFn, Fitter, get_fitter
from value_lens.fitting.methods.common import pooled_covariance
from value_lens.fitting.methods.registry import as_directions
from value_lens.fitting.stats import ActivationStats

__all__ = ["fitted_fields"]


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
