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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.analysis.intervals import jackknife_interval
from value_lens.analysis.readout import ValueTrace, trace
from value_lens.core.chat import format_chat
from value_lens.core.io import JsonlLog
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

    Returns ``{"mean", "n", "n_clusters", "ci_lo", "ci_hi"}`` (counts as ints).

    >>> r = cluster_mean_ci([1.0, 2.0, 3.0, 4.0], clusters=["a", "a", "b", "c"])
    >>> r["mean"], r["n"], r["n_clusters"]
    (2.5, 4, 3)
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    labels = np.arange(v.size) if clusters is None else np.asarray(list(clusters), dtype=object)
    if labels.size != v.size:
        raise InputError(f"{labels.size} cluster labels for {v.size} values; give one each")
    ok = np.isfinite(v)
    v, labels = v[ok], labels[ok]
    nan = float("nan")
    if v.size == 0:
        return {"mean": nan, "n": 0, "n_clusters": 0, "ci_lo": nan, "ci_hi": nan}
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    sums, counts = np.bincount(codes, v), np.bincount(codes).astype(np.float64)
    point = float(v.mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (sums.sum() - sums) / (counts.sum() - counts)
    iv = jackknife_interval(point, loo, level)
    return {
        "mean": point,
        "n": int(v.size),
        "n_clusters": int(counts.size),
        "ci_lo": iv.lo,
        "ci_hi": iv.hi,
    }


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
    """Records of a JSONL file, each checked to have the ``required`` keys."""
    out = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{no} is not valid JSON ({e.msg})") from e
            missing = [k for k in required if k not in rec]
            if missing:
                raise InputError(f"{path}:{no} lacks key(s) {missing}; each line needs {required}")
            out.append(rec)
    if not out:
        raise InputError(f"{path} holds no records")
    return out


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
