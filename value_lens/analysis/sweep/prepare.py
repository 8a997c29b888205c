"""Before scoring: the data's checks, the placebo re-cut, and the forward passes of a sweep.

:func:`run_passes` picks the path: **one** pass keeping every labelled residual (the statistics
and the projections both derived from them) when they fit ``max_memory_gb`` and no method needs
the statistics first; otherwise **two** (statistics with every method's needs, then the
projections onto the basis, which then holds the per-split refits of any method outside the
span of the groups' differences).

Example:
    >>> from value_lens.data.tokens import LabelledTokens
    >>> one_pass_bytes(LabelledTokens.from_lists([[1, 2, 3]], [[0, 1, -1]], "a"), 4, 8)
    256
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from value_lens.analysis.sweep.config import SweepConfig
from value_lens.analysis.sweep.explicit import fit_explicit
from value_lens.analysis.sweep.passes import (
    KEPT,
    SweepBasis,
    from_residuals,
    group_diffs_from_stats,
    project_tokens,
)
from value_lens.analysis.sweep.splits import train_splits
from value_lens.analysis.sweep.stats import stats_from_residuals
from value_lens.analysis.sweep.tokens import RankShare, TokenProjections
from value_lens.core.model import d_model, model_id, n_ctx, n_layers
from value_lens.core.protocols import HookedModel
from value_lens.data.placebo import PlaceboMatch, rematch_placebo
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.collect import collect_stats
from value_lens.fitting.methods import Fitter, get_fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = [
    "check_data",
    "explicit_fitters",
    "one_pass_bytes",
    "rematch",
    "run_passes",
    "splits_of",
]


def check_data(data: LabelledTokens, cfg: SweepConfig) -> dict[int, int]:
    counts = data.label_counts()
    if counts.get(BEFORE, 0) == 0 or counts.get(AFTER, 0) == 0:
        raise InputError(
            f"the dataset has one class only (label counts {counts}); the sweep needs both "
            "BEFORE (0) and AFTER (1) tokens"
        )
    if cfg.method == "did" and not (counts.get(PLACEBO_BEFORE) and counts.get(PLACEBO_AFTER)):
        raise InputError(
            "method='did' needs placebo turns (PLACEBO_BEFORE/PLACEBO_AFTER labels): label the "
            "conversations with icrl.label(..., placebo=True)"
        )
    return counts


def rematch(
    data: LabelledTokens, cfg: SweepConfig, stats: ActivationStats | None
) -> tuple[LabelledTokens, PlaceboMatch]:
    """Placebo turns cut to match their sequence's real turn; statistics collected on other
    placebo cuts are refused."""
    matched, report = rematch_placebo(data, tolerance=cfg.placebo_tolerance)
    changed = any(not torch.equal(a, b) for a, b in zip(matched.labels, data.labels, strict=True))
    if changed and stats is not None:
        raise InputError(
            "the placebo turns of this data are not cut to match their real turns, so the given "
            "stats hold the old placebo sums; relabel with icrl.label(..., placebo=True) (or "
            "value_lens.data.placebo.rematch_placebo) and collect the statistics again, or pass "
            "stats=None"
        )
    return matched, report


def one_pass_bytes(data: LabelledTokens, n_layers_: int, d_model_: int) -> int:
    """Bytes the one-pass path keeps: every labelled token's fp32 residual at every layer."""
    return 4 * sum(data.label_counts().values()) * n_layers_ * d_model_


def run_passes(
    model: HookedModel,
    data: LabelledTokens,
    L: list[int],
    cfg: SweepConfig,
    stats: ActivationStats | None,
    opts: dict[str, Any],
    distributed: bool,
    methods: Sequence[str] = (),
) -> tuple[SweepBasis, TokenProjections, torch.Tensor, ActivationStats | None, dict[str, Any]]:
    """The basis, every labelled token's projections, the random directions, the statistics
    (derived from the kept residuals on the one-pass path, collected on the two-pass path) and
    the timings and path taken. ``methods`` outside the span of the differences add their
    refitted directions to the basis (and force the two-pass path: they need the statistics
    before the projections)."""
    t0, c0 = time.perf_counter(), time.process_time()
    gen = torch.Generator().manual_seed(cfg.seed)
    rand = torch.randn(len(L), cfg.n_random, d_model(model), generator=gen, dtype=torch.float64)
    rand = rand / rand.norm(dim=-1, keepdim=True)
    share = None
    if distributed:
        share = RankShare.create(
            data, n_ctx(model), batch_size=opts["batch_size"], truncate=opts["truncate"]
        )
    fitters = explicit_fitters(methods)
    one = (
        stats is None
        and not fitters
        and one_pass_bytes(data, len(L), d_model(model)) <= cfg.max_memory_gb * 2**30
    )
    if one:
        indices = None if share is None else share.indices
        raw = project_tokens(
            model,
            data,
            L,
            None,
            data.group_names,
            indices=indices,
            labels=None if share is None else KEPT,
            **opts,
        )
        if share is None:
            meta = {"model_id": model_id(model), "n_layers_model": n_layers(model)}
            stats = stats_from_residuals(raw, data, L, meta)
            raw = raw.take(np.isin(raw.label, KEPT))
        basis, tp = from_residuals(
            raw,
            data,
            rand,
            cfg.min_count,
            did=cfg.method == "did",
            n_shuffle=cfg.n_shuffle,
            seed=cfg.seed,
            share=share,
        )
        t1, c1 = t2, c2 = time.perf_counter(), time.process_time()
    else:
        if stats is None:
            plan = CollectPlan()
            for f in fitters:
                plan = plan | f.per_split_needs
            stats = collect_stats(model, data, layers=L, distributed=distributed, plan=plan, **opts)
        basis = group_diffs_from_stats(data, L, stats, cfg.min_count)
        if fitters:
            splits = splits_of(cfg, basis.groups, data)
            basis.extra = [
                fit_explicit(f, stats, basis.groups, splits, L, refit=_refits(cfg)) for f in fitters
            ]
        t1, c1 = time.perf_counter(), time.process_time()
        full = torch.cat([basis.stacked(), rand], dim=1)
        mine = None if share is None else share.indices
        tp = project_tokens(model, data, L, full, basis.groups, indices=mine, **opts)
        if share is not None:
            tp = share.gather(tp)[0]
        t2, c2 = time.perf_counter(), time.process_time()
    timings = {
        "collect_s": t1 - t0,
        "project_s": t2 - t1,
        "collect_cpu_s": c1 - c0,
        "project_cpu_s": c2 - c1,
        "passes": 1 if one else 2,
    }
    return basis, tp, rand, stats, timings


def explicit_fitters(methods: Sequence[str]) -> list[Fitter]:
    """The methods among ``methods`` a sweep refits itself (no ``sweep_weights``, not ``did``)."""
    fitters = [get_fitter(m) for m in methods if m != "did"]
    return [f for f in fitters if f.sweep_weights is None]


def splits_of(cfg: SweepConfig, groups: list[str], data: LabelledTokens) -> list[np.ndarray]:
    return train_splits(
        groups,
        data.group_names,
        n_splits=cfg.n_splits,
        n_train=cfg.n_train,
        seed=cfg.seed,
        train_sets=cfg.train_sets,
    )


def _refits(cfg: SweepConfig) -> bool:
    """Whether the intervals refit each split without a training criterion (criterion clusters;
    other units keep each split's direction fixed)."""
    return cfg.ci is not None and cfg.ci.cluster == "group"
