"""Best-of-k estimators over ``n`` samples of one problem, without regenerating anything.

Every estimator answers: *if ``k`` of the ``n`` samples were drawn uniformly at random (without
replacement), what is the expected accuracy of this way of picking one answer?*

* :func:`best_of_k`: pick the sample with the highest score (ties broken uniformly at random).
  Computed exactly by counting over ranks: sample ``i`` is picked when it is in the subset, no
  higher-scored sample is, and it wins the draw among the ``j`` tied samples that are also in.
* :func:`pass_at_k`: the oracle (any of the ``k`` samples correct), the unbiased estimator of
  Chen et al. (2021), ``1 - C(n - c, k) / C(n, k)``.
* :func:`vote_at_k`: plurality vote over the answers of the subset (optionally weighted by
  scores), ties broken uniformly; exact by enumerating the subsets when there are at most
  ``max_subsets`` of them, else that many seeded random subsets.
* :func:`vote`: one plurality vote, as the probability that each answer wins.

Random selection is ``correct.mean()`` for every ``k``.

Example:
    >>> best_of_k([0.9, 0.1, 0.5], [1, 0, 0], 2)  # subsets {0,1}, {0,2} pick 0; {1,2} picks 2
    0.6666666666666666
    >>> pass_at_k(4, 1, 2)
    0.5
    >>> vote(["7", "7", "8"], weights=[1.0, 1.0, 3.0])
    {'8': 1.0}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

from value_lens.analysis.metrics import rankdata
from value_lens.errors import InputError

__all__ = ["best_of_k", "best_of_k_curve", "pass_at_k", "vote", "vote_at_k"]

Weighting = Literal["rank", "raw"]


def _scores(scores: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(correct, dtype=np.float64).reshape(-1)
    if s.size != c.size or s.size == 0:
        raise InputError(f"need one score per sample, got {s.size} scores for {c.size} samples")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN or Inf; give unscorable samples a finite lowest score")
    return s, c


def best_of_k(scores: Any, correct: Any, k: int) -> float:
    """Expected accuracy of the top-scored sample of a uniform random ``k``-subset.

    Args:
        scores: one finite score per sample (higher = picked first).
        correct: one 0/1 (or fractional) correctness per sample.
        k: the subset size, ``1 <= k <= n``.
    """
    s, c = _scores(scores, correct)
    n = s.size
    if not 1 <= k <= n:
        raise InputError(f"k must be in 1..{n}, got {k}")
    total = math.comb(n, k)
    acc = 0.0
    for i in range(n):
        if c[i] == 0:
            continue
        below = int((s < s[i]).sum())
        tied = int((s == s[i]).sum()) - 1  # the others with the same score
        p = sum(
            math.comb(tied, j) * math.comb(below, k - 1 - j) / (j + 1)
            for j in range(min(tied, k - 1) + 1)
        )
        acc += c[i] * p / total
    return float(acc)


def best_of_k_curve(scores: Any, correct: Any) -> np.ndarray:
    """:func:`best_of_k` for ``k = 1..n`` (entry ``k - 1``)."""
    s, c = _scores(scores, correct)
    return np.array([best_of_k(s, c, k) for k in range(1, s.size + 1)])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: the chance that a random ``k``-subset of ``n`` samples (``c`` correct)
    holds at least one correct one."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise InputError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def vote(
    answers: Sequence[Hashable | None],
    weights: Sequence[float] | None = None,
) -> dict[Any, float]:
    """One (weighted) plurality vote: ``{answer: probability that it wins}``.

    ``None`` answers abstain. Each answer collects the summed weight of its samples (1 each
    without ``weights``); the answers tied for the most weight win with equal probability. An
    all-abstaining vote returns ``{}``.
    """
    w = [1.0] * len(answers) if weights is None else [float(x) for x in weights]
    if len(w) != len(answers):
        raise InputError(f"vote needs one weight per answer, got {len(w)} for {len(answers)}")
    if any(x < 0 or not math.isfinite(x) for x in w):
        raise InputError("vote weights must be finite and >= 0 (use weights='rank' for scores)")
    tally: dict[Any, float] = {}
    for a, x in zip(answers, w, strict=True):
        if a is not None:
            tally[a] = tally.get(a, 0.0) + x
    if not tally:
        return {}
    top = max(tally.values())
    winners = [a for a, x in tally.items() if math.isclose(x, top, rel_tol=1e-12, abs_tol=1e-12)]
    return {a: 1.0 / len(winners) for a in winners}


def _subsets(n: int, k: int, max_subsets: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(n, k) <= max_subsets:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.choice(n, k, replace=False).tolist())) for _ in range(max_subsets)]


def vote_at_k(
    answers: Sequence[Hashable | None],
    correct: Any,
    k: int,
    *,
    scores: Any = None,
    weighting: Weighting = "rank",
    max_subsets: int = 5000,
    seed: int = 0,
) -> float:
    """Expected accuracy of a plurality vote over a uniform random ``k``-subset.

    Args:
        answers: each sample's answer (the vote key; ``None`` abstains).
        correct: each sample's correctness; a winning answer scores the mean correctness of
            its samples (0 or 1 when the checker agrees with the answer key).
        k: subset size.
        scores: ``None`` for a plain majority vote; else each sample's score, turned into a
            vote weight by ``weighting``: ``"rank"`` (the score's rank within the subset,
            1 = lowest, ties averaged; any scale works) or ``"raw"`` (the score itself, which
            must be >= 0).
        max_subsets: enumerate every subset up to this many; beyond, draw this many at random.
        seed: the generator of those random subsets.
    """
    c = np.asarray(correct, dtype=np.float64).reshape(-1)
    n = len(answers)
    if c.size != n or n == 0:
        raise InputError(f"need one correctness per answer, got {c.size} for {n} answers")
    if not 1 <= k <= n:
        raise InputError(f"k must be in 1..{n}, got {k}")
    if weighting not in ("rank", "raw"):
        raise InputError(f"weighting must be 'rank' or 'raw', got {weighting!r}")
    s = None if scores is None else _scores(scores, c)[0]
    if s is not None and weighting == "raw" and (s < 0).any():
        raise InputError("weighting='raw' needs scores >= 0; use weighting='rank'")
    groups: dict[Any, list[int]] = {}
    for i, a in enumerate(answers):
        if a is not None:
            groups.setdefault(a, []).append(i)
    worth = {a: float(c[idx].mean()) for a, idx in groups.items()}
    subsets = _subsets(n, k, max_subsets, np.random.default_rng(seed))
    acc = 0.0
    for sub in subsets:
        w = None
        if s is not None:
            sub_s = s[list(sub)]
            w = rankdata(sub_s).tolist() if weighting == "rank" else sub_s.tolist()
        won = vote([answers[i] for i in sub], w)
        acc += sum(p * worth[a] for a, p in won.items())
    return acc / len(subsets)
