"""Helpers shared by the evaluation suites: chat prefills, span scoring, CIs, results."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.axis import ValueAxis
from value_lens.chat import format_chat
from value_lens.errors import InputError
from value_lens.io import JsonlLog
from value_lens.readout import ValueTrace, trace

__all__ = [
    "EvalResult",
    "Prefilled",
    "check_metric",
    "load_jsonl",
    "mean_ci",
    "open_log",
    "prefill",
    "prefill_trace",
    "run_id",
    "score_text",
    "span_tokens",
]


@dataclass
class EvalResult:
    """What a suite runner returns.

    Attributes:
        table: tidy per-item rows (one per problem, pair, rollout or prefill).
        summary: the suite's headline numbers, one row per condition.
        extras: further tidy tables (e.g. band curves, event-locked traces).
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class Prefilled:
    """A chat-formatted text whose last message is the prefilled assistant reply."""

    text: str
    start: int  # character span of the last message's content
    end: int


def prefill(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> Prefilled:
    """Format ``messages`` (the last one is the prefill) and locate the last message's content.

    The template's end-of-turn marker after the prefill, if any, is cut off, so the text ends
    with the prefilled content as if the model had just written it.
    """
    chat = format_chat(tokenizer, messages)
    span = chat.spans[-1]
    return Prefilled(chat.text[: span.end], span.start, span.end)


def score_text(
    model: Any, text: str, axis: ValueAxis, layer: int, *, truncate: bool = False
) -> ValueTrace:
    """Per-token readout of ``text`` at one layer (clear error when it exceeds the context)."""
    return trace(model, text, axis, [layer], truncate=truncate)


def prefill_trace(
    model: Any, messages: Sequence[Mapping[str, str]], axis: ValueAxis, layer: int, *,
    truncate: bool = False,
) -> tuple[Prefilled, ValueTrace]:  # fmt: skip
    """:func:`prefill` ``messages`` with the model's tokenizer and :func:`score_text` the result."""
    pf = prefill(model.tokenizer, messages)
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


def mean_ci(values: Any, z: float = 1.959964) -> tuple[float, int, float, float]:
    """(mean, n, lo, hi): the normal-approximation 95% CI of a mean (NaNs for n < 2)."""
    a = np.asarray(values, dtype=np.float64)
    n = int(a.size)
    if n == 0:
        return float("nan"), 0, float("nan"), float("nan")
    m = float(a.mean())
    if n < 2:
        return m, n, float("nan"), float("nan")
    half = z * float(a.std(ddof=1)) / math.sqrt(n)
    return m, n, m - half, m + half


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


def run_id(suite: str, model: Any, axis: ValueAxis, layer: int, **settings: Any) -> dict[str, Any]:
    """What identifies a suite run in its resume log (model, axis direction, layer, settings)."""
    from value_lens.model import model_id

    v = axis.direction(layer).numpy().tobytes()
    return {"suite": suite, "model": model_id(model), "layer": int(layer),
            "axis": hashlib.sha256(v).hexdigest()[:16], **settings}  # fmt: skip


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
