"""Cross-evaluation: every axis scored on every label set, held out, with cluster intervals.

A *label set* is labelled tokens plus which label is positive and which negative: the value
axis's BEFORE/AFTER tokens, high/low self-ratings
(:meth:`value_lens.data.self_rating.Ratings.labelled`), or a position-only control (placebo
turns, ``LabelSet("placebo", data, pos=PLACEBO_AFTER, neg=PLACEBO_BEFORE)``, or
:func:`position_halves`). An *axis spec* names the label set it is fitted on and a fitting
method. :func:`cross_evaluate`

1. splits the groups (criteria, task types) into training and held-out ones; a group name shared
   by several label sets goes to the same side in all of them (seeded coin per name), so an axis
   fitted on one set's training groups never sees the held-out groups of another;
2. fits every axis on its source set's training groups (one collection per source, with what
   its methods need), and sign-aligns ``n_random`` random unit directions on each set's
   training mean difference;
3. reads the held-out groups' tokens of every label set at ``layer`` once and scores each axis
   with the cosine readout (through its readout transform), the AUROC of positives vs negatives
   with a leave-one-cluster-out jackknife interval
   (:func:`~value_lens.analysis.metrics.bootstrap_ci` with ``groups=``, clusters from
   ``meta[cluster]``, by default the conversation; NaN with fewer than 3 clusters, as
   ``n_clusters`` shows). The random row reports the mean AUROC and
   the central ``ci`` range over its directions (a null band, not an interval).

Example:
    >>> relabel(LabelledTokens.from_lists([[1, 2, 3]], [[3, 4, 0]], ["g"]), 4, 3).labels[0].tolist()
    [0, 1, -1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.analysis.metrics import auroc, bootstrap_ci
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import model_device, n_ctx
from value_lens.core.protocols import HookedModel
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.collect import checked_sequences, collect_stats, iter_batches, padded_batch
from value_lens.fitting.methods import FitFn, Fitter, get_fitter
from value_lens.fitting.plan import CollectPlan

__all__ = [
    "AxisSpec",
    "CrossEval",
    "CrossEvalConfig",
    "LabelSet",
    "cross_evaluate",
    "position_halves",
    "relabel",
]


@dataclass(frozen=True)
class LabelSet:
    """Labelled tokens scored ``pos`` (positive) vs ``neg``; clusters from ``meta[cluster]``
    (each sequence its own cluster where the key is missing)."""

    name: str
    data: LabelledTokens
    pos: int = AFTER
    neg: int = BEFORE
    cluster: str = "conversation_id"


@dataclass(frozen=True)
class AxisSpec:
    """An axis to fit: on label set ``source``, with ``method`` and its keyword ``options``."""

    name: str
    source: str
    method: str | Fitter | FitFn = "mean_diff"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CrossEvalConfig:
    """Settings of :func:`cross_evaluate` (see the module docs)."""

    layer: int
    train_fraction: float = 0.5
    seed: int = 0
    n_random: int = 20
    ci: float = 0.95
    batch_size: int = 8
    max_moments_gb: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.train_fraction < 1:
            raise InputError(f"train_fraction must lie in (0, 1), got {self.train_fraction}")


@dataclass
class CrossEval:
    """The result: ``table`` (one row per axis and label set), the fitted ``axes`` and the
    ``splits`` (training and held-out groups per label set)."""

    table: pd.DataFrame
    axes: dict[str, ValueAxis]
    splits: dict[str, dict[str, list[str]]]
    config: CrossEvalConfig

    def matrix(self, value: str = "auroc") -> pd.DataFrame:
        """Axes x label sets of one column (``auroc``, ``ci_lo``, ``ci_hi`` ...)."""
        return self.table.pivot(index="axis", columns="label_set", values=value)


def relabel(data: LabelledTokens, pos: int, neg: int) -> LabelledTokens:
    """``pos`` tokens as AFTER, ``neg`` as BEFORE, every other token IGNORE."""
    labels = []
    for lab in data.labels:
        out = torch.full_like(lab, IGNORE)
        out[lab == pos], out[lab == neg] = AFTER, BEFORE
        labels.append(out)
    return LabelledTokens(
        list(data.input_ids), labels, list(data.groups), data.targets, list(data.meta)
    )


def position_halves(data: LabelledTokens) -> LabelledTokens:
    """A position-only label set: BEFORE and AFTER tokens relabelled by where they sit in their
    turn, the first half BEFORE and the second half AFTER (value labels ignored)."""
    labels = []
    for i, lab in enumerate(data.labels):
        start, end = data.turn_bounds(i)
        rel = (torch.arange(lab.numel()) - start).double() / (end - start).clamp_min(1)
        real = (lab == BEFORE) | (lab == AFTER)
        out = torch.full_like(lab, IGNORE)
        out[real & (rel < 0.5)], out[real & (rel >= 0.5)] = BEFORE, AFTER
        labels.append(out)
    return LabelledTokens(list(data.input_ids), labels, list(data.groups), None, list(data.meta))


def _coin(seed: int, name: str) -> float:
    h = hashlib.sha256(f"{seed}|{name}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64


def split_groups(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Training and held-out group names: a seeded coin per name, with at least one of each."""
    if len(names) < 2:
        raise InputError(f"a label set needs at least 2 groups to hold some out, got {list(names)}")
    ranked = sorted(names, key=lambda n: _coin(seed, n))
    train = [n for n in ranked if _coin(seed, n) < fraction] or ranked[:1]
    if len(train) == len(ranked):
        train = ranked[:-1]
    return sorted(train), sorted(n for n in names if n not in train)


