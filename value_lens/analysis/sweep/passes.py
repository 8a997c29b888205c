"""The forward passes of a layer sweep (per-token projections onto a fixed basis).

:func:`project_tokens` stores, for every BEFORE/AFTER token and layer, its projections onto a
basis (every group's difference vector plus random directions) and its norm. The two
strategies :func:`group_diffs_from_stats` (statistics pass, then a projection pass) and
:func:`from_residuals` (keep the residuals, derive everything from them) feed
:func:`value_lens.analysis.sweep.layer_sweep`, which takes its training sets and bootstrap clusters
from :mod:`value_lens.analysis.sweep.splits`.

Besides BEFORE/AFTER tokens, the passes keep placebo tokens (``PLACEBO_BEFORE``/``PLACEBO_AFTER``,
from ``icrl.label(..., placebo=True)``) and every token's turn span, for the position controls of
:mod:`value_lens.analysis.confounds`. The single pass also builds the shuffled-label null's directions
(:func:`shuffled_diffs`); the two-pass path has no residuals to build them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float

from value_lens.analysis.sweep.explicit import Explicit
from value_lens.analysis.sweep.tokens import (
    MAX_BATCH_TOKENS,
    RankShare,
    TokenProjections,
)
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import d_model, model_device, n_ctx
from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import HookedModel
from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    LabelledTokens,
)
from value_lens.errors import InputError, NonFiniteActivationError
from value_lens.fitting.collect import checked_sequences, iter_batches, padded_batch
from value_lens.fitting.distributed import all_reduce_sum
from value_lens.fitting.stats import ActivationStats

KEPT = (BEFORE, AFTER, PLACEBO_BEFORE, PLACEBO_AFTER)

__all__ = [
    "SweepBasis",
    "TokenProjections",
    "group_diffs_from_stats",
    "project_tokens",
    "shuffled_diffs",
    "from_residuals",
]


@dataclass
class SweepBasis:
    """The directions a sweep's axes are built from, per layer (fp64).

    Attributes:
        diffs: ``[L, G, D]`` per group, mean AFTER - mean BEFORE.
        placebo: ``[L, G, D]`` per group, mean PLACEBO_AFTER - mean PLACEBO_BEFORE (zero
            where ``has_placebo`` is false).
        has_placebo: ``[G]`` the group has ``min_count`` tokens of both placebo labels.
        shuffled: ``[L, S, G, D]`` the axis's per-group vectors after permuting the labels
            within each sequence, one block per draw (``S = 0`` without residuals).
        groups: the usable groups' names.
        extra: refitted directions of methods outside the span of the differences
            (:mod:`value_lens.analysis.sweep.explicit`), one block per method.
    """

    diffs: torch.Tensor
    placebo: torch.Tensor
    has_placebo: np.ndarray
    shuffled: torch.Tensor
    groups: list[str]
    extra: list[Explicit] = field(default_factory=list)

    def stacked(self) -> torch.Tensor:
        """``[L, 2G + S*G + E, D]``: diffs, placebo diffs, every draw's shuffled vectors, then
        the extra blocks' rows."""
        n_l, _, d = self.diffs.shape
        parts = [self.diffs, self.placebo, self.shuffled.reshape(n_l, -1, d)]
        return torch.cat(parts + [e.rows.to(self.diffs.dtype) for e in self.extra], dim=1)

    @property
    def n_core(self) -> int:
        """Rows before the extra blocks: ``(2 + S) G``."""
        return int(self.diffs.shape[1] * (2 + self.shuffled.shape[1]))


