"""The splits of a layer sweep: training sets, each split's direction, the bootstrap's clusters.

* :func:`train_splits`: which criteria (groups) train each split;
* :func:`split_weights`: a split's direction written as weights over the groups' difference
  vectors, so every refit of :func:`value_lens.analysis.sweep.layer_sweep` is a few small matrix
  products;
* :func:`token_clusters`: the unit a cluster bootstrap resamples, per token.

Example:
    >>> import numpy as np
    >>> split_weights(np.eye(3), np.array([0, 2]), "mean_diff").tolist()
    [0.5, 0.0, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from value_lens.analysis.clusters import cluster_codes
from value_lens.analysis.sweep.tokens import TokenProjections
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError

__all__ = ["split_weights", "token_clusters", "train_splits"]


def train_splits(
    groups: list[str],
    all_groups: list[str],
    *,
    n_splits: int,
    n_train: int,
    seed: int,
    train_sets: Sequence[Sequence[str]] | None = None,
) -> list[np.ndarray]:
    """The training-group indices (into ``groups``, sorted) of every split.

    Without ``train_sets``, split ``s`` permutes the groups with
    ``numpy.random.default_rng([seed, s])`` and trains on the first ``n_train``. With
    ``train_sets`` (criterion names), those are the splits; every name must be a usable group
    and every set must leave at least one group held out.

    Example:
        >>> [t.tolist() for t in train_splits(["a", "b", "c"], ["a", "b", "c"], n_splits=1,
        ...                                    n_train=1, seed=0, train_sets=[["c", "a"]])]
        [[0, 2]]
    """
    G = len(groups)
    if train_sets is None:
        if n_splits < 1 or n_train < 1:
            raise InputError("n_splits and n_train must be positive")
        if G <= n_train:
            raise InputError(
                f"too few criteria for the split: {G} groups have both BEFORE and AFTER tokens "
                f"but n_train={n_train} leaves none held out; use n_train <= {G - 1} or add "
                "criteria"
            )
        perms = [np.random.default_rng([seed, s]).permutation(G) for s in range(n_splits)]
        return [np.sort(p[:n_train]) for p in perms]
    if isinstance(train_sets, str) or len(train_sets) == 0:
        raise InputError("train_sets needs a non-empty list of lists of criterion names")
    index = {g: i for i, g in enumerate(groups)}
    out = []
    for s, names in enumerate(train_sets):
        if isinstance(names, str) or len(names) == 0:
            raise InputError(
                f"train_sets[{s}] must be a non-empty list of criterion names, got {names!r}"
            )
        unknown = [n for n in names if n not in all_groups]
        if unknown:
            raise InputError(
                f"train_sets[{s}]: unknown criteria {unknown}; the data has {all_groups}"
            )
        unusable = [n for n in names if n not in index]
        if unusable:
            raise InputError(
                f"train_sets[{s}]: criteria {unusable} lack BEFORE or AFTER tokens (min_count) "
                "and are not used; drop them from train_sets or lower min_count"
            )
        if len(set(names)) != len(names):
            raise InputError(f"train_sets[{s}] names a criterion twice: {list(names)}")
        if len(names) >= G:
            raise InputError(
                f"train_sets[{s}] trains on every usable criterion and holds none out; leave "
                "at least one out"
            )
        out.append(np.sort([index[n] for n in names]))
    return out


def token_clusters(
    data: LabelledTokens, tp: TokenProjections, cluster: str
) -> tuple[np.ndarray, int, str]:
    """Cluster code of every token of ``tp`` for a cluster bootstrap, the count, and what it is.

    ``cluster`` is ``"sequence"``, ``"group"`` (criterion) or a ``meta`` key whose value is
    shared by the sequences of one cluster (e.g. ``"conversation_id"``). When no sequence has
    that key, each sequence is its own cluster (reported as ``"sequence"``). Codes follow
    :func:`value_lens.analysis.clusters.cluster_codes` over the tokens' labels (as strings for ``meta``).
    """
    if cluster == "group":
        labels: np.ndarray = tp.group
    elif cluster == "sequence" or all(cluster not in m for m in data.meta):
        labels, cluster = tp.seq, "sequence"
    else:
        missing = [i for i, m in enumerate(data.meta) if cluster not in m]
        if missing:
            raise InputError(
                f"{len(missing)} sequences (e.g. {missing[:3]}) have no meta[{cluster!r}] while "
                f"others do; set it on every sequence or pick another cluster (e.g. 'sequence')"
            )
        per_seq = np.array([str(m[cluster]) for m in data.meta])
        labels = per_seq[tp.seq]
    (codes,), n = cluster_codes(labels)
    return codes, n, cluster


def split_weights(
    gram: np.ndarray, train: np.ndarray, method: str, size: int | None = None
) -> np.ndarray:
    """Coefficients ``w`` (over all groups, zero off ``train``; padded with zeros to ``size``)
    of a split's direction, from the registered method's ``sweep_weights``.

    ``gram`` is ``[G, G]`` = ``d d'`` for one layer. ``mean_diff``: ``w = 1/n`` on the training
    groups; ``pca_diff``: the top right singular vector of the training diffs written over them
    (:mod:`value_lens.fitting.methods.common`). A method outside the span of the differences has
    no weights: the sweep refits it (:mod:`value_lens.analysis.sweep.explicit`).
    """
    from value_lens.fitting.methods import get_fitter

    fitter = get_fitter(method)
    if fitter.sweep_weights is None:
        raise InputError(
            f"method {method!r} is not a weighting of the groups' difference vectors; the sweep "
            "refits it from the statistics (value_lens.analysis.sweep.explicit)"
        )
    w = np.zeros(size or gram.shape[0])
    w[: gram.shape[0]] = fitter.sweep_weights(gram, np.asarray(train))
    return w
