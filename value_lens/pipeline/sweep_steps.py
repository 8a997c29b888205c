"""The held-out sweep step (``value-lens sweep`` and the demo's ``stats`` and ``sweep`` steps).

:func:`sweep` runs :func:`~value_lens.analysis.sweep.layer_sweep` on a results folder: it reuses
a finished sweep for the same request (:mod:`value_lens.pipeline.sweep_store`) and saved
statistics, says whether the model runs once (statistics and sweep from one forward pass, when
the labelled residuals fit the memory budget) or twice, and writes ``sweep.csv``,
``layer_cosine.csv`` and, with ``keep_stats``, the statistics that pass produced.

Example:
    >>> from value_lens.data.tokens import LabelledTokens
    >>> from value_lens.testing import tiny_qwen3
    >>> data = LabelledTokens.from_lists([[1, 2, 3]] * 3, [[0, 1, 1]] * 3, "abc")
    >>> _pass_plan(data, [0, 1], tiny_qwen3(), 2.0).split(":")[0]
    'one forward pass'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from value_lens.analysis.confounds import value_beyond_position
from value_lens.analysis.sweep import SweepConfig, SweepResult, layer_sweep
from value_lens.analysis.sweep.prepare import explicit_fitters
from value_lens.core.conventions import resolve_layers
from value_lens.core.model import model_device, model_id, n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.data.tokens import LabelledTokens
from value_lens.pipeline.launch import from_env, process_group
from value_lens.pipeline.rundir import RESULT_FILES, update_meta
from value_lens.pipeline.steps import (
    STATS_FILE,
    Log,
    PathLike,
    quiet,
    same_on_every_rank,
    saved_stats,
)
from value_lens.pipeline.sweep_store import save_sweep, saved_sweep, sweep_request

__all__ = ["Sweep", "sweep", "train_count"]


@dataclass(frozen=True)
class Sweep:
    """What :func:`sweep` made: the sweep's result and where its table went."""

    result: SweepResult
    path: Path

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    @property
    def best_layer(self) -> int:
        return self.result.best_layer

    def summary(self) -> str:
        """The best layer, its held-out AUROC, the table's path and the position verdict."""
        auroc = self.table.set_index("layer").loc[self.best_layer, "token_auroc_mean"]
        head = f"best layer {self.best_layer}: token AUROC {auroc:.3f}; wrote {self.path}"
        sentence = value_beyond_position(self.result).sentence if "rd_value" in self.table else ""
        return f"{head}\n{sentence or ''}"


def sweep(
    model: GenerativeModel,
    data: LabelledTokens,
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    n_splits: int = 10,
    n_train: int | None = None,
    train_fraction: float = 0.7,
    seed: int = 0,
    batch_size: int = 4,
    memory_budget_gb: float = 2.0,
    keep_stats: bool = False,
    method: str = "mean_diff",
    log: Log = quiet,
) -> Sweep:
    """The held-out layer sweep with its controls (``sweep.csv``, ``layer_cosine.csv``).

    ``n_train`` criteria train each split (default ``train_fraction`` of them, at least one
    held out). A sweep saved in ``out`` for the same model, data, layers and settings
    (:func:`~value_lens.pipeline.sweep_store.saved_sweep`) is returned without running again.
    Otherwise statistics saved in ``out`` are reused when :func:`saved_stats` matches, else
    :func:`~value_lens.analysis.sweep.layer_sweep` reads the model itself: in **one** forward
    pass when the labelled tokens' residuals at the swept layers fit ``memory_budget_gb``, else
    in two (statistics, then projections); the log says which. ``keep_stats``: save the
    statistics that pass produced as ``out/stats.safetensors`` (derived from the kept residuals
    on the one-pass path), so fitting the axis needs no pass of its own.

    Under ``torchrun`` (:func:`~value_lens.pipeline.launch.from_env`) every rank must hold the
    same data; the ranks sweep together in a process group
    (``layer_sweep(..., distributed=True)``), every rank returns the result and rank 0 alone
    writes it.
    """
    want = resolve_layers(layers, n_layers(model))
    n_groups = len(set(data.groups))
    n_tr = train_count(n_groups, n_train, train_fraction)
    cfg = SweepConfig(
        n_splits=n_splits, n_train=n_tr, seed=seed, max_memory_gb=memory_budget_gb, method=method
    )
    request = sweep_request(model_id(model), data, want, cfg)
    launch = from_env()
    path = Path(out) / RESULT_FILES["sweep"]
    with process_group(launch, model_device(model)) as distributed:
        done = saved_sweep(out, request)
        refits = bool(explicit_fitters([method]))  # needs statistics with the method's moments
        stats = None if done is not None or refits else saved_stats(out, data, want)
        if distributed:
            same_on_every_rank(data, (done is not None, stats is not None))
        if done is not None:
            log(f"reusing {path} (same model, data, layers and settings)")
            return Sweep(done, path)
        if stats is not None:
            log(f"reusing {Path(out) / STATS_FILE} (same data and layers)")
        log(f"held-out sweep: {n_splits} splits, {n_tr} of {n_groups} criteria train")
        if stats is None:
            log(_pass_plan(data, want, model, memory_budget_gb))
        res = layer_sweep(
            model,
            data,
            config=cfg,
            layers=want,
            stats=stats,
            batch_size=batch_size,
            progress=launch is None or launch.writer,
            distributed=distributed,
        )
        world = torch.distributed.get_world_size() if distributed else 1
    if launch is None or launch.writer:
        if keep_stats and stats is None and res.stats is not None:
            res.stats.save(Path(out) / STATS_FILE)
        update_meta(out, model=model_id(model), n_layers=n_layers(model), seed=seed)
        save_sweep(
            res,
            out,
            request,
            n_criteria=n_groups,
            processes=world,
            forward_passes=res.timings.get("passes"),
        )
    return Sweep(res, path)


def train_count(n_groups: int, n_train: int | None, fraction: float = 0.7) -> int:
    """Training criteria per split: ``n_train``, else ``fraction`` of them with at least one
    held out.

    >>> train_count(12, None), train_count(12, 5)
    (8, 5)
    """
    if n_train is not None:
        return n_train
    return max(1, min(n_groups - 1, round(fraction * n_groups)))


def _pass_plan(data: LabelledTokens, layers: list[int], model: Any, budget_gb: float) -> str:
    """Which path the sweep takes, in words (one forward pass or two) and why."""
    from value_lens.analysis.sweep.prepare import one_pass_bytes
    from value_lens.core.model import d_model

    gb = one_pass_bytes(data, len(layers), d_model(model)) / 2**30
    if gb <= budget_gb:
        return (
            f"one forward pass: the labelled residuals ({gb:.2f} GB) fit the memory budget "
            f"({budget_gb:g} GB), so statistics and held-out scores come from the same pass"
        )
    return (
        f"two forward passes (statistics, then projections): the labelled residuals "
        f"({gb:.2f} GB) exceed the memory budget ({budget_gb:g} GB; raise --memory-budget)"
    )