def project_tokens(
    model: HookedModel,
    data: LabelledTokens,
    layers: list[int],
    basis: Float[torch.Tensor, "L K D"] | None,
    groups: list[str],
    *,
    batch_size: int = 8,
    max_batch_tokens: int | None = MAX_BATCH_TOKENS,
    truncate: bool = False,
    progress: bool = True,
    indices: list[int] | None = None,
    labels: tuple[int, ...] | None = KEPT,
) -> TokenProjections:
    """One forward pass storing each BEFORE/AFTER token's projections onto ``basis[layer]``.

    ``labels``: the labels of the tokens kept (default BEFORE, AFTER and the placebo labels;
    ``None``: every labelled token, as :func:`value_lens.analysis.sweep.stats.stats_from_residuals`
    needs).
    Tokens of groups not in ``groups`` are skipped. Memory is ``4 * N * L * (K + 1)`` bytes
    (e.g. 76k labelled tokens x 36 layers x 65 directions: 0.7 GB). With ``basis=None`` the
    residuals themselves are kept (``proj`` is then ``[L, N, D]``: ``4 * N * L * D`` bytes).
    ``indices`` runs only those sequences (a rank's share; ``seq`` still indexes ``data``).
    """
    limit, dev = n_ctx(model), model_device(model)
    gidx = {g: i for i, g in enumerate(groups)}
    seqs = checked_sequences(data, limit, truncate=truncate)
    lengths = [int(s.numel()) for s in seqs]
    run = list(range(len(seqs))) if indices is None else list(indices)
    pad_id = getattr(model.tokenizer, "pad_token_id", None) or 0
    per_layer: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    norms: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    meta: list[np.ndarray] = []
    bases = (
        {}
        if basis is None
        else {layer: basis[li].to(dev, torch.float32).T for li, layer in enumerate(layers)}
    )
    bar = progress_bar(
        total=sum(lengths[i] for i in run),
        unit="tok",
        desc="project",
        enabled=None if progress else False,
    )
    for pos in iter_batches([lengths[i] for i in run], batch_size, max_batch_tokens):
        idx = [run[p] for p in pos if data.groups[run[p]] in gidx]
        if not idx:
            continue
        tokens, lab = padded_batch(seqs, data.labels, idx, pad_id)
        sel = lab != IGNORE if labels is None else torch.isin(lab, torch.tensor(labels))
        rows, cols = sel.nonzero(as_tuple=True)
        start, end = _turn_spans(data, idx, lab)
        meta.append(
            np.stack(
                [
                    lab[rows, cols].numpy(),
                    np.array([gidx[data.groups[idx[r]]] for r in rows.tolist()], dtype=np.int64),
                    cols.numpy(),
                    (end[rows, cols] - cols).numpy(),
                    np.array([idx[r] for r in rows.tolist()], dtype=np.int64),
                    start[rows, cols].numpy(),
                ]
            ).reshape(6, -1)
        )
        flat_sel = sel.reshape(-1).to(dev)

        def read(layer: int, resid: torch.Tensor, flat_sel: torch.Tensor = flat_sel) -> None:
            x = resid.reshape(-1, resid.shape[-1])[flat_sel].float()
            if not bool(torch.isfinite(x).all()):
                raise NonFiniteActivationError(
                    f"NaN/Inf activations at layer {layer}; try another dtype or check the inputs"
                )
            per_layer[layer].append((x @ bases[layer] if bases else x).cpu())
            norms[layer].append(x.norm(dim=-1).cpu())

        run_resid_hooks(model, tokens.to(dev), {layer: read for layer in layers})
        bar.update(sum(lengths[i] for i in idx))
    bar.close()
    if not meta:  # no sequence of these groups (a rank's share may have none)
        k = basis.shape[1] if basis is not None else d_model(model)
        meta = [np.zeros((6, 0), dtype=np.int64)]
        for layer in layers:
            per_layer[layer], norms[layer] = [torch.zeros(0, k)], [torch.zeros(0)]
    m = np.concatenate(meta, axis=1)
    return TokenProjections(
        proj=torch.stack([torch.cat(per_layer[layer]) for layer in layers]).numpy(),
        norm=torch.stack([torch.cat(norms[layer]) for layer in layers]).numpy(),
        label=m[0],
        group=m[1],
        position=m[2],
        to_end=m[3],
        seq=m[4],
        start=m[5],
    )


def _turn_spans(
    data: LabelledTokens, idx: list[int], lab: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, T]`` turn start and end of every token of a batch: :meth:`turn_bounds`, with the
    labelled turn's end from :meth:`turn_end` (``meta["turn_end"]`` may come without a start)."""
    start = torch.zeros(lab.shape, dtype=torch.long)
    end = torch.zeros(lab.shape, dtype=torch.long)
    for r, i in enumerate(idx):
        s, e = data.turn_bounds(i)
        real = (data.labels[i] == BEFORE) | (data.labels[i] == AFTER)
        e = torch.where(real, torch.tensor(data.turn_end(i)), e)
        start[r, : s.numel()], end[r, : e.numel()] = s, e
    return start, end


