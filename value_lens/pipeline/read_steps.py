"""Reading steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract): trace a
text, run an evaluation suite, and the demo's heatmaps of a held-out criterion's turns.

The suites :func:`evaluate` runs are read from the registry when it runs
(:func:`value_lens.evals.suites`), so a suite registered later is reached too.

Example:
    >>> from value_lens.evals import suites
    >>> tuple(suites())
    ('code', 'backtracking', 'confidence')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from value_lens.analysis.readout import ValueTrace
from value_lens.analysis.readout import trace as read_trace
from value_lens.core.model import n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.evals.registry import SuiteRequest, get_suite
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.stats import ActivationStats
from value_lens.pipeline.options import layer_or_default
from value_lens.pipeline.rundir import save_trace, update_meta
from value_lens.pipeline.steps import Data
from value_lens.viz import layer_token_heatmap, token_heatmap, write_report

__all__ = ["Evaluation", "Trace", "code_headline", "evaluate", "heatmaps", "trace_to_dir"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Trace:
    """What :func:`trace` made: the trace, the layer of its token heatmap, the HTML page."""

    trace: ValueTrace
    layer: int
    page: Path


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` made: the suite's result, its layer and (code suite) its headline."""

    result: Any
    layer: int
    headline: dict[str, Any] | None = None


def trace_to_dir(
    model: GenerativeModel,
    axis: ValueAxis,
    source: Any,
    out: PathLike,
    *,
    layers: list[int] | None = None,
    layer: int | None = None,
    name: str = "text",
    seed: int = 0,
) -> Trace:
    """Per-token value of ``source`` (text or chat messages) at ``layers`` (default the axis's):
    ``trace-{name}.json`` and a page with the token heatmap at ``layer`` (default
    :func:`~value_lens.pipeline.options.layer_or_default`) and the tokens x layers heatmap."""
    out = Path(out)
    tr = read_trace(model, source, axis, layers)
    show = layer_or_default(model, tr.layers, layer)
    save_trace(tr, out / f"trace-{name}.json", title=f"trace: {name}")
    page = write_report(
        out / f"trace-{name}.html",
        [(f"Layer {show}", token_heatmap(tr, show)), ("All layers", layer_token_heatmap(tr))],
        title=f"value trace: {name}",
        metadata={"model": tr.model_id, "layers": tr.layers, "seed": seed},
    )
    update_meta(out, heatmap_layer=show, n_layers=n_layers(model))
    return Trace(tr, show, page)


def code_headline(table: Any, *, level: float = 0.95, **_: Any) -> dict[str, Any]:
    """:func:`value_lens.evals.code_headline` (d per corruption kind and pooled, intervals over
    problems); kept here for callers of the pipeline."""
    from value_lens.evals import code_headline as headline

    return headline(table, level=level)


def evaluate(
    model: GenerativeModel,
    axis: ValueAxis,
    out: PathLike,
    *,
    suite: str = "code",
    layer: int | None = None,
    n: int = 8,
    seed: int = 0,
    max_new_tokens: int = 128,
    enable_thinking: bool = False,
    n_boot: int = 2000,
    progress: bool = True,
) -> Evaluation:
    """Run a registered suite (:func:`value_lens.evals.suites`) at ``layer`` (default
    :func:`~value_lens.pipeline.options.layer_or_default`) on ``n`` problems, save its result
    tables under their registered file names, and record its headline (e.g. the code suite's
    per-kind d, ``run.json`` ``code_suite``) when it has one."""
    spec = get_suite(suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lay = layer_or_default(model, axis.layers, layer)
    req = SuiteRequest(n, seed, max_new_tokens, enable_thinking, n_boot, out, progress)
    res = spec.run(model, axis, lay, req)
    for table in spec.tables.values():
        table.pick(res).to_csv(out / table.file, index=False)
    head = None if spec.headline is None else spec.headline(res, req)
    if head is not None and spec.meta_key:
        head = {"layer": lay, **head}
        update_meta(out, **{spec.meta_key: head})
    update_meta(out, **{f"eval_{suite}": {"layer": lay, "n": n, "seed": seed}})
    return Evaluation(res, lay, head)


def turn_traces(
    model: GenerativeModel, axis: ValueAxis, messages: list[dict[str, str]], indices: list[int]
) -> list[ValueTrace]:
    """Traces of messages ``indices``, cut to each message's tokens, from ONE forward pass over
    the conversation through the user turn after the last of them: every message then reads as
    in the whole conversation (none is a final turn that a template renders specially), and
    causal attention keeps later text out of it."""
    from value_lens.core.chat import context_through, format_chat

    context = context_through(messages, max(indices))
    chat = format_chat(model.tokenizer, context, enable_thinking=False)
    tr = read_trace(model, chat.text, axis)
    out = []
    for index in indices:
        span = chat.spans[index]
        pos = torch.nonzero(tr.char_span_mask(span.start, span.end)).flatten()
        if pos.numel() == 0:
            raise InputError(f"message {index} has no tokens in the traced text")
        out.append(tr.slice(int(pos[0]), int(pos[-1]) + 1))
    return out


def heatmaps(
    model: GenerativeModel, stats: ActivationStats, data: Data, layer: int, out: PathLike
) -> dict[str, Any]:
    """Fit an axis without one criterion, then trace a success and a failure of that criterion
    (``trace-1-success.json``, ``trace-2-failure.json``); ``layer`` is the one to show."""
    out = Path(out)
    groups = sorted(set(data.tokens.groups))
    held = groups[-1]
    axis = ValueAxis.fit(stats.select_groups([g for g in groups if g != held]))
    pairs = zip(data.tokens.meta, data.tokens.groups, strict=True)
    meta = next(mt for mt, g in pairs if g == held)
    conv = next(c for c in data.conversations if c.conversation_id == meta["conversation_id"])
    ok = int(meta["message_index"])
    by_pos = {p.paragraph_position: p for p in conv.paragraphs}
    bad = [
        mi
        for (p, a), mi in sorted(conv.assistant_index().items(), key=lambda kv: kv[1])
        if not by_pos[p].attempts[a - 1].reward and mi < ok
    ]
    shown = {"success": ok} | ({"failure": bad[-1]} if bad else {})
    traces = turn_traces(model, axis, conv.full_messages, list(shown.values()))
    for (name, _), tr in zip(shown.items(), traces, strict=True):
        what = "rewarded (+1) turn" if name == "success" else "failed (-1) turn"
        title = f"Held-out criterion '{held}': a {what} ({conv.conversation_id})"
        save_trace(tr, out / f"trace-{1 if name == 'success' else 2}-{name}.json", title=title)
    update_meta(out, heatmap_layer=layer)
    return {"held_out_criterion": held, "conversation": conv.conversation_id, "layer": layer}
