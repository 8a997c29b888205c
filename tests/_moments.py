"""Statistics built by hand from raw token vectors, and numpy oracles of the second-moment methods.

Nothing here calls the code under test's accumulation: :func:`stats_from_tokens` sums the
vectors cell by cell with plain numpy loops, so tests can compare a fitter fed with these stats
against a closed form computed directly from the same vectors.
"""

from __future__ import annotations

import numpy as np
import torch

from value_lens.data.positions import POSITION_FEATURES
from value_lens.fitting.moments import ClassMoments, Reservoir
from value_lens.fitting.stats import ActivationStats


def stats_from_tokens(
    x: np.ndarray,
    labels: np.ndarray,
    groups: list[str] | np.ndarray,
    *,
    z: np.ndarray | None = None,
    moment_labels: tuple[int, ...] = (0, 1),
    sample_k: int = 0,
) -> ActivationStats:
    """One-layer stats of tokens ``x [N, D]`` with labels ``[N]`` and group names ``[N]``:
    sums, norms, squared sums, per-cell class moments (with position cross-moments when ``z``
    ``[N, F]`` is given) and, with ``sample_k``, a reservoir holding the first ``sample_k``
    tokens of each label (group-tagged)."""
    x = np.asarray(x, dtype=np.float64)
    labels, groups = np.asarray(labels), np.asarray(groups)
    names = list(dict.fromkeys(groups.tolist()))
    classes = sorted(set(labels.tolist()))
    G, C, D, K = len(names), len(classes), x.shape[1], len(moment_labels)
    count = np.zeros((G, C), dtype=np.int64)
    s, sq, norms = np.zeros((1, G, C, D)), np.zeros((1, G, C, D)), np.zeros((1, G, C))
    xx, x4, x2x = np.zeros((1, G, K, D, D)), np.zeros((1, G, K)), np.zeros((1, G, K, D))
    F = 0 if z is None else z.shape[1]
    zs, zz, xz = np.zeros((G, K, F)), np.zeros((G, K, F, F)), np.zeros((1, G, K, D, F))
    for t in range(len(x)):
        g, c = names.index(groups[t]), classes.index(labels[t])
        v = x[t]
        count[g, c] += 1
        s[0, g, c] += v
        sq[0, g, c] += v * v
        norms[0, g, c] += np.sqrt(v @ v)
        if labels[t] in moment_labels:
            k = moment_labels.index(labels[t])
            xx[0, g, k] += np.outer(v, v)
            x4[0, g, k] += (v @ v) ** 2
            x2x[0, g, k] += (v @ v) * v
            if z is not None:
                zs[g, k] += z[t]
                zz[g, k] += np.outer(z[t], z[t])
                xz[0, g, k] += np.outer(v, z[t])
    t64 = torch.from_numpy
    cm = ClassMoments(tuple(moment_labels), t64(xx), t64(x4), t64(x2x))
    if z is not None:
        cm.features, cm.z, cm.zz, cm.xz = POSITION_FEATURES[:F], t64(zs), t64(zz), t64(xz)
    sample = None
    if sample_k:
        keys = np.full((C, sample_k), np.inf)
        xs = np.zeros((1, C, sample_k, D), dtype=np.float32)
        tags = np.full((C, sample_k), -1)
        for c, lab in enumerate(classes):
            idx = np.flatnonzero(labels == lab)[:sample_k]
            keys[c, : len(idx)] = np.arange(len(idx))
            xs[0, c, : len(idx)] = x[idx]
            tags[c, : len(idx)] = [names.index(g) for g in groups[idx]]
        sample = Reservoir(sample_k, t64(keys), t64(xs), t64(tags))
    return ActivationStats(
        [0], names, classes, t64(count), t64(s), t64(norms), None, sample,
        {"model_id": "synthetic", "n_layers_model": 1}, cm, t64(sq),
    )  # fmt: skip


def cell_centred(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, keep: tuple[int, ...] = (0, 1)
) -> np.ndarray:
    """The tokens of labels ``keep``, each minus the mean of its own (group, label) cell."""
    rows = []
    for g in dict.fromkeys(groups.tolist()):
        for lab in keep:
            m = (groups == g) & (labels == lab)
            if m.any():
                rows.append(x[m] - x[m].mean(0))
    return np.concatenate(rows)


def mean_diff_oracle(x: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Eq. 1: mean over groups of (mean AFTER - mean BEFORE)."""
    diffs = [
        x[(groups == g) & (labels == 1)].mean(0) - x[(groups == g) & (labels == 0)].mean(0)
        for g in dict.fromkeys(groups.tolist())
    ]
    return np.mean(diffs, axis=0)


def ledoit_wolf_oracle(y: np.ndarray) -> float:
    """Ledoit & Wolf (2004) shrinkage of ``S = y'y / n`` towards ``tr(S)/D I``, every term
    computed token by token (no algebraic shortcut)."""
    n, d = y.shape
    s = y.T @ y / n
    m = np.trace(s) / d
    d2 = np.sum((s - m * np.eye(d)) ** 2)
    b2 = sum(np.sum((np.outer(v, v) - s) ** 2) for v in y) / n**2
    return float(min(b2, d2) / d2)


def leace_oracle(x: np.ndarray, z: np.ndarray, rho: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares eraser as the oblique projection ``Q = C (C' S^-1 C)^-1 C' S^-1`` of
    the constrained problem (``S = Cov(x)`` full rank, shrunk by ``rho`` towards ``tr/D I``,
    ``C = Cov(x, z)``): returns ``(mean, Q)`` with ``r(x) = x - Q (x - mean)``."""
    mu = x.mean(0)
    xc, zc = x - mu, z - z.mean(0)
    s = xc.T @ xc / len(x)
    s = (1 - rho) * s + rho * np.trace(s) / len(s) * np.eye(len(s))
    c = xc.T @ zc / len(x)
    si_c = np.linalg.solve(s, c)
    q = c @ np.linalg.solve(c.T @ si_c, si_c.T)
    return mu, q
