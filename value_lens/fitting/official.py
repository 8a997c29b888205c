"""The paper's released ``value_axis.npy`` as :class:`~value_lens.fitting.axis.ValueAxis` fields.

Rows are in HF ``hidden_states`` order: row 0 (embeddings) is dropped and row ``k`` for
``1 <= k < n_layers`` becomes layer ``k-1`` (the output of block ``k-1``). The last row is
post-final-norm, which no block output equals: ``last_row="drop"`` leaves the last layer
unfitted; ``"keep"`` uses it anyway (recorded in ``fit_info``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from value_lens.errors import ArtifactError, AxisMismatchError, InputError

__all__ = ["official_fields"]


def official_fields(
    npy_path: str | os.PathLike[str],
    *,
    n_layers: int | None = None,
    d_model: int | None = None,
    last_row: str = "drop",
) -> dict[str, Any]:
    """Keyword arguments of the axis (all but ``model_id``) read from ``npy_path``, checked
    against ``n_layers`` / ``d_model`` when given."""
    if last_row not in {"drop", "keep"}:
        raise InputError("last_row must be 'drop' or 'keep'")
    try:
        arr = np.load(npy_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {npy_path} as a .npy array: {exc}") from None
    if arr.ndim != 2:
        raise ArtifactError(f"{npy_path} has shape {arr.shape}; expected [n_layers + 1, d_model]")
    n = int(n_layers or arr.shape[0] - 1)
    if arr.shape[0] != n + 1 or (d_model is not None and arr.shape[1] != d_model):
        raise AxisMismatchError(
            f"{npy_path} has shape {arr.shape} but a model with {n} blocks and d_model "
            f"{d_model} needs ({n + 1}, {d_model}); is it from another model?"
        )
    dirs = torch.zeros(n, arr.shape[1])
    dirs[: n - 1] = torch.from_numpy(arr[1:n].astype(np.float32))
    layers = list(range(n - 1))
    if last_row == "keep":
        dirs[n - 1] = torch.from_numpy(arr[n].astype(np.float32))
        layers.append(n - 1)
    return dict(
        directions=dirs,
        layers=tuple(layers),
        method="official_import",
        dataset=f"imported from {Path(npy_path).name}",
        fit_info={"source_rows": "hidden_states[k] -> layer k-1", "last_row": last_row},
    )
