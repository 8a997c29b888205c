"""The statistics of the one-pass path: :class:`~value_lens.fitting.stats.ActivationStats` from
the residuals a sweep kept, so the sweep and the axis need one forward pass between them.

``collect_stats`` streams every labelled token's residual into per-group, per-label sums; when
a sweep keeps those residuals anyway (they fit its memory budget), the same sums come from them:
counts exactly, sums and norm sums up to fp32 rounding (both read fp32 activations and add them
in fp64), without a second forward pass.

Example:
    >>> import numpy as np
    >>> from value_lens.analysis.sweep.tokens import TokenProjections
    >>> from value_lens.data.tokens import LabelledTokens
    >>> data = LabelledTokens.from_lists([[5, 6, 7]], [[0, 1, 2]], ["g"])
    >>> x = np.array([[[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]], dtype=np.float32)
    >>> raw = TokenProjections(x, np.linalg.norm(x, axis=-1), *(np.array(v) for v in (
    ...     [0, 1, 2], [0, 0, 0], [0, 1, 2], [3, 2, 1], [0, 0, 0], [0, 0, 0])))
    >>> s = stats_from_residuals(raw, data, [4], {"model_id": "m"})
    >>> s.classes, s.count.tolist(), s.sum[0, 0, 2].tolist(), s.norm_sum[0, 0].tolist()
    ([0, 1, 2], [[1, 1, 1]], [3.0, 4.0], [1.0, 2.0, 5.0])
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from value_lens.analysis.sweep.tokens import TokenProjections
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["stats_from_residuals"]


def stats_from_residuals(
    raw: TokenProjections, data: LabelledTokens, layers: list[int], meta: dict[str, Any]
) -> ActivationStats:
    """Per-layer, per-group, per-label sums of the kept residuals ``raw.proj`` (``[L, N, D]``,
    every labelled token of ``data``: ``project_tokens(..., labels=None)``), with ``meta``
    (the model's fields; the data's are added) as ``collect_stats`` records them."""
    classes = sorted(data.label_counts())
    groups = data.group_names
    want = sum(data.label_counts().values())
    if raw.label.size != want:
        raise InputError(
            f"the kept residuals hold {raw.label.size} tokens but the data labels {want}; keep "
            "every labelled token (project_tokens(..., labels=None)) to derive its statistics"
        )
    lut = {c: i for i, c in enumerate(classes)}
    cls = torch.tensor([lut[int(c)] for c in raw.label], dtype=torch.long)
    # raw.group indexes data.group_names when project_tokens ran with every group
    flat = torch.from_numpy(raw.group).long() * len(classes) + cls
    G, C = len(groups), len(classes)
    x = torch.from_numpy(raw.proj)  # [L, N, D] fp32
    total = torch.zeros(x.shape[0], G * C, x.shape[-1], dtype=torch.float64)
    total.index_add_(1, flat, x.double())
    norms = torch.zeros(x.shape[0], G * C, dtype=torch.float64)
    norms.index_add_(1, flat, torch.from_numpy(raw.norm).double())
    count = torch.bincount(flat, minlength=G * C).reshape(G, C)
    return ActivationStats(
        layers=list(layers),
        groups=groups,
        classes=classes,
        count=count,
        sum=total.reshape(x.shape[0], G, C, -1),
        norm_sum=norms.reshape(x.shape[0], G, C),
        meta={
            **meta,
            "dataset_hash": data.fingerprint(),
            "dataset": data.describe(),
            "n_sequences": len(data),
            "group_sequences": dict(Counter(data.groups)),
            "collected_by": "layer_sweep (one pass)",
        },
    )