def group_diffs_from_stats(
    data: LabelledTokens, L: list[int], stats: ActivationStats, min_count: int
) -> SweepBasis:
    """Per-group AFTER - BEFORE (and placebo) mean differences (fp64) from sufficient statistics.

    No residuals, so no shuffled-label vectors (``S = 0``).
    """
    if stats.meta.get("dataset_hash") not in (None, "", data.fingerprint()):
        raise InputError(
            "the given stats were collected on different data (dataset hash mismatch); "
            "pass the same LabelledTokens or let layer_sweep collect (stats=None)"
        )
    missing = [layer for layer in L if layer not in stats.layers]
    if missing:
        raise InputError(f"the given stats lack layers {missing}; collect them with layers={L}")
    rows = [stats.layers.index(layer) for layer in L]
    diffs, groups = stats.group_diffs(AFTER, BEFORE, min_count=min_count)
    diffs = diffs[rows].double()
    placebo = torch.zeros_like(diffs)
    has = np.zeros(len(groups), dtype=bool)
    if PLACEBO_BEFORE in stats.classes and PLACEBO_AFTER in stats.classes:
        ip, ineg = stats.class_index(PLACEBO_AFTER), stats.class_index(PLACEBO_BEFORE)
        means = stats.means()[rows].double()
        for g, name in enumerate(groups):
            j = stats.groups.index(name)
            if min(int(stats.count[j, ip]), int(stats.count[j, ineg])) >= max(min_count, 1):
                placebo[:, g], has[g] = means[:, j, ip] - means[:, j, ineg], True
    shuffled = torch.zeros(len(L), 0, len(groups), diffs.shape[-1], dtype=torch.float64)
    return SweepBasis(diffs, placebo, has, shuffled, groups)


