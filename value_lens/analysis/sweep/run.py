"""Held-out layer sweeps: per-layer generalisation of the value direction, with its controls.

:func:`layer_sweep` is prepare -> score each split -> tabulate:

1. **prepare** (:func:`_prepare`): check the data, re-cut its placebo turns to match their real
   turns (:func:`value_lens.data.placebo.rematch_placebo`), and run the model over it **once**
   (twice for data too large to keep, **never once per split**): when the labelled tokens'
   residuals fit ``max_memory_gb``, one forward pass keeps them and every group's difference
   vector ``d_g = mean(AFTER_g) - mean(BEFORE_g)`` and every projection comes from them;
   otherwise :func:`~value_lens.fitting.collect.collect_stats` gives the ``d_g`` (skipped if
   ``stats=`` is passed) and a second pass stores each token's projections on them, on
   ``n_random`` random unit directions, and its norm (:mod:`value_lens.analysis.sweep.passes`).
2. **score** (:func:`value_lens.analysis.sweep.layer.score_layer`): a split's direction is
   ``v = sum_g w_g d_g`` over its training groups, so a token's cosine with it is linear in its
   projections and every refit (each split, each criterion left out of it) is a change of
   weights, not a forward pass. Each split scores its held-out tokens: AUROCs (pooled, between
   and within turns, position-matched, on placebo turns) and discontinuities at the reward
   token, the placebo cuts and the pseudo-cuts (:mod:`value_lens.analysis.confounds`).
3. **tabulate** (:mod:`value_lens.analysis.sweep.table`): means over splits, with
   leave-one-criterion-out jackknife intervals (:class:`ClusterCI`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from value_lens.analysis.confounds import did_weights
from value_lens.analysis.sweep.config import SweepConfig
from value_lens.analysis.sweep.design import build_design
from value_lens.analysis.sweep.layer import Context, LayerScores, score_layer
from value_lens.analysis.sweep.passes import (
    SweepBasis,
)
from value_lens.analysis.sweep.prepare import (
    check_data,
    explicit_fitters,
    rematch,
    run_passes,
    splits_of,
)
from value_lens.analysis.sweep.result import SweepResult
from value_lens.analysis.sweep.splits import split_weights
from value_lens.analysis.sweep.table import layer_row
from value_lens.analysis.sweep.tokens import TokenProjections
from value_lens.core.conventions import resolve_layers
from value_lens.core.model import n_layers
from value_lens.core.protocols import HookedModel
from value_lens.data.placebo import PlaceboMatch
from value_lens.data.tokens import AFTER, BEFORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["layer_sweep", "sweep_each_method", "sweep_projections"]


def _context(
    data: LabelledTokens, cfg: SweepConfig, basis: SweepBasis, tp: TokenProjections
) -> Context:
    groups = basis.groups
    splits = splits_of(cfg, groups, data)
    real = np.isin(tp.label, (BEFORE, AFTER))
    cell_n = np.bincount((tp.group * 2 + (tp.label == AFTER))[real], minlength=2 * len(groups))
    if (cell_n.reshape(-1, 2) == 0).any():
        empty = [groups[g] for g in np.flatnonzero((cell_n.reshape(-1, 2) == 0).any(axis=1))]
        raise InputError(f"groups {empty} have no BEFORE or AFTER tokens in data; check stats=")
    design = build_design(data, tp, cfg.ci.cluster if cfg.ci is not None else "group")
    start, ex = basis.n_core, None
    for block in basis.extra:
        if block.name == cfg.method:
            ex = block
            break
        start += block.n
    if ex is None and explicit_fitters([cfg.method]):
        raise InputError(
            f"method {cfg.method!r} is refitted per split, but the sweep's basis holds no fits "
            f"of it (it holds {[b.name for b in basis.extra]}); run layer_sweep with it"
        )
    return Context.create(
        cfg,
        tp.take(np.ones(tp.label.size, dtype=bool), proj=tp.proj[:, :, :0]),
        design,
        splits=splits,
        has_placebo=basis.has_placebo,
        n_shuffle=int(basis.shuffled.shape[1]),
        n_random=cfg.n_random,
        explicit=ex,
        ex_start=start,
        rand_start=basis.n_core + sum(b.n for b in basis.extra),
    )


def _split_records(ctx: Context, layer: int, scores: LayerScores, groups: list[str]) -> list:
    return [
        {
            "split": s,
            "layer": layer,
            "token_auroc": sc.point.get("axis_token", float("nan")),
            "function_score": float(scores.wins[s].mean()),
            "train_groups": [groups[i] for i in ctx.splits[s]],
        }
        for s, sc in enumerate(scores.splits)
    ]


def _cosines(cfg: SweepConfig, basis: SweepBasis, gram: np.ndarray) -> np.ndarray:
    """``[L, L]`` cosines of the all-criteria directions."""
    for block in basis.extra:
        if block.name == cfg.method:
            unit = block.full / block.full.norm(dim=-1, keepdim=True).clamp_min(1e-30)
            return (unit @ unit.T).numpy()
    G = len(basis.groups)
    all_g = np.arange(G)
    stacked = basis.stacked()
    M = basis.n_core
    w_all = [
        did_weights(M, G, all_g[basis.has_placebo])
        if cfg.method == "did"
        else split_weights(gram[k, :G, :G], all_g, cfg.method, M)
        for k in range(gram.shape[0])
    ]
    dirs = torch.stack([torch.from_numpy(w) @ stacked[k, :M] for k, w in enumerate(w_all)])
    unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return (unit @ unit.T).numpy()


def layer_sweep(
    model: HookedModel,
    data: LabelledTokens,
    config: SweepConfig | None = None,
    *,
    layers: int | list[int] | None = None,
    stats: ActivationStats | None = None,
    batch_size: int = 8,
    truncate: bool = False,
    progress: bool = True,
    distributed: bool = False,
    **overrides: Any,
) -> SweepResult:
    """Held-out generalisation of the value direction at every layer, with its position controls.

    For each of ``n_splits`` seeded splits, ``n_train`` criteria (groups) fit the direction and
    the rest are held out. Scores use the paper's readout, cos(h_t, v).

    Args:
        model: a TransformerLens-style model.
        data: BEFORE/AFTER-labelled sequences, one criterion per group (placebo turns, if
            labelled, are re-cut to match their sequence's real turn first).
        config: the sweep's settings (:class:`~value_lens.analysis.sweep.SweepConfig`:
            splits, seed, method, baselines, intervals, memory budget, position design);
            default the paper's.
        layers: layers to sweep (default all).
        stats: precomputed :func:`collect_stats` output for ``data`` (skips the first pass).
        batch_size / truncate / progress: how the model is run (results do not depend on them).
        distributed: inside an initialised ``torch.distributed`` process group, every rank runs
            the model over its :class:`~value_lens.fitting.shards.ShardPlan` share of the
            sequences; the sums are added over the ranks and the per-token projections gathered
            in one-process order, so every rank returns the one-process result.
        overrides: :class:`SweepConfig` fields set on top of ``config``, e.g. ``n_splits=3``.

    Returns:
        A :class:`~value_lens.analysis.sweep.SweepResult` whose ``table`` has one row per
        layer (AUROC > 0.5: the score is higher on AFTER tokens). The held-out scores:
        ``token_auroc_mean`` (pooled held-out BEFORE vs AFTER tokens, averaged over splits),
        ``token_auroc_sd`` (sd over the overlapping splits: not a standard error),
        ``token_auroc_between`` / ``token_auroc_within`` (pairs from two turns / one turn).
        The position design: ``rd_jump``, ``rd_placebo_jump``, ``rd_pseudo_jump``,
        ``rd_value`` (= ``rd_jump - rd_placebo_jump``, the headline), ``rd_value_pseudo``;
        ``matched_auroc`` with ``matched_n_pairs`` / ``matched_n_turns`` (per split; NaN below
        ``min_matched_pairs`` / ``min_matched_turns``); ``placebo_auroc``. The DiD axis:
        ``did_auroc_mean``, ``did_auroc_between/within``, ``did_matched_auroc``,
        ``did_placebo_auroc``, ``did_rd_jump``, ``did_rd_value``. Baselines:
        ``{turn_position,relative_position,end_proximity,position}_auroc``, their
        ``*_matched_auroc`` (the matched AUROC's null reference), ``placebo_*_auroc`` (on
        placebo turns), ``*_rd_jump`` and ``*_rd_value``; ``random_auroc_mean/sd/p95`` and
        ``rd_value_random_mean/p95`` (random directions sign-aligned on the training
        criteria); ``shuffled_auroc_mean`` (labels permuted within sequences: a noise floor,
        NaN on the two-pass path where it is not computed). ``function_score_mean`` (the
        paper's released 0/1 metric: per held-out criterion,
        ``(mean_AFTER - mean_BEFORE) . v > 0``, averaged over splits),
        ``function_score_sd_splits``, ``function_score_sd_all_scores``. Intervals
        ``*_ci_lo/hi``: leave-one-cluster-out jackknife (:class:`ClusterCI`), with
        ``ci_clusters``, ``n_test_clusters_min`` and ``few_clusters`` (a split holds out fewer
        than 10 clusters: intervals are rough). The result also carries the cosine matrix,
        per-split details, the placebo matching, timings and settings.

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> data = LabelledTokens.from_lists(
        ...     [[1, 5, 6, 7, 40, 41, 42]] * 4, [[-1, 0, 0, 0, 1, 1, 1]] * 4, "abcd")
        >>> sw = layer_sweep(tiny_qwen3(), data, SweepConfig(train_sets=(("a", "b"), ("c", "d"))),
        ...                  progress=False)
        >>> sw.table[["layer", "token_auroc_mean", "rd_value"]].shape, sw.n_tokens
        ((2, 3), 24)
    """
    cfg = (config or SweepConfig()).with_overrides(**overrides)
    check_data(data, cfg)
    data, match = rematch(data, cfg, stats)
    L = resolve_layers(layers, n_layers(model))
    opts: dict[str, Any] = {"batch_size": batch_size, "truncate": truncate, "progress": progress}
    basis, tp, rand, kept, timings = run_passes(
        model, data, L, cfg, stats, opts, distributed, (cfg.method,)
    )
    res = sweep_projections(data, cfg, L, basis, tp, rand, match=match, timings=timings)
    return dataclasses.replace(res, stats=kept)


def sweep_each_method(
    model: HookedModel,
    data: LabelledTokens,
    methods: Sequence[str],
    config: SweepConfig | None = None,
    *,
    layers: int | list[int] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[dict[str, SweepResult], ActivationStats | None]:
    """:func:`layer_sweep` for several methods from the same forward passes: the statistics
    (with every method's per-split needs) once, the projections onto every method's directions
    once, then each method scored as its own sweep (``config.method`` replaced). Returns the
    sweeps by method and the statistics.

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> data = LabelledTokens.from_lists([[1, 5, 6, 7, 40, 41, 42]] * 4,
        ...                                  [[-1, 0, 0, 0, 1, 1, 1]] * 4, "abcd")
        >>> res, _ = sweep_each_method(tiny_qwen3(), data, ["mean_diff", "mean_centred"],
        ...     SweepConfig(train_sets=(("a", "b"), ("c", "d"))), progress=False)
        >>> sorted(res), res["mean_centred"].config.method
        (['mean_centred', 'mean_diff'], 'mean_centred')
    """
    cfg = config or SweepConfig()
    if not methods:
        raise InputError("sweep_each_method needs at least one method")
    checked = [cfg.with_overrides(method=m) for m in methods]
    for c in checked:
        check_data(data, c)
    data, match = rematch(data, cfg, None)
    L = resolve_layers(layers, n_layers(model))
    opts: dict[str, Any] = {"batch_size": batch_size, "truncate": False, "progress": progress}
    basis, tp, rand, kept, timings = run_passes(model, data, L, cfg, None, opts, False, methods)
    out = {
        c.method: dataclasses.replace(
            sweep_projections(data, c, L, basis, tp, rand, match=match, timings=timings),
            stats=kept,
        )
        for c in checked
    }
    return out, kept


def sweep_projections(
    data: LabelledTokens,
    cfg: SweepConfig,
    L: list[int],
    basis: SweepBasis,
    tp: TokenProjections,
    rand: torch.Tensor,
    *,
    match: PlaceboMatch | None = None,
    timings: dict[str, float] | None = None,
) -> SweepResult:
    """Steps 2 and 3 of :func:`layer_sweep`: score every split at every layer and tabulate, from
    the basis and projections of the passes (or of planted residuals, through
    :func:`~value_lens.analysis.sweep.passes.from_residuals`)."""
    match = match or PlaceboMatch()
    t2, c2 = time.perf_counter(), time.process_time()
    ctx = _context(data, cfg, basis, tp)
    stacked = basis.stacked()
    gram = (stacked @ stacked.transpose(1, 2)).numpy()  # [L, M, M]
    rand_dot = (basis.diffs @ rand.transpose(1, 2)).numpy()  # [L, G, R]: d_g . r
    rows, recs = [], []
    for k, layer in enumerate(L):
        scores = score_layer(ctx, tp.proj[k], tp.norm[k], gram[k], rand_dot[k], k)
        rows.append(layer_row(ctx, scores, layer))
        recs.extend(_split_records(ctx, layer, scores, basis.groups))
    ci = (
        None
        if cfg.ci is None
        else {
            **asdict(cfg.ci),
            "cluster": ctx.design.unit,
            "n_clusters": ctx.design.n_clusters,
            "method": "leave-one-cluster-out jackknife, t on C-1 df",
        }
    )
    return SweepResult(
        table=_frame(rows),
        config=cfg,
        layers=list(L),
        groups=list(basis.groups),
        cosine=_cosines(cfg, basis, gram),
        splits=recs,
        ci=ci,
        n_tokens=int(ctx.design.real.idx.size),
        n_placebo_tokens=int(ctx.design.placebo.idx.size),
        placebo={
            "kept": match.kept,
            "dropped": dict(match.dropped),
            "tolerance": cfg.placebo_tolerance,
        },
        timings={
            **(timings or {}),
            "refit_s": time.perf_counter() - t2,
            "refit_cpu_s": time.process_time() - c2,
        },
    )


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)
