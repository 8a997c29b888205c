"""Early stopping on arrays, and stopping rules compared at equal token budgets.

A stopping rule trades accuracy for tokens, and a rule that stops more saves more: comparing
two rules at the same warm-up *percentile* compares them at different budgets. This module puts
every rule on one accuracy-tokens-saved curve and compares rules at the **same share of tokens
saved**:

* :class:`StopInputs`: one set of rollouts as arrays (per problem and rollout: the running
  group means of the scorer, its trace score, the token count, the answer and the verdict).
* :func:`stop_curve`: DeepConf's online protocol (:func:`value_lens.decode.run.early_stop`) at
  every threshold of a grid, from "never stop" through the warm-up percentiles to "stop at the
  first full group": per problem the tokens kept and the accuracy of the vote.
* :func:`matched_random`: the length-matched random control of a rule: within each problem the
  rule's stops (at the same token counts) are dealt to the later rollouts at random.
* :func:`equal_budget`: each rule's accuracy at fixed shares of tokens saved, with paired
  per-problem differences against the full-run majority vote, against random stopping and
  against the rule's own length-matched random control, each with a problem-bootstrap interval.

Between two grid points the curve is the mixture of the two rules (each problem uses the upper
one with probability ``lambda``), whose expected tokens and accuracy are linear in ``lambda``:
so a budget between grid points is met exactly, in expectation, by a rule one could run.

Example:
    >>> import numpy as np
    >>> g = np.array([[[0.0, 1.0], [2.0, np.inf], [-1.0, 3.0]]])  # 1 problem, 3 rollouts, W=2
    >>> inp = StopInputs(g, np.nanmin(g, -1), np.array([[3, 2, 3]]),
    ...                  np.array([[0, 0, 1]]), np.array([[1.0, 1.0, 0.0]]), window=2)
    >>> cur = stop_curve(inp, warmup=1, percentiles=(50,))
    >>> cur.labels, cur.kept[0].tolist(), cur.accuracy[0].tolist()
    (('never', 'p50', 'always'), [8.0, 7.0, 7.0], [1.0, 1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from value_lens.analysis.clusters import cluster_counts
from value_lens.analysis.intervals import jackknife_interval
from value_lens.decode.rollouts import Sample
from value_lens.errors import InputError

__all__ = [
    "DEFAULT_GRID",
    "StopCurve",
    "StopInputs",
    "equal_budget",
    "matched_random",
    "stop_curve",
    "vote_accuracy",
]

#: warm-up percentiles of :func:`stop_curve` (between "never" and "always")
DEFAULT_GRID = tuple(range(0, 101, 5))


@dataclass(frozen=True)
class StopInputs:
    """One set of rollouts for early stopping, as ``[P, n]`` arrays (problem, rollout).

    Attributes:
        groups: ``[P, n, G]`` the running means of ``window`` consecutive token signals, in
            order (``+inf`` past a rollout's last full group, so it never stops there).
        scores: ``[P, n]`` trace scores (the lowest group mean; NaN: nothing to score).
        n_tokens: ``[P, n]`` new tokens per rollout.
        answers: ``[P, n]`` answer codes within each problem (``-1``: no answer).
        correct: ``[P, n]`` verdicts (0/1 or fractions).
        window: ``W``, the group size: a stop in group ``g`` keeps ``g + W`` tokens.
    """

    groups: np.ndarray
    scores: np.ndarray
    n_tokens: np.ndarray
    answers: np.ndarray
    correct: np.ndarray
    window: int

    def __post_init__(self) -> None:
        shape = self.scores.shape
        if self.groups.ndim != 3 or self.groups.shape[:2] != shape or len(shape) != 2:
            raise InputError(f"groups must be [P, n, G] over scores {shape}")
        for name in ("n_tokens", "answers", "correct"):
            if getattr(self, name).shape != shape:
                raise InputError(f"{name} must have shape {shape} (one per problem and rollout)")
        if self.window < 1:
            raise InputError(f"window must be >= 1, got {self.window}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(problems, rollouts per problem)``."""
        return int(self.scores.shape[0]), int(self.scores.shape[1])

    @classmethod
    def of(cls, samples: Sequence[Sample], n: int, scorer: Any) -> StopInputs:
        """From rollouts in problem order (``n`` each, sample ``i`` at position ``i``) and a
        running-group token scorer (``agg="lowest:W"``)."""
        from value_lens.decode.scorers import group_means

        w = scorer.group
        if w is None or len(samples) % n:
            raise InputError("need n rollouts per problem and a 'lowest:W' token scorer")
        p_count = len(samples) // n
        sig = [scorer.signal(s) for s in samples]
        width = max([x.numel() - w + 1 for x in sig] + [1])
        groups = np.full((len(samples), width), np.inf)
        for i, x in enumerate(sig):
            if x.numel() >= w:
                gm = group_means(x, w).numpy()
                groups[i, : gm.size] = gm
        codes = np.full(len(samples), -1)
        for p in range(p_count):
            seen: dict[Any, int] = {}
            for i in range(p * n, (p + 1) * n):
                if samples[i].index != i - p * n:
                    raise InputError("rollouts must be in problem order, sample i at position i")
                if samples[i].answer is not None:
                    codes[i] = seen.setdefault(samples[i].answer, len(seen))
        return cls(
            groups.reshape(p_count, n, width),
            np.array([scorer.one(s) for s in samples]).reshape(p_count, n),
            np.array([s.n_tokens for s in samples]).reshape(p_count, n),
            codes.reshape(p_count, n),
            np.array([s.correct for s in samples], dtype=np.float64).reshape(p_count, n),
            int(w),
        )


def vote_accuracy(keep: np.ndarray, answers: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Expected correctness of the plurality answer of the kept rollouts, per problem.

    ``keep`` is ``[..., P, n]``; ties split evenly; an answer is worth the mean verdict of its
    kept rollouts; no kept answer scores 0. Returns ``[..., P]``.

    >>> vote_accuracy(np.array([[True, True, True]]), np.array([[0, 0, 1]]),
    ...               np.array([[1.0, 1.0, 0.0]])).tolist()
    [1.0]
    """
    n_ans = int(answers.max()) + 1 if answers.size else 0
    if n_ans == 0:
        return np.zeros(keep.shape[:-1])
    onehot = (answers[..., None] == np.arange(n_ans)).astype(np.float64)  # [P, n, A]
    k = keep.astype(np.float64)
    tally = np.einsum("...pn,pna->...pa", k, onehot)
    worth = np.einsum("...pn,pna->...pa", k * correct, onehot)
    top = tally.max(-1, keepdims=True)
    win = (tally == top) & (tally > 0)
    n_win = win.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(win, worth / np.where(tally > 0, tally, 1.0), 0.0).sum(-1) / n_win
    return np.where(n_win > 0, val, 0.0)


def warmup_thresholds(inputs: StopInputs, warmup: int, percentiles: Sequence[float]) -> np.ndarray:
    """``[P, len(percentiles)]``: each problem's warm-up trace-score percentiles (``-inf``
    where no warm-up rollout has a score: nothing stops)."""
    p_count, n = inputs.shape
    if not 1 <= warmup < n:
        raise InputError(
            f"warmup must be in 1..{n - 1} (n={n}); DeepConf's default is 16 warm-ups, so "
            "sample n > 16 rollouts per problem or pass a smaller warmup="
        )
    warm = inputs.scores[:, :warmup]
    ok = np.isfinite(warm).all(1)
    out = np.full((p_count, len(percentiles)), -np.inf)
    if ok.any():  # the common case in one call: every warm-up rollout has a score
        out[ok] = np.percentile(warm[ok], list(percentiles), axis=1).T
    for p in np.flatnonzero(~ok):
        row = warm[p][np.isfinite(warm[p])]
        if row.size:
            out[p] = np.percentile(row, list(percentiles))
    return out


def stops(inputs: StopInputs, warmup: int, thresholds: np.ndarray) -> np.ndarray:
    """``[P, n, T]`` tokens kept by each rollout under each threshold column of ``[P, T]``
    ``thresholds``; ``-1`` where it is not stopped (warm-ups never are)."""
    below = inputs.groups[:, :, None, :] < thresholds[:, None, :, None]
    hit = np.asarray(below.any(-1))
    hit[:, :warmup] = False
    return np.where(hit, below.argmax(-1) + inputs.window, -1)


@dataclass(frozen=True)
class StopCurve:
    """A stopping rule along a grid of thresholds (from "never" to "always" stopping).

    Attributes:
        name: the rule's name; labels: one per grid point (``"never"``, ``"p10"``, ...).
        kept: ``[P, T]`` tokens written per problem; full: ``[P]`` without stopping.
        accuracy: ``[P, T]`` the vote of the warm-ups and unstopped rollouts;
            baseline: ``[P]`` the vote of all rollouts (the full-run majority).
        stops: ``[P, n, T]`` each rollout's kept tokens when stopped, else ``-1``.
        warmup: rollouts per problem that always run to the end.
    """

    name: str
    labels: tuple[str, ...]
    kept: np.ndarray
    full: np.ndarray
    accuracy: np.ndarray
    baseline: np.ndarray
    stops: np.ndarray
    warmup: int

    @property
    def tokens_saved(self) -> np.ndarray:
        """``[T]``: the share of the full run's tokens not written, at each grid point."""
        return np.asarray(1.0 - self.kept.sum(0) / self.full.sum())

    @property
    def stopped_share(self) -> np.ndarray:
        """``[T]``: the share of later (non-warm-up) rollouts stopped."""
        return np.asarray((self.stops[:, self.warmup :] >= 0).mean((0, 1)))


def _curve(name: str, inputs: StopInputs, warmup: int, st: np.ndarray, labels: Any) -> StopCurve:
    full_len = inputs.n_tokens.astype(np.float64)
    kept = np.where(st >= 0, st, full_len[:, :, None]).sum(1)
    keep = np.moveaxis(st < 0, -1, 0)  # [T, P, n]
    acc = vote_accuracy(keep, inputs.answers, inputs.correct).T
    base = vote_accuracy(np.ones(inputs.shape, dtype=bool), inputs.answers, inputs.correct)
    return StopCurve(name, tuple(labels), kept, full_len.sum(1), acc, base, st, warmup)


def stop_curve(
    inputs: StopInputs,
    warmup: int = 16,
    percentiles: Sequence[float] = DEFAULT_GRID,
    *,
    name: str = "",
) -> StopCurve:
    """The rule at "never", at each warm-up ``percentiles`` threshold, and at "always" (every
    later rollout stops at its first full group)."""
    thr = warmup_thresholds(inputs, warmup, percentiles)
    p_count = inputs.shape[0]
    grid = np.hstack([np.full((p_count, 1), -np.inf), thr, np.full((p_count, 1), np.inf)])
    labels = ["never", *[f"p{q:g}" for q in percentiles], "always"]
    return _curve(name, inputs, warmup, stops(inputs, warmup, grid), labels)


def matched_random(
    inputs: StopInputs, curve: StopCurve, *, draws: int = 64, seed: int = 0
) -> StopCurve:
    """The length-matched random control of ``curve``: within each problem, the rule's stops
    (``k`` tokens kept) are dealt to the later rollouts in a uniformly random order (``draws``
    deals, averaged). A rollout dealt ``k`` stops if it reaches token ``k`` (else it ends on its
    own and votes), so the control stops at the same token counts but picks rollouts blind."""
    p_count, n = inputs.shape
    w = curve.warmup
    later = n - w
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((draws, p_count, later)), -1)
    k = curve.stops[:, w:]  # [P, L, T]
    dealt = np.take_along_axis(k[None], perm[..., None], 2)  # [D, P, L, T]
    length = inputs.n_tokens[None, :, w:, None]
    stopped = (dealt >= 0) & (dealt <= length)
    st = np.full((draws, p_count, n, k.shape[-1]), -1)
    st[:, :, w:] = np.where(stopped, dealt, -1)
    full_len = inputs.n_tokens.astype(np.float64)
    kept = np.where(st >= 0, st, full_len[None, :, :, None]).sum(2).mean(0)
    keep = np.moveaxis(st < 0, -1, 1)  # [D, T, P, n]
    acc = vote_accuracy(keep, inputs.answers, inputs.correct).mean(0).T
    return StopCurve(
        f"{curve.name} (matched random)",
        curve.labels,
        kept,
        curve.full,
        acc,
        curve.baseline,
        st[0],
        w,
    )


