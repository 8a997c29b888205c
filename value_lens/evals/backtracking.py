"""Backtracking suite: does the value projection dip when a model second-guesses itself?

* :func:`find_backtracking` (from :mod:`value_lens.analysis.phrases`) finds the paper's
  backtracking phrases (case-insensitive, whole words; the list is configurable) as character
  spans.
* :func:`run_backtracking_suite` traces rollouts (generated with :mod:`value_lens.core.generate`
  from problems, or supplied as texts), then reports the mean cosine readout per 500-token band
  for backtracking vs non-backtracking rollouts (:func:`band_curves`, with counts and 95% CIs)
  and the event-locked mean trace +-100 tokens around each event (:func:`event_locked`): by
  default only events whose whole window fits in their rollout, averaged within each rollout
  first, with 95% CIs across rollouts.

Replies are rendered with ``enable_thinking=False`` by default (the paper's setting), so on Qwen3
a rollout is the visible answer after an empty think block, not reasoning.

Example:
    >>> find_backtracking("So x = 3. Wait, but wait... Actually no, I made a mistake.")
    [(10, 14, 'Wait'), (16, 24, 'But wait'), (28, 36, 'Actually'), (37, 41, 'No, '), (41, 57, 'I made a mistake')]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from value_lens.analysis.phrases import DEFAULT_PHRASES, find_backtracking
from value_lens.core.generate import GenerationConfig, generate
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.evals._common import (
    EvalResult,
    check_metric,
    mean_ci,
    open_log,
    prefill_trace,
    run_id,
    span_tokens,
)
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "BACKTRACKING_GENERATION",
    "DEFAULT_PHRASES",
    "band_curves",
    "event_locked",
    "event_windows",
    "find_backtracking",
    "run_backtracking_suite",
    "token_positions",
]

MATH_SYSTEM = (
    "You are a helpful math assistant. Solve the problem step by step. "
    "Put your final integer answer in \\boxed{}."
)

BACKTRACKING_GENERATION = GenerationConfig(max_new_tokens=512, temperature=0.7, system=MATH_SYSTEM)
"""Rollouts: sampled at T=0.7, up to 512 tokens, thinking off, under :data:`MATH_SYSTEM`."""


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


def band_curves(
    traces: Sequence[np.ndarray], backtracking: Sequence[bool], *, band: int = 500
) -> pd.DataFrame:
    """Mean value per token band, over the rollouts that reach each band.

    Each rollout contributes its mean over the band's tokens; rows give the mean over rollouts,
    their count ``n`` and a normal 95% CI, separately for backtracking and other rollouts.
    """
    if band < 1:
        raise InputError("band must be a positive number of tokens")
    rows = []
    longest = max((len(t) for t in traces), default=0)
    for flag in (True, False):
        for b0 in range(0, longest, band):
            vals = [
                float(t[b0 : b0 + band].mean())
                for t, f in zip(traces, backtracking, strict=True)
                if f == flag and len(t) > b0
            ]
            if not vals:
                continue
            m, n, lo, hi = mean_ci(vals)
            rows.append(
                {
                    "backtracking": flag,
                    "band_start": b0,
                    "band_end": b0 + band,
                    "mean": m,
                    "n": n,
                    "ci_lo": lo,
                    "ci_hi": hi,
                }
            )
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
    clusters: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Mean trace aligned on events: one row per offset in ``[-window, window]``.

    ``events[i]`` are token indices into ``traces[i]`` (one trace per rollout).

    * ``complete=True`` (default, as the paper's released code): only events whose whole window
      lies inside their trace count, so every offset averages the same events;
      ``n_events_skipped`` counts the others. ``complete=False`` also keeps partial windows: an
      offset then averages the events that reach it, a set that changes along the x-axis (early
      events feed only late offsets), which can draw dips that no event shows.
    * Events of one rollout are not independent, so each rollout's events are averaged first;
      ``mean`` is the mean of those rollout means and ``n``, ``ci_lo``/``ci_hi`` (normal 95% CI)
      are over rollouts. ``clusters`` (one label per trace, e.g. the problem) pools traces into
      larger clusters.

    Columns: ``offset``, ``mean``, ``n`` (rollouts or clusters), ``n_events``, ``ci_lo``,
    ``ci_hi``, ``n_events_skipped``.
    """
    labels = list(range(len(traces))) if clusters is None else list(clusters)
    if len(labels) != len(traces):
        raise InputError(f"{len(labels)} cluster labels for {len(traces)} traces; give one each")
    kept, skipped = event_windows(traces, events, window=window, complete=complete)
    by: dict[Any, list[np.ndarray]] = {}
    for i, vals in kept:
        by.setdefault(labels[i], []).append(vals)
    width = 2 * window + 1
    stack = [np.stack(v) for v in by.values()]
    counts = sum((np.isfinite(m).sum(0) for m in stack), np.zeros(width, dtype=int))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a partial window
        means = np.stack([np.nanmean(m, axis=0) for m in stack]) if stack else np.empty((0, width))
    rows = []
    for j, off in enumerate(range(-window, window + 1)):
        col = means[:, j]
        m, n, lo, hi = mean_ci(col[np.isfinite(col)])
        rows.append(
            {
                "offset": off,
                "mean": m,
                "n": n,
                "n_events": int(counts[j]),
                "ci_lo": lo,
                "ci_hi": hi,
                "n_events_skipped": skipped,
            }
        )
    return pd.DataFrame(rows)


