"""Held-out layer sweeps: per-layer generalisation of the value direction, with baselines.

:func:`layer_sweep` runs the model over the data **once** (twice for data too large to keep),
**never once per split**:

* When the BEFORE/AFTER tokens' residuals fit ``max_memory_gb``, one forward pass keeps them;
  every group's difference vector ``d_g = mean(AFTER_g) - mean(BEFORE_g)`` and every token's
  projections come from those residuals.
* Otherwise :func:`~value_lens.fitting.collect.collect_stats` first gives the per-criterion sums, hence
  the ``d_g`` (skipped if ``stats=`` is passed), and a second pass stores, for every
  BEFORE/AFTER token and layer, its projections ``h . d_g`` onto every group's difference
  vector, onto ``n_random`` random unit directions, and its norm ``|h|``.

Every split's ``mean_diff`` (and ``pca_diff``) direction is a linear combination
``v = sum_g w_g d_g`` of the training groups' vectors, so a token's cosine with it is exactly
``(P[t] @ w) / (|h_t| sqrt(w' G w))`` with ``G = d d'`` the groups' Gram matrix: each of the k
refits is a few small matrix products, not a forward pass.

Uncertainty: the splits share most of their training criteria (35 of 48 in the paper), so the
sd over splits (``*_sd``) measures how much the score moves between overlapping refits, not a
standard error. The confidence interval ``token_auroc_ci_lo/hi`` resamples whole
conversations (:class:`ClusterCI`), because tokens of one conversation are not independent.

The result is a :class:`~value_lens.analysis.sweep_result.SweepResult`: ``.table`` holds one row
per layer, and the result carries the rest: the layer x layer cosines of the all-groups directions
(:meth:`~value_lens.analysis.sweep_result.SweepResult.cosine_matrix`), per split and layer scores
and training groups (``.splits``), ``.groups``, the bootstrap's clusters and settings (``.ci``),
``.n_tokens``, ``.timings`` (wall and CPU seconds spent collecting, projecting and refitting) and
``.settings`` (all of them, JSON-ready).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.analysis.clusters import ClusterAUROC, cluster_counts
from value_lens.analysis.confounds import SplitPool, did_weights, position_scores
from value_lens.analysis.metrics import auroc
from value_lens.analysis.projections import group_diffs_from_stats, project_tokens, single_pass
from value_lens.analysis.splits import split_weights, token_clusters, train_splits
from value_lens.analysis.sweep_result import ClusterCI, SweepConfig, SweepResult, cosine_matrix
from value_lens.analysis.token_projections import RankShare
from value_lens.core.conventions import resolve_layers
from value_lens.core.model import d_model, n_ctx, n_layers
from value_lens.core.protocols import HookedModel
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["ClusterCI", "SweepConfig", "SweepResult", "cosine_matrix", "layer_sweep"]

# pooled per-split AUROCs of the axis ("") and of the DiD axis ("did_"), and their columns
POOLED = {
    "token": "token_auroc_mean",
    "matched": "matched_auroc",
    "placebo": "placebo_auroc",
    "did_token": "did_auroc_mean",
    "did_matched": "did_matched_auroc",
    "did_placebo": "did_placebo_auroc",
}
BASELINES = ("turn_position", "relative_position", "end_proximity", "position")


def _norm(w: np.ndarray, gram: np.ndarray) -> float:
    return float(np.sqrt(max(w @ gram @ w, 1e-300)))


def _sd(x: Any, ddof: int = 1) -> float:
    a = np.asarray(x, dtype=np.float64)
    return float(a.std(ddof=ddof)) if a.size > ddof else float("nan")


def _mean(x: Any) -> float:
    a = np.asarray(x, dtype=np.float64)
    return float(a.mean()) if a.size else float("nan")


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
    """Held-out generalisation of the value direction at every layer, with baselines.

    For each of ``n_splits`` seeded splits, ``n_train`` criteria (groups) fit the direction and
    the rest are held out. Scores use the paper's readout, cos(h_t, v).

    Args:
        model: a TransformerLens-style model.
        data: BEFORE/AFTER-labelled sequences, one criterion per group.
        config: the sweep's settings (:class:`~value_lens.analysis.sweep_result.SweepConfig`:
            splits, seed, method, baselines, bootstrap, memory budget); default the paper's.
        layers: layers to sweep (default all).
        stats: precomputed :func:`collect_stats` output for ``data`` (skips the first pass).
        batch_size / truncate / progress: how the model is run (results do not depend on them).
        distributed: inside an initialised ``torch.distributed`` process group, every rank runs
            the model over its :class:`~value_lens.fitting.shards.ShardPlan` share of the
            sequences; the sums are added over the ranks and the per-token projections gathered
            in one-process order, so every rank returns the one-process result (equal up to
            fp64 round-off in the sums; with ``batch_size=1`` the activations match exactly).
        overrides: :class:`SweepConfig` fields set on top of ``config``, e.g. ``n_splits=3``.

    Returns:
        A :class:`~value_lens.analysis.sweep_result.SweepResult` whose ``table`` has one row per
        layer with columns ``layer``;
        ``token_auroc_mean`` (pooled held-out BEFORE vs AFTER tokens, averaged over splits),
        ``token_auroc_sd`` (sd over the splits, which overlap: not a standard error),
        ``token_auroc_ci_lo/hi`` (cluster-bootstrap CI of the mean, see ``config.ci``);
        ``function_score_mean`` (the paper's released 0/1 metric: per held-out criterion, does
        its AFTER-mean vector project onto the split's direction above its BEFORE-mean vector,
        ``(mean_AFTER - mean_BEFORE) . v > 0``; the fraction of wins, averaged over splits),
        ``function_score_sd_splits`` (sd, ddof=1, of the per-split fractions),
        ``function_score_sd_all_scores`` (``np.std`` over all split x held-out criterion 0/1
        scores, as the released code reports);
        ``random_auroc_mean/sd/p95`` (random directions sign-aligned on the training criteria,
        held-out tokens; over directions of their split means); ``shuffled_auroc_mean``
        (labels permuted within sequences before the fit); the position baselines
        ``turn_position_auroc``, ``relative_position_auroc``, ``end_proximity_auroc`` and the
        absolute ``position_auroc``; ``matched_auroc`` and ``placebo_auroc`` and the DiD axis's
        ``did_auroc_mean``, ``did_matched_auroc``, ``did_placebo_auroc`` (NaN without placebo
        labels), all explained in :mod:`value_lens.analysis.confounds`; ``*_ci_lo/hi`` for every
        token-level AUROC. AUROC > 0.5: the score is higher on AFTER tokens. The result also
        carries the cosine matrix, per-split details, timings and settings (see the module docs).

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> data = LabelledTokens.from_lists(
        ...     [[1, 5, 6, 7, 40, 41, 42]] * 4, [[-1, 0, 0, 0, 1, 1, 1]] * 4, "abcd")
        >>> sw = layer_sweep(tiny_qwen3(), data, SweepConfig(train_sets=(("a", "b"), ("c", "d"))),
        ...                  progress=False)
        >>> sw.table[["layer", "token_auroc_mean", "token_auroc_ci_lo"]].shape, sw.n_tokens
        ((2, 3), 24)
    """
    cfg = (config or SweepConfig()).with_overrides(**overrides)
    method, seed, n_random, ci = cfg.method, cfg.seed, cfg.n_random, cfg.ci
    counts = data.label_counts()
    if counts.get(BEFORE, 0) == 0 or counts.get(AFTER, 0) == 0:
        raise InputError(
            f"the dataset has one class only (label counts {counts}); the sweep needs both "
            "BEFORE (0) and AFTER (1) tokens"
        )
    if method == "did" and not (counts.get(PLACEBO_BEFORE) and counts.get(PLACEBO_AFTER)):
        raise InputError(
            "method='did' needs placebo turns (PLACEBO_BEFORE/PLACEBO_AFTER labels): label the "
            "conversations with icrl.label(..., placebo=True)"
        )
    L = resolve_layers(layers, n_layers(model))
    t0, c0 = time.perf_counter(), time.process_time()
    n_lab = sum(counts.get(c, 0) for c in (BEFORE, AFTER, PLACEBO_BEFORE, PLACEBO_AFTER))
    gen = torch.Generator().manual_seed(seed)
    rand = torch.randn(len(L), n_random, d_model(model), generator=gen, dtype=torch.float64)
    rand = rand / rand.norm(dim=-1, keepdim=True)
    opts: dict[str, Any] = {"batch_size": batch_size, "truncate": truncate, "progress": progress}
    share = None
    if distributed:
        share = RankShare.create(data, n_ctx(model), batch_size=batch_size, truncate=truncate)
    if stats is None and 4 * n_lab * len(L) * d_model(model) <= cfg.max_memory_gb * 2**30:
        basis, tp = single_pass(
            model,
            data,
            L,
            rand,
            cfg.min_count,
            opts,
            did=method == "did",
            n_shuffle=cfg.n_shuffle,
            seed=seed,
            share=share,
        )
        t1, c1 = t2, c2 = time.perf_counter(), time.process_time()
    else:
        basis = group_diffs_from_stats(
            model, data, L, stats, cfg.min_count, opts, distributed=distributed
        )
        t1, c1 = time.perf_counter(), time.process_time()
        full = torch.cat([basis.stacked(), rand], dim=1)
        mine = None if share is None else share.indices
        tp = project_tokens(model, data, L, full, basis.groups, indices=mine, **opts)
        if share is not None:
            tp = share.gather(tp)[0]
        t2, c2 = time.perf_counter(), time.process_time()
    groups, has = basis.groups, basis.has_placebo
    G, S = len(groups), basis.shuffled.shape[1]
    M = (2 + S) * G  # projections [:M] are onto basis.stacked(), then the random directions
    splits = train_splits(
        groups,
        data.group_names,
        n_splits=cfg.n_splits,
        n_train=cfg.n_train,
        seed=seed,
        train_sets=cfg.train_sets,
    )
    stacked = basis.stacked()
    gram = (stacked @ stacked.transpose(1, 2)).numpy()  # [L, M, M]
    rand_dot = (basis.diffs @ rand.transpose(1, 2)).numpy()  # [L, G, R]: d_g . r
    real = np.isin(tp.label, (BEFORE, AFTER))
    is_after = tp.label == AFTER
    safe_norm = np.maximum(tp.norm, 1e-12)
    cell_n = np.bincount((tp.group * 2 + is_after)[real], minlength=2 * G).reshape(G, 2)
    if (cell_n == 0).any():
        empty = [groups[g] for g in np.flatnonzero((cell_n == 0).any(axis=1))]
        raise InputError(f"groups {empty} have no BEFORE or AFTER tokens in data; check stats=")
    ci_meta: dict[str, Any] | None = None
    draws, level = None, 0.95
    tok_cluster = np.zeros(tp.label.size, dtype=np.int64)
    if ci is not None:
        tok_cluster, n_clusters, unit = token_clusters(data, tp, ci.cluster)
        draws, level = np.stack(list(cluster_counts(n_clusters, ci.n_boot, seed))), ci.level
        ci_meta = {**asdict(ci), "cluster": unit, "n_clusters": n_clusters, "seed": seed}
    pool = {k: SplitPool(len(L), len(splits), draws) for k in POOLED}
    base_pool = {k: SplitPool(1, len(splits), draws) for k in BASELINES}
    base_scores = position_scores(tp.position, tp.start, tp.to_end)

    def parts(score: np.ndarray, yes: np.ndarray, no: np.ndarray, strata: bool = False) -> Any:
        if not yes.any() or not no.any():
            return None
        st = {"pos_stratum": tp.to_end[yes], "neg_stratum": tp.to_end[no]} if strata else {}
        return ClusterAUROC.of(
            score[yes], score[no], pos_cluster=tok_cluster[yes], neg_cluster=tok_cluster[no], **st
        )

    split_recs: list[dict[str, Any]] = []
    per_layer: dict[str, list[list[Any]]] = {k: [[] for _ in L] for k in ("fn", "fn01")}
    rnd = np.full((len(L), len(splits), n_random), np.nan)
    shuf = np.full((len(L), len(splits), S), np.nan)
    for s, train in enumerate(splits):
        test = np.setdiff1d(np.arange(G), train)
        held = np.isin(tp.group, test)
        yes, no = held & is_after, held & real & ~is_after
        pyes, pno = held & (tp.label == PLACEBO_AFTER), held & (tp.label == PLACEBO_BEFORE)
        if not yes.any() or not no.any():
            raise InputError(f"split {s}: the held-out criteria lack BEFORE or AFTER tokens")
        for name in BASELINES:
            base_pool[name].add(0, s, parts(base_scores[name], yes, no))
        did_train = train[has[train]]
        w_did = did_weights(M, G, did_train)
        if method == "did" and w_did is None:
            raise InputError(f"split {s}: no training criterion has placebo turns for the DiD fit")
        for k in range(len(L)):
            w = w_did if method == "did" else split_weights(gram[k, :G, :G], train, method, M)
            assert w is not None
            score = {"": w, "did_": w_did}
            for prefix, wk in score.items():
                if wk is None:
                    continue
                cos = (tp.proj[k, :, :M] @ wk) / (safe_norm[k] * _norm(wk, gram[k]))
                tok = pool[f"{prefix}token"].add(k, s, parts(cos, yes, no))
                pool[f"{prefix}matched"].add(k, s, parts(cos, yes, no, strata=True))
                pool[f"{prefix}placebo"].add(k, s, parts(cos, pyes, pno))
                if prefix == "":
                    main_tok = tok
            for r in range(S):  # the shuffled-label null: the same fit on draw r's vectors
                blk = slice((2 + r) * G, (3 + r) * G)
                ws = np.zeros(M)
                if method == "did":
                    ws[blk.start + did_train] = 1.0 / len(did_train)
                else:
                    ws[blk] = split_weights(gram[k, blk, blk], train, method)
                if ws @ gram[k] @ ws <= 1e-12 * (ws**2 @ np.diag(gram[k])):
                    continue  # the permuted vectors cancel: no direction (NaN)
                cos = (tp.proj[k, :, :M] @ ws) / (safe_norm[k] * _norm(ws, gram[k]))
                shuf[k, s, r] = auroc(cos[yes], cos[no])
            # sign-aligned random directions: oriented by mean_g(d_g . r) over training groups
            sign = np.where(rand_dot[k, train].mean(0) < 0, -1.0, 1.0)
            rc = tp.proj[k, :, M:] / safe_norm[k][:, None]
            for r in range(n_random):
                a = auroc(rc[yes, r], rc[no, r])
                rnd[k, s, r] = a if sign[r] > 0 else 1.0 - a
            # (mean AFTER - mean BEFORE) of group h projects on v as d_h . v = (G w)_h
            wins = (gram[k, :G] @ w)[test] > 0
            per_layer["fn"][k].append(float(wins.mean()))
            per_layer["fn01"][k].extend(wins.tolist())
            split_recs.append(
                {
                    "split": s,
                    "layer": L[k],
                    "token_auroc": main_tok,
                    "function_score": float(wins.mean()),
                    "train_groups": [groups[i] for i in train],
                }
            )

    rows: list[dict[str, Any]] = []
    n_tr = [len(t) for t in splits]
    base = {n: base_pool[n].summary(0, level) for n in BASELINES}
    for k, layer in enumerate(L):
        row: dict[str, Any] = {"layer": layer}
        for name in POOLED:
            mean, lo, hi = pool[name].summary(k, level)
            col = POOLED[name]
            row[col], row[f"{col.removesuffix('_mean')}_ci_lo"] = mean, lo
            row[f"{col.removesuffix('_mean')}_ci_hi"] = hi
            if name == "token":
                row["token_auroc_sd"] = _sd(pool[name].point[k])
        per_dir = rnd[k].mean(0)  # [n_random]: each direction's mean over splits
        row.update(
            {
                "function_score_mean": _mean(per_layer["fn"][k]),
                "function_score_sd_splits": _sd(per_layer["fn"][k]),
                "function_score_sd_all_scores": _sd(per_layer["fn01"][k], ddof=0),
                "random_auroc_mean": _mean(per_dir),
                "random_auroc_sd": _sd(per_dir),
                "random_auroc_p95": float(np.quantile(per_dir, 0.95)) if n_random else np.nan,
                "shuffled_auroc_mean": _mean(shuf[k][np.isfinite(shuf[k])]),
                "position_auroc": base["position"][0],
            }
        )
        for name in BASELINES[:3]:
            row.update(
                dict(
                    zip(
                        [f"{name}_auroc", f"{name}_auroc_ci_lo", f"{name}_auroc_ci_hi"],
                        base[name],
                        strict=True,
                    )
                )
            )
        row.update(
            {
                "n_splits": len(splits),
                "n_train_groups": n_tr[0] if len(set(n_tr)) == 1 else float(np.mean(n_tr)),
                "n_test_groups": G - n_tr[0] if len(set(n_tr)) == 1 else G - float(np.mean(n_tr)),
            }
        )
        rows.append(row)
    all_g = np.arange(G)
    w_all = [
        did_weights(M, G, all_g[has])
        if method == "did"
        else split_weights(gram[k, :G, :G], all_g, method, M)
        for k in range(len(L))
    ]
    full_dirs = torch.stack([torch.from_numpy(w) @ stacked[k] for k, w in enumerate(w_all)])
    unit_dirs = full_dirs / full_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return SweepResult(
        table=pd.DataFrame(rows),
        config=cfg,
        layers=list(L),
        groups=list(groups),
        cosine=(unit_dirs @ unit_dirs.T).numpy(),
        splits=split_recs,
        ci=ci_meta,
        n_tokens=int(real.sum()),
        n_placebo_tokens=int((~real).sum()),
        timings={
            "collect_s": t1 - t0,
            "project_s": t2 - t1,
            "refit_s": time.perf_counter() - t2,
            "collect_cpu_s": c1 - c0,
            "project_cpu_s": c2 - c1,
            "refit_cpu_s": time.process_time() - c2,
        },
    )