def _at(acc: np.ndarray, saved: np.ndarray, s: float) -> np.ndarray:
    """``[B]``: accuracy at saving ``s`` on each row's curve (``[B, T]``), linear between grid
    points (the mixture of the two rules); NaN where ``s`` is beyond the row's largest saving."""
    saved = np.maximum.accumulate(saved, axis=1)
    hi = np.clip((saved < s - 1e-12).sum(1), 1, saved.shape[1] - 1)
    lo = hi - 1
    rows = np.arange(saved.shape[0])
    s_lo, s_hi = saved[rows, lo], saved[rows, hi]
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.clip(np.where(s_hi > s_lo, (s - s_lo) / (s_hi - s_lo), 0.0), 0.0, 1.0)
    out = (1 - lam) * acc[rows, lo] + lam * acc[rows, hi]
    return np.where(saved[:, -1] >= s - 1e-12, out, np.nan)


def _boot(curve: StopCurve, weights: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy at saving ``s`` and the full-run vote, for each problem weighting (row)."""
    tot = weights.sum(1, keepdims=True)
    saved = 1.0 - (weights @ curve.kept) / (weights @ curve.full)[:, None]
    return _at(weights @ curve.accuracy / tot, saved, s), weights @ curve.baseline / tot[:, 0]


def _interval(point: float, vals: np.ndarray, ci: float, method: str) -> dict[str, float]:
    ok = vals[np.isfinite(vals)]
    if not np.isfinite(point) or ok.size < 0.5 * vals.size:
        return {"": point, "_lo": np.nan, "_hi": np.nan}
    if method == "jackknife":
        iv = jackknife_interval(point, vals, ci)
        return {"": point, "_lo": iv.lo, "_hi": iv.hi}
    lo, hi = np.quantile(ok, [(1 - ci) / 2, (1 + ci) / 2])
    return {"": point, "_lo": float(lo), "_hi": float(hi)}


def equal_budget(
    curves: Mapping[str, StopCurve],
    savings: Sequence[float] = (0.1, 0.2, 0.3),
    *,
    random: str | None = "random_stop",
    matched: Mapping[str, StopCurve] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    method: Literal["jackknife", "percentile"] = "jackknife",
) -> pd.DataFrame:
    """Each rule's accuracy at each share of tokens ``savings``, with paired differences.

    One row per rule and saving: ``accuracy``; ``vs_majority`` (minus the full-run majority
    vote of the same problems); ``vs_random`` (minus the ``random`` rule at the same saving);
    ``vs_matched`` (minus the rule's length-matched random control in ``matched``). Each has
    ``_lo`` / ``_hi``, an interval over problems that re-solves the budget without each
    problem (``method="jackknife"``, the default: the leave-one-problem-out jackknife t
    interval) or on each of ``n_boot`` problem resamples (``"percentile"``: the percentile
    bootstrap, which covered 92% at 100 problems in the tests); NaN when over half of them
    cannot reach the saving. A saving beyond a rule's reach gives NaN.
    """
    first = next(iter(curves.values()), None)
    if first is None:
        raise InputError("equal_budget needs at least one stop curve")
    p_count = first.kept.shape[0]
    if any(c.kept.shape[0] != p_count for c in curves.values()):
        raise InputError("every curve must come from the same problems")
    if random is not None and random not in curves:
        raise InputError(f"no curve named {random!r} for the random-stop comparison")
    if method not in ("jackknife", "percentile"):
        raise InputError(f"method must be 'jackknife' or 'percentile', got {method!r}")
    if method == "jackknife":
        w = np.vstack([np.ones(p_count), 1.0 - np.eye(p_count)])
    else:
        w = np.vstack([np.ones(p_count), *cluster_counts(p_count, n_boot, seed)]).astype(float)
    rows = []
    for s in savings:
        ref = _boot(curves[random], w, s)[0] if random is not None else None
        for name, cur in curves.items():
            acc, base = _boot(cur, w, s)
            row: dict[str, Any] = {"scorer": name, "tokens_saved": float(s)}
            diffs = {"accuracy": acc, "vs_majority": acc - base}
            if ref is not None:
                diffs["vs_random"] = acc - ref
            if matched is not None and name in matched:
                diffs["vs_matched"] = acc - _boot(matched[name], w, s)[0]
            for key, v in diffs.items():
                iv = _interval(float(v[0]), v[1:], ci, method)
                row.update({key + suffix: x for suffix, x in iv.items()})
            rows.append(row)
    return pd.DataFrame(rows)