def _score_rollout(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    msgs: list[dict[str, str]],
    *,
    phrases: Sequence[str],
    metric: str,
    truncate: bool,
    enable_thinking: bool | None,
) -> tuple[list[float], list[int]]:
    """Per-token values over the assistant reply (last message) and its event token indices."""
    if not msgs[-1]["content"].strip():
        raise InputError("a rollout is empty; drop empty replies before scoring")
    pf, tr = prefill_trace(
        model, msgs, axis, layer, truncate=truncate, enable_thinking=enable_thinking
    )
    idx = span_tokens(tr, pf.start, pf.end)
    vals = getattr(tr, metric)[0, idx].double().tolist()
    evs = token_positions(
        tr.offsets[idx].numpy(), find_backtracking(msgs[-1]["content"], phrases), pf.start
    )
    return vals, evs


def run_backtracking_suite(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    *,
    problems: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    n_rollouts: int = 4,
    gen: GenerationConfig = BACKTRACKING_GENERATION,
    user: str = "Solve the problem.",
    phrases: Sequence[str] = DEFAULT_PHRASES,
    band: int = 500,
    window: int = 100,
    complete_windows: bool = True,
    metric: str = "cosine",
    truncate: bool = False,
    log: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Trace rollouts and compare backtracking with non-backtracking ones.

    Args:
        model / axis / layer: what to read.
        problems: questions to roll out ``n_rollouts`` times each (problem ``i`` generated by
            :func:`value_lens.core.generate.generate` with ``gen`` and seed ``gen.seed + i``); or
        texts: finished assistant replies, scored as replies to ``user``.
        gen: the generation settings (:data:`BACKTRACKING_GENERATION`); its ``system`` prompt
            (``None``: none) opens every chat, generated or scored, and its
            ``enable_thinking`` is Qwen3's chat-template switch for generating and scoring
            replies: ``False`` (the paper's setting) scores each reply after the empty think
            block. A supplied text holding reasoning (``</think>``) then raises; set it to
            ``True`` to score such text as a thinking-mode reply, reasoning included.
        phrases: the backtracking phrases (:data:`DEFAULT_PHRASES`).
        band / window: band width and event window, in tokens.
        complete_windows: event-lock only events whose whole ``window`` fits in the rollout
            (the skipped ones are counted); ``False`` keeps partial windows.
        metric: ``"cosine"`` (the paper's readout, Eq. 2; Fig. 3b/3c) or ``"projection"``.
        truncate: cut chats beyond the model's context instead of raising.
        log: a JSONL path; each finished problem's (or text's) rollouts are appended there, with
            their traces, and skipped when a killed run is started again.

    Returns:
        ``table``: one row per rollout (tokens, event positions, backtracking flag, mean value,
        response); ``summary``: mean value by backtracking flag; ``extras["bands"]``
        (:func:`band_curves`) and ``extras["event_locked"]`` (:func:`event_locked`, one trace
        per rollout); ``meta``: the run's settings (``enable_thinking`` and ``metric``
        included) and ``n_events``, ``n_events_used``, ``n_events_skipped``.
    """
    check_metric(metric)
    enable_thinking = gen.enable_thinking
    head = [] if gen.system is None else [{"role": "system", "content": gen.system}]
    if (problems is None) == (texts is None):
        raise InputError("pass either problems (to generate rollouts) or texts (to score)")
    if texts is not None and not enable_thinking:
        bad = [i for i, t in enumerate(texts) if "</think>" in str(t)]
        if bad:
            raise InputError(
                f"text {bad[0]} holds reasoning (</think>) but enable_thinking=False scores replies "
                "after an empty think block; pass gen=GenerationConfig(enable_thinking=True, ...) or strip the "
                "reasoning"
            )
    run = run_id(
        "backtracking",
        model,
        axis,
        layer,
        metric=metric,
        phrases=list(phrases),
        n_rollouts=n_rollouts,
        **gen.to_dict(),
    )
    logf, done = open_log(log, run)
    items = list(texts) if texts is not None else list(problems or [])
    recs: list[dict[str, Any]] = []
    for i, item in enumerate(tqdm(items, desc="backtracking", disable=not progress)):
        key = f"{'text' if texts is not None else 'problem'}{i}"
        if key in done:
            recs += done[key]["rollouts"]
            continue
        if texts is not None:
            question, responses = user, [str(item)]
        else:
            question = str(item)
            msgs = [*head, {"role": "user", "content": question}]
            gens = generate(model, [msgs] * n_rollouts, gen.with_overrides(seed=gen.seed + i))
            responses = [g.text for g in gens]
        new = []
        for r, resp in enumerate(responses):
            msgs = [
                *head,
                {"role": "user", "content": question},
                {"role": "assistant", "content": resp},
            ]
            vals, evs = _score_rollout(
                model,
                axis,
                layer,
                msgs,
                phrases=phrases,
                metric=metric,
                truncate=truncate,
                enable_thinking=enable_thinking,
            )
            new.append(
                {
                    "problem": None if texts is not None else i,
                    "rollout": i if texts is not None else r,
                    "response": resp,
                    "values": vals,
                    "events": evs,
                }
            )
        if logf is not None:
            logf.append({"key": key, "run": run, "rollouts": new})
        recs += new
    traces = [np.asarray(r["values"], dtype=np.float64) for r in recs]
    events = [list(r["events"]) for r in recs]
    table = pd.DataFrame(
        [
            {
                "problem": r["problem"],
                "rollout": r["rollout"],
                "n_tokens": len(t),
                "n_events": len(e),
                "events": e,
                "backtracking": bool(e),
                "mean_value": float(t.mean()) if len(t) else float("nan"),
                "response": r["response"],
            }
            for r, t, e in zip(recs, traces, events, strict=True)
        ]
    )
    summary = (
        table.groupby("backtracking")
        .agg(
            n=("mean_value", "size"),
            mean_value=("mean_value", "mean"),
            mean_tokens=("n_tokens", "mean"),
        )
        .reset_index()
    )
    locked = event_locked(traces, events, window=window, complete=complete_windows)
    n_events = sum(len(e) for e in events)
    skipped = int(locked["n_events_skipped"].iloc[0])
    extras = {
        "bands": band_curves(traces, [bool(e) for e in events], band=band),
        "event_locked": locked,
    }
    meta = {
        **run,
        "band": band,
        "window": window,
        "complete_windows": complete_windows,
        "n_events": n_events,
        "n_events_used": n_events - skipped,
        "n_events_skipped": skipped,
    }
    return EvalResult(table, summary, extras, meta)