def _residuals(
    model: HookedModel, data: LabelledTokens, layer: int, batch_size: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Residuals ``[N, D]`` (fp32, CPU) at ``layer`` of every labelled token, their labels and
    sequence indices."""
    seqs = checked_sequences(data, n_ctx(model), truncate=False)
    pad = getattr(model.tokenizer, "pad_token_id", None) or 0
    xs, labs, seq_of = [], [], []
    for rows in iter_batches([int(s.numel()) for s in seqs], batch_size):
        tokens, lab = padded_batch(seqs, data.labels, rows, pad)
        keep = lab != IGNORE

        def read(_layer: int, resid: torch.Tensor, keep: torch.Tensor = keep) -> None:
            xs.append(resid.float().cpu()[keep])

        run_resid_hooks(model, tokens.to(model_device(model)), {layer: read})
        labs.append(lab[keep].numpy())
        seq_of.append(torch.tensor(rows)[:, None].expand_as(lab)[keep].numpy())
    return torch.cat(xs), np.concatenate(labs), np.concatenate(seq_of)


def _clusters(ls: LabelSet, data: LabelledTokens, seq_of: np.ndarray) -> np.ndarray:
    per_seq = np.array([str(m.get(ls.cluster, f"seq{i}")) for i, m in enumerate(data.meta)])
    return per_seq[seq_of]


def _score(p: np.ndarray, lab: np.ndarray, cl: np.ndarray, ci: float) -> dict[str, Any]:
    """AUROC and its cluster jackknife interval (NaN with fewer than 3 usable clusters)."""
    pos, neg = lab == AFTER, lab == BEFORE
    try:
        lo, hi = bootstrap_ci(auroc, p[pos], p[neg], groups=[cl[pos], cl[neg]], ci=ci)
    except InputError:
        lo = hi = float("nan")
    return {"auroc": auroc(p[pos], p[neg]), "ci_lo": lo, "ci_hi": hi}


def _fit_axes(
    model: HookedModel,
    sets: dict[str, LabelledTokens],
    specs: Sequence[AxisSpec],
    cfg: CrossEvalConfig,
) -> tuple[dict[str, ValueAxis], dict[str, torch.Tensor]]:
    """Every spec fitted on its source's (training) tokens; each set's training mean difference."""
    axes, dmu = {}, {}
    for name, data in sets.items():
        mine = [s for s in specs if s.source == name]
        plan = CollectPlan(max_moments_gb=cfg.max_moments_gb)
        for s in mine:
            plan = plan | get_fitter(s.method).needs
        stats = collect_stats(
            model, data, layers=[cfg.layer], plan=plan, batch_size=cfg.batch_size, progress=False
        )
        dmu[name] = stats.group_diffs()[0].mean(dim=1)[0].float()
        for s in mine:
            axes[s.name] = ValueAxis.fit(stats, s.method, **dict(s.options))
    return axes, dmu


def cross_evaluate(
    model: HookedModel,
    label_sets: Sequence[LabelSet],
    axes: Sequence[AxisSpec],
    config: CrossEvalConfig,
) -> CrossEval:
    """Fit every axis on its source's training groups and score it on every label set's
    held-out groups (see the module docs)."""
    names = [ls.name for ls in label_sets]
    if len(set(names)) != len(names) or len({a.name for a in axes}) != len(axes):
        raise InputError("label sets and axes need unique names")
    unknown = sorted({a.source for a in axes} - set(names))
    if unknown or "random" in {a.name for a in axes}:
        raise InputError(f"axes name unknown label sets {unknown} (or use the reserved 'random')")
    splits, train, held = {}, {}, {}
    for ls in label_sets:
        data = relabel(ls.data, ls.pos, ls.neg)
        tr, te = split_groups(data.group_names, config.train_fraction, config.seed)
        splits[ls.name] = {"train": tr, "held_out": te}
        train[ls.name], held[ls.name] = data.select_groups(tr), data.select_groups(te)
    fitted, dmu = _fit_axes(model, train, axes, config)
    gen = torch.Generator().manual_seed(config.seed)
    rand = torch.randn(config.n_random, next(iter(dmu.values())).numel(), generator=gen)
    rows = []
    for ls in label_sets:
        x, lab, seq_of = _residuals(model, held[ls.name], config.layer, config.batch_size)
        cl = _clusters(ls, held[ls.name], seq_of)
        base = {"label_set": ls.name, "n_pos": int((lab == AFTER).sum())}
        base.update(n_neg=int((lab == BEFORE).sum()), n_clusters=len(set(cl.tolist())))
        for spec in axes:
            p = fitted[spec.name].read(x, config.layer)[1].double().numpy()
            score = _score(p, lab, cl, config.ci)
            rows.append({"axis": spec.name, **base, "diagonal": spec.source == ls.name, **score})
        score = _random_row(x, lab, rand, dmu[ls.name], config.ci)
        rows.append({"axis": "random", **base, "diagonal": False, **score})
    return CrossEval(pd.DataFrame(rows), fitted, splits, config)


def _random_row(
    x: torch.Tensor, lab: np.ndarray, rand: torch.Tensor, dmu: torch.Tensor, ci: float
) -> dict[str, Any]:
    """Random unit directions, sign-aligned on the training mean difference: mean AUROC and the
    central ``ci`` range over directions."""
    if rand.shape[0] == 0:
        return {"auroc": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan")}
    r = rand * torch.sign(rand @ dmu)[:, None]
    r = r / r.norm(dim=-1, keepdim=True)
    cos = (x @ r.T) / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    pos, neg = lab == AFTER, lab == BEFORE
    a = np.array([auroc(c[pos], c[neg]) for c in cos.T.double().numpy()])
    lo, hi = np.quantile(a, [(1 - ci) / 2, (1 + ci) / 2])
    return {"auroc": float(a.mean()), "ci_lo": float(lo), "ci_hi": float(hi)}
