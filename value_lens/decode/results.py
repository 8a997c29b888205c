"""What :func:`value_lens.decode.run.best_of_n` returns: the rollouts, every scorer's scores,
and the evaluation tables (correctness AUROC pooled and within problem, best-of-k curves and
their paired differences), each with a 95% interval over problems (the problem is the cluster:
its samples share its difficulty): a leave-one-problem-out jackknife for the AUROCs, a
percentile problem bootstrap for the best-of-k means.

* **Pooled AUROC**: all samples together, correct vs incorrect.
* **Within-problem AUROC**: the AUROC among one problem's samples, averaged over the problems
  that have both correct and incorrect samples (``n_mixed``); it removes the difficulty confound
  (an easy problem's samples score high *and* are correct).
* **Best-of-k curves** (``k = 1..n``): per problem the exact expected accuracy over uniform
  random ``k``-subsets of its ``n`` samples (:mod:`value_lens.decode.estimators`), then the mean
  over problems: each scorer (``argmax`` or ``weighted_vote``), ``random`` (the mean accuracy),
  ``majority`` (plain vote) and ``oracle`` (pass@k).

A scorer with several columns (``random_directions``) reports the mean of its columns' AUROCs
(``spread_p95``: their 95th percentile) and the mean of their curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from value_lens.analysis.clusters import cluster_counts
from value_lens.analysis.intervals import jackknife_interval
from value_lens.analysis.metrics import auroc, percentile_ci
from value_lens.decode.estimators import best_of_k_curve, pass_at_k, vote_at_k
from value_lens.decode.rollouts import Sample
from value_lens.errors import InputError

__all__ = ["BestOfN", "Selector", "problem_boot", "problem_jackknife"]

Selector = Literal["argmax", "weighted_vote"]


def problem_boot(
    stat: Callable[[np.ndarray], float],
    n_problems: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``stat(counts)`` over problem resamples (``counts[p]``: how often
    problem ``p`` was drawn); resamples where ``stat`` is undefined are dropped."""
    vals = []
    for w in cluster_counts(n_problems, n_boot, seed):
        try:
            vals.append(float(stat(w)))
        except (InputError, ZeroDivisionError, FloatingPointError):
            vals.append(float("nan"))
    try:
        return percentile_ci(vals, ci)
    except InputError:
        return float("nan"), float("nan")


def problem_jackknife(
    stat: Callable[[np.ndarray], float], n_problems: int, *, ci: float = 0.95
) -> tuple[float, float]:
    """The leave-one-problem-out jackknife t interval of ``stat(counts)`` (``counts``: 1 for
    every problem, 0 for the one left out); problems whose absence leaves ``stat`` undefined
    are dropped. Unlike a problem bootstrap it never counts a problem twice, which for a pair
    statistic such as the pooled AUROC would add pairs between two copies of one problem."""
    ones = np.ones(n_problems, dtype=np.int64)
    try:
        point = float(stat(ones))
    except (InputError, ZeroDivisionError, FloatingPointError):
        return float("nan"), float("nan")
    loo = []
    for p in range(n_problems):
        w = ones.copy()
        w[p] = 0
        try:
            loo.append(float(stat(w)))
        except (InputError, ZeroDivisionError, FloatingPointError):
            loo.append(float("nan"))
    iv = jackknife_interval(point, loo, ci)
    return iv.lo, iv.hi


def _pooled(scores: np.ndarray, y: np.ndarray, pid: np.ndarray, w: np.ndarray | None) -> float:
    """Mean over columns of the AUROC (samples of problem ``p`` repeated ``w[p]`` times)."""
    rep = np.ones(len(y), dtype=np.int64) if w is None else w[pid]
    pos, neg = (y > 0.5) & (rep > 0), (y <= 0.5) & (rep > 0)
    return float(
        np.mean([auroc(np.repeat(c[pos], rep[pos]), np.repeat(c[neg], rep[neg])) for c in scores.T])
    )


