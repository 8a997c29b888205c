"""Reading steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract): trace a
text, run an evaluation suite, and the demo's heatmaps of a held-out criterion's turns.

Example:
    >>> import pandas as pd
    >>> t = pd.DataFrame({"problem_id": [0, 0, 1, 1, 2, 2], "kind": ["a", "b"] * 3,
    ...                   "correct_whole": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
    ...                   "corrupted_whole": [0.5, 0.0, 1.0, 1.5, 2.0, 2.5]})
    >>> h = code_headline(t, n_boot=200)
    >>> round(h["d"], 3), h["n_problems"], h["n_pairs"], h["pct_correct_higher"]
    (0.82, 3, 6, 100.0)
"""

from __future__ import annotations

import dataclasses
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
from value_lens.evals import (
    arithmetic_problems,
    run_backtracking_suite,
    run_code_suite,
    run_confidence_suite,
)
from value_lens.evals.backtracking import BACKTRACKING_GENERATION
from value_lens.evals.confidence import CONFIDENCE_GENERATION
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.stats import ActivationStats
from value_lens.pipeline.options import layer_or_default
from value_lens.pipeline.rundir import RESULT_FILES, save_trace, update_meta
from value_lens.pipeline.steps import Data
from value_lens.viz import layer_token_heatmap, token_heatmap, write_report

__all__ = ["SUITES", "Evaluation", "Trace", "code_headline", "evaluate", "heatmaps", "trace"]

#: the evaluation suites :func:`evaluate` runs.
SUITES = ("code", "backtracking", "confidence")

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


def trace(
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


def code_headline(
    table: Any, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Cohen's d (unpaired, pooled sd) of the whole-code readout, correct minus corrupted, over
    every pair of ``table`` (:func:`~value_lens.evals.run_code_suite`'s rows), with a cluster CI
    over problems (leave-one-problem-out jackknife: all corruptions of a problem together)."""
    from value_lens.analysis.metrics import bootstrap_ci, cohens_d

    t = table.dropna(subset=["correct_whole", "corrupted_whole"])
    a, b = t["correct_whole"].to_numpy(float), t["corrupted_whole"].to_numpy(float)
    d = cohens_d(a, b)
    lo, hi = bootstrap_ci(
        lambda x, y: float(cohens_d(x, y)),
        a,
        b,
        paired=True,
        groups=t["problem_id"].tolist(),
        n_boot=n_boot,
        seed=seed,
        ci=level,
    )
    return {
        "d": float(d),
        "d_kind": d.kind,
        "d_ci_lo": float(lo),
        "d_ci_hi": float(hi),
        "level": level,
        "n_boot": n_boot,
        "ci_cluster": "problem",
        "n_problems": int(t["problem_id"].nunique()),
        "n_pairs": len(t),
        "pct_correct_higher": 100.0 * float((a > b).mean()),
        "readout": "mean cosine over the whole code",
    }


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
    """Run one of :data:`SUITES` at ``layer`` (default
    :func:`~value_lens.pipeline.options.layer_or_default`) on ``n`` problems and save its
    tables; the code suite (resumable through ``code.jsonl``) also records its headline
    (:func:`code_headline`, ``run.json`` ``code_suite``) when it has at least 2 pairs."""
    if suite not in SUITES:
        raise InputError(f"unknown suite {suite!r}; use one of {SUITES}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lay = layer_or_default(model, axis.layers, layer)
    head = None
    if suite == "code":
        res = run_code_suite(
            model,
            axis,
            lay,
            n_problems=n,
            seed=seed,
            enable_thinking=enable_thinking,
            log=out / "code.jsonl",
            progress=progress,
        )
        res.table.to_csv(out / RESULT_FILES["code"], index=False)
        res.summary.to_csv(out / RESULT_FILES["code_summary"], index=False)
        if len(res.table.dropna(subset=["correct_whole", "corrupted_whole"])) >= 2:
            head = {"layer": lay, **code_headline(res.table, n_boot=n_boot, seed=seed)}
            update_meta(out, code_suite=head)
    elif suite == "backtracking":
        probs = [p["question"] for p in arithmetic_problems(n, seed=seed)]
        gen = BACKTRACKING_GENERATION.with_overrides(max_new_tokens=max_new_tokens, seed=seed)
        res = run_backtracking_suite(model, axis, lay, problems=probs, n_rollouts=2, gen=gen)
        res.extras["bands"].to_csv(out / RESULT_FILES["bands"], index=False)
        res.extras["event_locked"].to_csv(out / RESULT_FILES["events"], index=False)
    else:
        gen = CONFIDENCE_GENERATION.with_overrides(max_new_tokens=max_new_tokens, seed=seed)
        res = run_confidence_suite(
            model, axis, lay, n_problems=n, gen=gen, n_samples=4, log=out / "confidence.jsonl"
        )
        res.summary.to_csv(out / RESULT_FILES["confidence"], index=False)
        res.table.to_csv(out / RESULT_FILES["prefills"], index=False)
    update_meta(out, **{f"eval_{suite}": {"layer": lay, "n": n, "seed": seed}})
    return Evaluation(res, lay, head)


def _slice(tr: ValueTrace, lo: int, hi: int) -> ValueTrace:
    """The tokens ``lo:hi`` of a trace (the turn to show)."""
    return dataclasses.replace(
        tr,
        tokens=tr.tokens[lo:hi],
        token_ids=tr.token_ids[lo:hi],
        cosine=tr.cosine[:, lo:hi],
        projection=tr.projection[:, lo:hi],
        offsets=tr.offsets[lo:hi],
    )


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
        out.append(_slice(tr, int(pos[0]), int(pos[-1]) + 1))
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
