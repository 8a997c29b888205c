"""Helpers shared by the evaluation suites: chat prefills, span scoring, CIs, results.

Every suite renders its chats with Qwen3's ``enable_thinking`` switch off by default, as the
paper does: the reply then follows an empty ``<think>\\n\\n</think>\\n\\n`` block.

Example:
    >>> visible_reply("<think>\\n2 + 2 is 4\\n</think>\\n\\nIt is 4."), visible_reply("It is 4.")
    ('It is 4.', 'It is 4.')
    >>> visible_reply("<think>\\nstill thinking") is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.analysis.clusters import cluster_codes
from value_lens.analysis.intervals import cluster_jackknife, jackknife_interval, t_quantile
from value_lens.analysis.readout import ValueTrace, trace
from value_lens.core.chat import format_chat
from value_lens.core.io import JsonlLog, read_jsonl
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "EvalResult",
    "Prefilled",
    "check_metric",
    "load_jsonl",
    "ReadOptions",
    "cluster_mean_ci",
    "cluster_means_ci",
    "jackknife_ci",
    "open_log",
    "prefill",
    "prefill_trace",
    "run_id",
    "score_text",
    "span_tokens",
    "visible_reply",
]


@dataclass
class EvalResult:
    """What a suite runner returns.

    Attributes:
        table: tidy per-item rows (one per problem, pair, rollout or prefill).
        summary: the suite's headline numbers, one row per condition.
        extras: further tidy tables (e.g. band curves, event-locked traces).
        meta: the run's settings (suite, model, layer, axis hash, ``metric``,
            ``enable_thinking``, ...) and counts a table cannot hold.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prefilled:
    """A chat-formatted text whose last message is the prefilled assistant reply."""

    text: str
    start: int  # character span of the last message's content
    end: int


def prefill(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], *, enable_thinking: bool | None = False
) -> Prefilled:
    """The text a model reads when it has just written the last message of ``messages`` itself.

    The earlier messages are rendered with the generation prompt (under ``enable_thinking``:
    ``False``, the paper's setting, opens the reply after Qwen3's empty think block) and the last
    message's content is appended, with no end-of-turn marker after it.

    >>> from value_lens.testing import tiny_tokenizer
    >>> pf = prefill(tiny_tokenizer(), [{"role": "user", "content": "Hi"},
    ...                                 {"role": "assistant", "content": "Yes"}])
    >>> pf.text
    '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\nYes'
    >>> pf.text[pf.start : pf.end]
    'Yes'
    """
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        raise InputError(
            "a prefill needs at least one message before it and ends with an assistant message"
        )
    chat = format_chat(
        tokenizer, messages[:-1], add_generation_prompt=True, enable_thinking=enable_thinking
    )
    content = str(messages[-1]["content"])
    return Prefilled(chat.text + content, len(chat.text), len(chat.text) + len(content))


def visible_reply(text: str) -> str | None:
    """The part of a reply that a Qwen3 chat shows in later turns: what follows ``</think>``.

    Leading newlines after ``</think>`` are dropped, as Qwen3's template does; text without a
    think block is returned unchanged, and a reply that opens ``<think>`` but never closes it
    (its reasoning ran out of tokens) gives ``None``.
    """
    if "</think>" in text:
        return text.split("</think>")[-1].lstrip("\n")
    if text.lstrip().startswith("<think>"):
        return None
    return text


def score_text(
    model: GenerativeModel, text: str, axis: ValueAxis, layer: int, *, truncate: bool = False
) -> ValueTrace:
    """Per-token readout of ``text`` at one layer (clear error when it exceeds the context)."""
    return trace(model, text, axis, [layer], truncate=truncate)


def prefill_trace(
    model: GenerativeModel,
    messages: Sequence[Mapping[str, str]],
    axis: ValueAxis,
    layer: int,
    *,
    enable_thinking: bool | None,
    truncate: bool = False,
) -> tuple[Prefilled, ValueTrace]:
    """:func:`prefill` ``messages`` with the model's tokenizer and :func:`score_text` the result."""
    pf = prefill(model.tokenizer, messages, enable_thinking=enable_thinking)
    return pf, score_text(model, pf.text, axis, layer, truncate=truncate)