@dataclass(frozen=True, eq=False)
class BestOfN:
    """``n`` rollouts per problem and their scores.

    Attributes:
        samples: every rollout, problem by problem (:class:`~value_lens.decode.rollouts.Sample`).
        n: samples per problem.
        scores: ``{scorer: [n_samples, n_columns]}`` (higher = predicted correct).
        selector: the default selection rule of :meth:`curves`.
        info: the run's settings (generation config, scorer names), for the record.
    """

    samples: list[Sample]
    n: int
    scores: dict[str, np.ndarray]
    selector: Selector = "argmax"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.samples) % self.n:
            raise InputError(f"{len(self.samples)} samples is not a multiple of n={self.n}")

    @property
    def n_problems(self) -> int:
        return len(self.samples) // self.n

    @property
    def correct(self) -> np.ndarray:
        return np.array([s.correct for s in self.samples], dtype=np.float64)

    @property
    def problem_ids(self) -> np.ndarray:
        return np.array([s.problem for s in self.samples])

    @property
    def frame(self) -> pd.DataFrame:
        """One row per sample: problem, sample, tokens, answer, correctness, every score."""
        rows: dict[str, Any] = {
            "problem": self.problem_ids,
            "sample": [s.index for s in self.samples],
            "n_tokens": [s.n_tokens for s in self.samples],
            "hit_limit": [s.hit_limit for s in self.samples],
            "answer": [s.answer for s in self.samples],
            "correct": self.correct,
            "text": [s.text for s in self.samples],
        }
        for name, sc in self.scores.items():
            for j in range(sc.shape[1]):
                rows[name if sc.shape[1] == 1 else f"{name}[{j}]"] = sc[:, j]
        return pd.DataFrame(rows)

    def _by_problem(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.n_problems, self.n, *a.shape[1:])

    def auroc(
        self,
        *,
        n_boot: int = 1000,
        seed: int = 0,
        ci: float = 0.95,
        method: Literal["jackknife", "percentile"] = "jackknife",
    ) -> pd.DataFrame:
        """Each scorer's correctness AUROC, pooled and within problem, with intervals over
        problems: the leave-one-problem-out jackknife t interval (``method="jackknife"``, the
        default; it covered the planted truth at 20, 40 and 100 problems) or the percentile
        problem bootstrap of ``n_boot`` resamples (``"percentile"``)."""
        if method not in ("jackknife", "percentile"):
            raise InputError(f"method must be 'jackknife' or 'percentile', got {method!r}")

        def interval(stat: Callable[[np.ndarray], float]) -> tuple[float, float]:
            if method == "jackknife":
                return problem_jackknife(stat, self.n_problems, ci=ci)
            return problem_boot(stat, self.n_problems, n_boot=n_boot, seed=seed, ci=ci)

        y, pid, n_p = self.correct, self.problem_ids, self.n_problems
        if not (y > 0.5).any() or (y > 0.5).all():
            raise InputError("every sample is correct or every one is wrong: no AUROC")
        yp = self._by_problem(y) > 0.5
        mixed = yp.any(1) & ~yp.all(1)
        rows = []
        for name, sc in self.scores.items():
            per_col = [_pooled(c[:, None], y, pid, None) for c in sc.T]
            sp = self._by_problem(sc)
            within = np.full(n_p, np.nan)
            for p in np.flatnonzero(mixed):
                within[p] = np.mean([auroc(c[yp[p]], c[~yp[p]]) for c in sp[p].T])
            m = np.flatnonzero(mixed)

            def w_stat(w: np.ndarray, within: np.ndarray = within, m: np.ndarray = m) -> float:
                return float((w[m] * within[m]).sum() / w[m].sum())

            def p_stat(w: np.ndarray, sc: np.ndarray = sc) -> float:
                return _pooled(sc, y, pid, w)

            lo, hi = interval(p_stat)
            wlo, whi = interval(w_stat) if m.size else (np.nan, np.nan)
            rows.append(
                {
                    "scorer": name,
                    "columns": sc.shape[1],
                    "auroc": float(np.mean(per_col)),
                    "auroc_lo": lo,
                    "auroc_hi": hi,
                    "within": float(np.nanmean(within)) if m.size else float("nan"),
                    "within_lo": wlo,
                    "within_hi": whi,
                    "n_mixed": int(m.size),
                    "spread_p95": float(np.percentile(per_col, 95)) if sc.shape[1] > 1 else None,
                }
            )
        return pd.DataFrame(rows)

    def curve_matrix(self, method: str, selector: Selector | None = None) -> np.ndarray:
        """``[n_problems, n]``: per problem, the expected accuracy at ``k = 1..n`` of ``method``
        (a scorer name, ``"random"``, ``"majority"`` or ``"oracle"``)."""
        sel = selector or self.selector
        y = self._by_problem(self.correct)
        ans = [
            [s.answer for s in self.samples[p * self.n : (p + 1) * self.n]]
            for p in range(self.n_problems)
        ]
        ks = range(1, self.n + 1)
        if method == "random":
            return np.repeat(y.mean(1, keepdims=True), self.n, 1)
        if method == "oracle":
            c = (y > 0.5).sum(1)
            return np.array([[pass_at_k(self.n, int(ci), k) for k in ks] for ci in c])
        if method == "majority":
            return np.array(
                [[vote_at_k(a, yy, k) for k in ks] for a, yy in zip(ans, y, strict=True)]
            )
        if method not in self.scores:
            raise InputError(f"no scorer {method!r}; the run has {sorted(self.scores)}")
        sp = self._by_problem(self.scores[method])
        if sel == "argmax":
            per = [[best_of_k_curve(col, yy) for col in s.T] for s, yy in zip(sp, y, strict=True)]
        elif sel == "weighted_vote":
            per = [
                [np.array([vote_at_k(a, yy, k, scores=col) for k in ks]) for col in s.T]
                for s, a, yy in zip(sp, ans, y, strict=True)
            ]
        else:
            raise InputError(f"selector must be 'argmax' or 'weighted_vote', got {sel!r}")
        return np.array([np.mean(c, 0) for c in per])

    def curves(
        self,
        selector: Selector | None = None,
        *,
        methods: Sequence[str] | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        ci: float = 0.95,
    ) -> pd.DataFrame:
        """Best-of-k accuracy for ``k = 1..n``: one row per method and ``k`` with the mean over
        problems and its problem-bootstrap interval."""
        names = (
            list(methods) if methods is not None else [*self.scores, "random", "majority", "oracle"]
        )
        draws = np.stack(list(cluster_counts(self.n_problems, n_boot, seed))).astype(np.float64)
        alpha = (1 - ci) / 2
        rows = []
        for m in names:
            acc = self.curve_matrix(m, selector)
            boot = draws @ acc / self.n_problems
            lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
            for k in range(self.n):
                rows.append(
                    {
                        "method": m,
                        "k": k + 1,
                        "accuracy": float(acc[:, k].mean()),
                        "lo": float(lo[k]),
                        "hi": float(hi[k]),
                    }
                )
        return pd.DataFrame(rows)

    def differences(
        self,
        selector: Selector | None = None,
        *,
        methods: Sequence[str] | None = None,
        against: Sequence[str] = ("random", "majority"),
        n_boot: int = 1000,
        seed: int = 0,
        ci: float = 0.95,
    ) -> pd.DataFrame:
        """Paired per-problem differences of best-of-k accuracy, ``method - reference`` for each
        reference in ``against`` and ``k = 1..n``: the mean over problems of the per-problem
        difference, with a percentile bootstrap over problems (both terms from the same
        resampled problems). Columns ``method``, ``against``, ``k``, ``difference``, ``lo``,
        ``hi``."""
        names = list(methods) if methods is not None else list(self.scores)
        draws = np.stack(list(cluster_counts(self.n_problems, n_boot, seed))).astype(np.float64)
        alpha = (1 - ci) / 2
        refs = {r: self.curve_matrix(r, selector) for r in against}
        rows = []
        for m in names:
            acc = self.curve_matrix(m, selector)
            for r, ref in refs.items():
                diff = acc - ref
                boot = draws @ diff / self.n_problems
                lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
                rows += [
                    {
                        "method": m,
                        "against": r,
                        "k": k + 1,
                        "difference": float(diff[:, k].mean()),
                        "lo": float(lo[k]),
                        "hi": float(hi[k]),
                    }
                    for k in range(self.n)
                ]
        return pd.DataFrame(rows)
