"""The backtracking suite's tables: value per token band and the event-locked trace, each with a
confidence interval that resamples problems, never rollouts or tokens.

Rollouts of one problem share its difficulty (and often its wording), so they are not
independent draws. Both tables take ``clusters=`` (one label per rollout, e.g. its problem):
the point estimate is unchanged, a mean over rollouts, and the interval is the leave-one-cluster-
out jackknife t interval of that mean (:func:`value_lens.evals._common.cluster_mean_ci`). Without
``clusters`` every rollout is its own cluster.

Example:
    >>> import numpy as np
    >>> t = [np.zeros(4), np.ones(4), np.full(4, 2.0), np.full(4, 3.0)]
    >>> df = band_curves(t, [True] * 4, band=2, clusters=[0, 0, 1, 2])
    >>> df[["band_start", "mean", "n", "n_clusters"]].to_dict("records")[0]
    {'band_start': 0, 'mean': 1.5, 'n': 4, 'n_clusters': 3}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from value_lens.errors import InputError
from value_lens.evals._common import cluster_means_ci

__all__ = ["band_curves", "event_locked", "event_windows", "token_positions"]


def token_positions(
    offsets: Any, spans: Sequence[tuple[int, int, str]], base: int = 0
) -> list[int]:
    """Index of the first token overlapping each character span (shifted by ``base`` chars).

    ``offsets`` is ``[T, 2]`` (tokenizer offset mapping); spans past the last token are dropped.

    >>> token_positions([[0, 2], [2, 6], [6, 7], [7, 12]], [(2, 6, "Wait"), (8, 12, "Hmm")])
    [1, 3]
    """
    ends = np.asarray(offsets)[:, 1]
    out = []
    for s, _, _ in spans:
        hit = np.flatnonzero(ends > base + s)
        if hit.size:
            out.append(int(hit[0]))
    return out


def _labels(clusters: Sequence[Any] | np.ndarray | None, n: int) -> list[Any]:
    labels = list(range(n)) if clusters is None else list(clusters)
    if len(labels) != n:
        raise InputError(f"{len(labels)} cluster labels for {n} traces; give one each")
    return labels


def band_curves(
    traces: Sequence[np.ndarray],
    backtracking: Sequence[bool] | np.ndarray,
    *,
    band: int = 500,
    clusters: Sequence[Any] | np.ndarray | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean value per token band, over the rollouts that reach each band.

    Each rollout contributes its mean over the band's tokens; rows give the mean over rollouts,
    their count ``n``, the clusters they come from (``n_clusters``) and the ``level`` interval
    (``ci_lo``, ``ci_hi``) over clusters, separately for backtracking and other rollouts.
    """
    if band < 1:
        raise InputError("band must be a positive number of tokens")
    labels = _labels(clusters, len(traces))
    flags = np.asarray(backtracking, dtype=bool).reshape(-1)
    if flags.size != len(traces):
        raise InputError(f"{flags.size} backtracking flags for {len(traces)} traces; give one each")
    longest = max((len(t) for t in traces), default=0)
    starts = list(range(0, longest, band))
    means = np.full((len(traces), len(starts)), np.nan)  # each rollout's mean per band it reaches
    for i, t in enumerate(traces):
        t = np.asarray(t, dtype=np.float64)
        for j, b0 in enumerate(starts):
            if len(t) > b0:
                means[i, j] = t[b0 : b0 + band].mean()
    rows = []
    for flag in (True, False):
        sel = flags == flag
        if not sel.any():
            continue
        ci = cluster_means_ci(means[sel], np.asarray(labels, dtype=object)[sel], level)
        for j, b0 in enumerate(starts):
            if ci["n"][j]:
                row = {k: v[j] for k, v in ci.items()}
                rows.append({"backtracking": flag, "band_start": b0, "band_end": b0 + band, **row})
    return pd.DataFrame(rows)


def event_windows(
    traces: Sequence[np.ndarray],
    events: Sequence[Sequence[int]],
    *,
    window: int,
    complete: bool = True,
) -> tuple[list[tuple[int, np.ndarray]], int]:
    """Each kept event's values at offsets ``-window..window`` (NaN past its trace's ends).

    Returns ``([(trace index, values), ...], n_skipped)``. With ``complete=True`` an event is
    kept only if its whole window lies inside its trace; the others are counted in
    ``n_skipped``.

    >>> kept, skipped = event_windows([np.arange(6.0)], [[0, 2, 5]], window=2)
    >>> [(i, v.tolist()) for i, v in kept], skipped
    ([(0, [0.0, 1.0, 2.0, 3.0, 4.0])], 2)
    """
    if window < 0:
        raise InputError("window must be a non-negative number of tokens")
    if len(traces) != len(events):
        raise InputError(f"{len(events)} event lists for {len(traces)} traces; give one per trace")
    offs = np.arange(-window, window + 1)
    kept, skipped = [], 0
    for i, (t, evs) in enumerate(zip(traces, events, strict=True)):
        t = np.asarray(t, dtype=np.float64)
        for e in evs:
            if not 0 <= e < len(t):
                raise InputError(f"event {e} lies outside trace {i} ({len(t)} tokens)")
            if complete and (e - window < 0 or e + window >= len(t)):
                skipped += 1
                continue
            pos = e + offs
            inside = (pos >= 0) & (pos < len(t))
            vals = np.full(offs.size, np.nan)
            vals[inside] = t[pos[inside]]
            kept.append((i, vals))
    return kept, skipped


def event_locked(
    traces: Sequence[np.ndarray],
    events: Sequence[Sequence[int]],
    *,
    window: int = 100,
    complete: bool = True,
    clusters: Sequence[Any] | np.ndarray | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean trace aligned on events: one row per offset in ``[-window, window]``.

    ``events[i]`` are token indices into ``traces[i]`` (one trace per rollout).

    * ``complete=True`` (default, as the paper's released code): only events whose whole window
      lies inside their trace count, so every offset averages the same events;
      ``n_events_skipped`` counts the others. ``complete=False`` also keeps partial windows: an
      offset then averages the events that reach it, a set that changes along the x-axis (early
      events feed only late offsets), which can draw dips that no event shows.
    * Events of one rollout are not independent, so each rollout's events are averaged first;
      ``mean`` is the mean of those rollout means over ``n`` rollouts. ``clusters`` (one label
      per trace, e.g. the problem) sets what the ``level`` interval resamples: whole clusters
      (leave-one-cluster-out jackknife), so rollouts of one problem move together.

    Columns: ``offset``, ``mean``, ``n`` (rollouts), ``n_clusters``, ``n_events``, ``ci_lo``,
    ``ci_hi``, ``n_events_skipped``.
    """
    labels = _labels(clusters, len(traces))
    kept, skipped = event_windows(traces, events, window=window, complete=complete)
    by: dict[int, list[np.ndarray]] = {}
    for i, vals in kept:
        by.setdefault(i, []).append(vals)
    width = 2 * window + 1
    stack = [np.stack(v) for v in by.values()]
    owners = [labels[i] for i in by]
    counts = sum((np.isfinite(m).sum(0) for m in stack), np.zeros(width, dtype=int))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a partial window
        means = np.stack([np.nanmean(m, axis=0) for m in stack]) if stack else np.empty((0, width))
    ci = cluster_means_ci(means, owners, level)
    offsets = range(-window, window + 1)
    return pd.DataFrame(
        [
            {"offset": off, **{k: v[j] for k, v in ci.items()}, "n_events": int(counts[j])}
            | {"n_events_skipped": skipped}
            for j, off in enumerate(offsets)
        ]
    )