def check_metric(metric: str) -> None:
    """Raise :class:`InputError` unless ``metric`` is a per-token readout of a ValueTrace."""
    if metric not in {"projection", "cosine"}:
        raise InputError("metric must be 'projection' or 'cosine'")


def span_tokens(tr: ValueTrace, start: int, end: int) -> torch.Tensor:
    """Indices of the tokens of ``tr`` overlapping the character span ``[start, end)``."""
    if (tr.offsets < 0).all():
        raise InputError(
            "this tokenizer gives no character offsets; the suites need a fast tokenizer"
        )
    return tr.char_span_mask(start, end).nonzero().squeeze(1)


def cluster_mean_ci(values: Any, clusters: Any = None, level: float = 0.95) -> dict[str, Any]:
    """The mean of ``values`` with a confidence interval that resamples whole clusters.

    ``clusters`` holds one label per value (e.g. the problem of each rollout; ``None``: every
    value is its own cluster). Non-finite values are left out. The interval is the
    leave-one-cluster-out jackknife t interval of the mean over values
    (:func:`value_lens.analysis.intervals.jackknife_interval`): rollouts of one problem share
    its difficulty, so they are not independent draws. Fewer than 3 clusters give NaN bounds.

    Returns ``{"mean", "n", "n_clusters", "ci_lo", "ci_hi"}``.

    >>> r = cluster_mean_ci([1.0, 2.0, 3.0, 4.0], clusters=["a", "a", "b", "c"])
    >>> r["mean"], r["n"], r["n_clusters"]
    (2.5, 4, 3)
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return {k: x[0] for k, x in cluster_means_ci(v, clusters, level).items()}


def cluster_means_ci(matrix: Any, clusters: Any = None, level: float = 0.95) -> dict[str, Any]:
    """:func:`cluster_mean_ci` of every column of ``matrix`` (``[n, k]``; NaN: not observed),
    at once. Returns ``{"mean", "n", "n_clusters", "ci_lo", "ci_hi"}``, each a list of ``k``."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"matrix must be [n, k], got shape {x.shape}")
    labels = np.arange(x.shape[0]) if clusters is None else np.asarray(clusters, dtype=object)
    if labels.size != x.shape[0]:
        raise InputError(f"{labels.size} cluster labels for {x.shape[0]} values; give one each")
    codes = pd.factorize(pd.Series(labels.astype(str)))[0]
    onehot = np.zeros((int(codes.max(initial=-1)) + 1, x.shape[0]))
    onehot[codes, np.arange(x.shape[0])] = 1.0
    ok = np.isfinite(x)
    sums, counts = onehot @ np.where(ok, x, 0.0), onehot @ ok  # [C, k]
    n = counts.sum(0)
    present = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums.sum(0) / n
        loo = (sums.sum(0) - sums) / (n - counts)
    loo = np.where(present & np.isfinite(loo), loo, np.nan)
    c = np.isfinite(loo).sum(0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dev = ((loo - np.nanmean(loo, 0)) ** 2).sum(0, where=np.isfinite(loo))
    se = np.sqrt((c - 1) / np.maximum(c, 1) * dev)
    half = np.array([_t(level, int(ci)) for ci in c]) * se
    lo, hi = np.where(c >= 3, mean - half, np.nan), np.where(c >= 3, mean + half, np.nan)
    return {
        "mean": [float(m) for m in mean],
        "n": [int(v) for v in n],
        "n_clusters": [int(v) for v in present.sum(0)],
        "ci_lo": [float(v) for v in lo],
        "ci_hi": [float(v) for v in hi],
    }


def _t(level: float, clusters: int) -> float:
    """The two-sided ``level`` t quantile on ``clusters - 1`` degrees of freedom (NaN below 3)."""
    return t_quantile((1 + level) / 2, clusters - 1) if clusters >= 3 else float("nan")


def jackknife_ci(
    fn: Callable[..., float],
    arrays: Sequence[Any],
    clusters: Sequence[Any],
    level: float = 0.95,
) -> tuple[float, float]:
    """The leave-one-cluster-out jackknife t interval of ``fn(*arrays)`` (the interval of
    :func:`value_lens.analysis.metrics.bootstrap_ci` with ``groups=``, without its error for
    fewer than 3 clusters: NaN bounds then). ``clusters[i]`` labels every value of
    ``arrays[i]``.

    >>> lo, hi = jackknife_ci(lambda a: float(np.mean(a)), [[1.0, 2.0, 3.0, 4.0]], [[0, 1, 2, 3]])
    >>> round(lo, 3), round(hi, 3)
    (0.446, 4.554)
    """
    arrs = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    codes, n_clusters = cluster_codes(*[np.asarray(c, dtype=object) for c in clusters])
    loo = cluster_jackknife(fn, arrs, codes, n_clusters)
    try:
        point = float(fn(*arrs))
    except InputError:
        point = float("nan")
    iv = jackknife_interval(point, loo, level)
    return iv.lo, iv.hi


@dataclass(frozen=True)
class ReadOptions:
    """How an evaluation suite reads the axis, shared by the three runners.

    Attributes:
        metric: ``"cosine"`` (the paper's readout, Eq. 2) or ``"projection"`` (residual units).
        truncate: cut chats beyond the model's context instead of raising.
        log: a JSONL path; finished items are appended there and skipped when a killed run is
            started again with the same arguments.
        progress: show a progress bar.

    >>> ReadOptions.of(None, progress=False)
    ReadOptions(metric='cosine', truncate=False, log=None, progress=False)
    """

    metric: str = "cosine"
    truncate: bool = False
    log: str | os.PathLike[str] | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_metric(self.metric)

    @classmethod
    def of(cls, read: ReadOptions | None, **overrides: Any) -> ReadOptions:
        """``read`` (default: the defaults) with the keyword shortcuts the runners accept."""
        base = read or cls()
        unknown = sorted(set(overrides) - {"metric", "truncate", "log", "progress"})
        if unknown:
            raise InputError(
                f"unknown option(s) {unknown}; the read options are metric, truncate, log and "
                "progress (or pass read=ReadOptions(...))"
            )
        return replace(base, **overrides)


def load_jsonl(path: str | os.PathLike[str], required: Sequence[str]) -> list[dict[str, Any]]:
    """Records of a JSONL file, each checked to have the ``required`` keys
    (:func:`value_lens.core.io.read_jsonl`)."""
    return read_jsonl(path, required)


def run_id(
    suite: str, model: GenerativeModel, axis: ValueAxis, layer: int, **settings: Any
) -> dict[str, Any]:
    """What identifies a suite run in its resume log (model, axis direction, layer, settings)."""
    from value_lens.core.model import model_id

    v = axis.direction(layer).numpy().tobytes()
    return {
        "suite": suite,
        "model": model_id(model),
        "layer": int(layer),
        "axis": hashlib.sha256(v).hexdigest()[:16],
        **settings,
    }


def open_log(
    path: str | os.PathLike[str] | None, run: dict[str, Any]
) -> tuple[JsonlLog | None, dict[str, dict[str, Any]]]:
    """The resume log at ``path`` (``None``: no log) and its finished records by key.

    Raises:
        InputError: if the log holds records of a different run.
    """
    if path is None:
        return None, {}
    log = JsonlLog(path, key="key")
    done = {}
    for rec in log:
        if rec.get("run") != json.loads(json.dumps(run)):
            raise InputError(
                f"{path} holds results of another run ({rec.get('run')}); pass a new log path"
            )
        done[str(rec["key"])] = rec
    return log, done