def _class_means(
    x: torch.Tensor,
    group: torch.Tensor,
    is_pos: torch.Tensor,
    sel: torch.Tensor,
    n_groups: int,
    rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean(pos) - mean(neg) over tokens ``sel`` (``[L, G, D]`` fp64) and the counts.

    ``rows``: ``x`` holds only these tokens (this rank's); the sums are added over the ranks.
    """
    cell = group[sel] * 2 + is_pos[sel].long()
    n = torch.bincount(cell, minlength=2 * n_groups).reshape(-1, 2)
    if rows is not None:
        r = torch.from_numpy(rows)
        group, is_pos, sel = group[r], is_pos[r], sel[r]
        cell = group[sel] * 2 + is_pos[sel].long()
    sums = torch.zeros(x.shape[0], 2 * n_groups, x.shape[-1], dtype=torch.float64)
    sums.index_add_(1, cell, x[:, sel].double())
    if rows is not None:
        sums = all_reduce_sum(sums)
    means = sums.reshape(x.shape[0], n_groups, 2, -1) / n.clamp_min(1)[None, :, :, None]
    return means[:, :, 1] - means[:, :, 0], n


def shuffled_diffs(
    x: torch.Tensor,
    tp: TokenProjections,
    n_groups: int,
    *,
    pos: int,
    neg: int,
    n_draws: int,
    seed: int,
    rows: np.ndarray | None = None,
) -> torch.Tensor:
    """``[L, n_draws, G, D]`` per-group mean(pos) - mean(neg) after permuting the ``pos``/``neg``
    labels within each sequence (among that sequence's ``pos`` + ``neg`` tokens).

    The permutation keeps every sequence's (hence every group's) class counts, so each draw's
    vector is ``sum_t c_t h_t`` with ``c_t = 1/n_pos`` or ``-1/n_neg``: one weighted sum over the
    kept residuals ``x`` (``[L, N, D]``). Draw ``r`` uses ``numpy.random.default_rng([seed, r])``.
    ``rows``: ``x`` holds only these tokens of ``tp`` (a rank's); the sums are added over ranks.
    """
    idx = np.flatnonzero((tp.label == pos) | (tp.label == neg))
    by_seq = idx[np.argsort(tp.seq[idx], kind="stable")]
    group = torch.from_numpy(tp.group)
    sel = torch.from_numpy(np.isin(tp.label, (pos, neg)))
    out = torch.zeros(x.shape[0], n_draws, n_groups, x.shape[-1], dtype=torch.float64)
    for r in range(n_draws):
        rng = np.random.default_rng([seed, r])
        shuffled = idx[np.lexsort((rng.random(idx.size), tp.seq[idx]))]
        lab = tp.label.copy()
        lab[by_seq] = tp.label[shuffled]
        is_pos = torch.from_numpy(lab == pos)
        out[:, r] = _class_means(x, group, is_pos, sel, n_groups, rows)[0]
    return out


def from_residuals(
    raw: TokenProjections,
    data: LabelledTokens,
    rand: torch.Tensor,
    min_count: int,
    *,
    did: bool = False,
    n_shuffle: int = 0,
    seed: int = 0,
    share: RankShare | None = None,
) -> tuple[SweepBasis, TokenProjections]:
    """The sweep's basis and projections from kept residuals (``raw.proj``: ``[L, N, D]``, as
    :func:`project_tokens` with ``basis=None`` returns them): the one-pass path after its
    forward pass, so planted residuals can be swept too.

    The projections are onto :meth:`SweepBasis.stacked` then ``rand``. The shuffled vectors
    permute BEFORE/AFTER (and, for ``did``, PLACEBO_BEFORE/PLACEBO_AFTER, subtracted) within
    each sequence, ``n_shuffle`` draws seeded by ``seed``. With a ``share`` (under
    ``torch.distributed``) ``raw`` holds this rank's residuals only: the ranks' sums are added
    and only the tokens' labels and projections are gathered.
    """
    x = torch.from_numpy(raw.proj)  # [L, n, D] fp32 residuals (this rank's tokens)
    rows = None
    if share is not None:  # every rank's tokens (without residuals), in one-process order
        raw, rows = share.gather(
            raw.take(np.ones(raw.label.size, dtype=bool), proj=raw.proj[:, :, :0])
        )
    names = data.group_names
    g_all = torch.from_numpy(raw.group)
    real = torch.from_numpy(np.isin(raw.label, (BEFORE, AFTER)))
    fake = torch.from_numpy(np.isin(raw.label, (PLACEBO_BEFORE, PLACEBO_AFTER)))
    after = torch.from_numpy(raw.label == AFTER)
    diffs, n = _class_means(x, g_all, after, real, len(names), rows)
    ok = (n >= min_count).all(dim=1) & (n > 0).all(dim=1)
    if not bool(ok.any()):
        raise InputError(
            f"no group has at least {min_count} BEFORE and AFTER tokens; check the labelling"
        )
    fdiffs, fn = _class_means(
        x, g_all, torch.from_numpy(raw.label == PLACEBO_AFTER), fake, len(names), rows
    )
    has = ((fn >= max(min_count, 1)).all(dim=1) & ok)[ok].numpy()
    keep_g = ok.nonzero().squeeze(1)
    remap = torch.full((len(names),), -1, dtype=torch.long)
    remap[keep_g] = torch.arange(keep_g.numel())
    tok = (remap[g_all] >= 0).numpy()
    tp = raw.take(tok, proj=np.zeros((x.shape[0], int(tok.sum()), 0), dtype=np.float32))
    tp.group = remap[g_all][tok].numpy()
    G, rows_t = keep_g.numel(), None
    if rows is None:
        xt = x[:, tok]
    else:  # this rank's kept tokens, and their places among all kept tokens
        mine = tok[rows]
        xt, rows_t = x[:, mine], (np.cumsum(tok) - 1)[rows[mine]]
    shuffled = shuffled_diffs(
        xt, tp, G, pos=AFTER, neg=BEFORE, n_draws=n_shuffle, seed=seed, rows=rows_t
    )
    if did:
        fake_shuf = shuffled_diffs(
            xt,
            tp,
            G,
            pos=PLACEBO_AFTER,
            neg=PLACEBO_BEFORE,
            n_draws=n_shuffle,
            seed=seed,
            rows=rows_t,
        )
        shuffled = shuffled - fake_shuf * torch.from_numpy(has)[None, None, :, None]
    placebo = fdiffs[:, ok] * torch.from_numpy(has)[None, :, None]
    basis = SweepBasis(diffs[:, ok], placebo, has, shuffled, [names[i] for i in keep_g.tolist()])
    full = torch.cat([basis.stacked(), rand], dim=1).float()  # [L, K, D]
    proj = torch.einsum("lnd,lkd->lnk", xt, full).numpy()
    if share is not None and rows_t is not None:
        proj = share.gather_rows(proj, rows_t, int(tok.sum()))
    tp.proj = proj
    return basis, tp
