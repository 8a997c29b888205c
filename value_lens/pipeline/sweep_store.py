"""A finished layer sweep in a results folder: saving it, and finding it again for a rerun.

:func:`save_sweep` writes ``sweep.csv`` and ``layer_cosine.csv`` and records, under ``sweep`` in
``run.json``, the sweep's settings and the request it answered (:func:`sweep_request`: the
model's name, the data's fingerprint, the layers and the
:class:`~value_lens.analysis.sweep.SweepConfig`). :func:`saved_sweep` gives the saved
sweep back when a new request is the same one, so :func:`value_lens.pipeline.sweep_steps.sweep` does
not run again; its ``splits`` and ``timings`` are not saved and come back empty.

Example:
    >>> import tempfile
    >>> import pandas as pd
    >>> from value_lens.analysis.sweep import ClusterCI, SweepConfig, SweepResult
    >>> data = LabelledTokens.from_lists([[1, 2, 3]], [[0, 0, 1]], ["a"])
    >>> req = sweep_request("tiny", data, [0, 1], SweepConfig(n_splits=2))
    >>> res = SweepResult(pd.DataFrame({"layer": [0, 1], "token_auroc_mean": [0.6, 0.7]}),
    ...                   SweepConfig(n_splits=2), layers=[0, 1], cosine=np.eye(2))
    >>> out = tempfile.mkdtemp()
    >>> _ = save_sweep(res, out, req)
    >>> saved_sweep(out, req).best_layer
    1
    >>> saved_sweep(out, sweep_request("tiny", data, [1], SweepConfig(n_splits=2))) is None
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.sweep import ClusterCI, SweepConfig, SweepResult
from value_lens.data.tokens import LabelledTokens
from value_lens.pipeline.rundir import RESULT_FILES, read_meta, update_meta

__all__ = ["save_sweep", "saved_sweep", "sweep_request"]

PathLike = str | os.PathLike[str]


def sweep_request(
    model_name: str, data: LabelledTokens, layers: Sequence[int], config: SweepConfig
) -> dict[str, Any]:
    """What a sweep answers, as ``run.json`` records it: a saved sweep is reused only for an
    equal request (same model name, data fingerprint, layers and every setting)."""
    req = {
        "model": model_name,
        "dataset_hash": data.fingerprint(),
        "layers": [int(x) for x in layers],
        "config": asdict(config),
    }
    return dict(json.loads(json.dumps(req)))  # tuples become lists, as read back from JSON


def save_sweep(result: SweepResult, out: PathLike, request: dict[str, Any], **record: Any) -> Path:
    """Write ``out/sweep.csv`` and ``out/layer_cosine.csv`` and record the sweep's settings,
    ``request`` and ``record`` (more JSON-ready fields) under ``sweep`` in ``out/run.json``;
    returns the table's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULT_FILES["sweep"]
    result.table.to_csv(path, index=False)
    result.cosine_matrix().to_csv(out / RESULT_FILES["cosine"])
    update_meta(out, sweep={**result.settings, **record, "request": request})
    return path


def saved_sweep(out: PathLike, request: dict[str, Any]) -> SweepResult | None:
    """The sweep saved in ``out`` by :func:`save_sweep` for an equal ``request``, else None."""
    out = Path(out)
    rec = read_meta(out).get("sweep") or {}
    table, cosine = (out / RESULT_FILES[k] for k in ("sweep", "cosine"))
    if rec.get("request") != request or not (table.exists() and cosine.exists()):
        return None
    cfg = request["config"]
    ci = cfg["ci"]
    return SweepResult(
        table=pd.read_csv(table),
        config=SweepConfig(**{**cfg, "ci": ci if ci is None else ClusterCI(**ci)}),
        layers=list(rec["layers"]),
        groups=list(rec["groups"]),
        cosine=pd.read_csv(cosine, index_col=0).to_numpy(dtype=np.float64),
        ci=rec["ci"],
        n_tokens=int(rec["n_tokens"]),
        n_placebo_tokens=int(rec["n_placebo_tokens"]),
        placebo=dict(rec.get("placebo_matching") or {}),
        timings={"passes": rec["forward_passes"]} if rec.get("forward_passes") else {},
    )
