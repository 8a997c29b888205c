"""The report of a results folder: ``report.html`` from whatever the folder holds.

:func:`report_from_dir` reads the tables, ``run.json`` and traces that the steps wrote
(:mod:`value_lens.pipeline.rundir` is that contract) and draws only what exists: first the answer
(the position verdict with its discontinuities and controls, the code suite's sentence), then a
section per result (sweep, heatmaps, dose-response, each registered evaluation suite, the
post-training comparison). Only this module imports the figure code.

Example:
    >>> import tempfile, pathlib, pandas as pd
    >>> from value_lens.pipeline.rundir import RESULT_FILES, update_meta
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = update_meta(out, model="tiny", seed=0)
    >>> pd.DataFrame({"layer": [0, 1], "token_auroc_mean": [0.6, 0.7], "token_auroc_sd": [0.1, 0.1]}).to_csv(
    ...     out / RESULT_FILES["sweep"], index=False)
    >>> report_from_dir(out).name
    'report.html'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from value_lens.core.conventions import default_layer
from value_lens.errors import InputError
from value_lens.evals.code_stats import code_sentence as _code_sentence
from value_lens.evals.registry import suites
from value_lens.pipeline.rundir import (
    TRACE_GLOB,
    load_trace,
    read_meta,
    result_files,
)
from value_lens.viz import controls as C
from value_lens.viz import figures as F
from value_lens.viz import figures_evals as E
from value_lens.viz import position as P
from value_lens.viz.heatmap import token_heatmap
from value_lens.viz.layer_heatmap import layer_token_heatmap
from value_lens.viz.methods import METHOD_NOTE, method_table_view
from value_lens.viz.report import write_report

__all__ = ["code_sentence", "report_from_dir", "report_sections", "value_sentence"]

# columns that identify a dose-response row rather than measure it
_DOSE_KEYS = {
    "layer",
    "alpha",
    "alpha_pct",
    "alpha_raw",
    "seed",
    "prompt",
    "prompt_id",
    "item",
    "text",
    "unit",
    "hit_limit",
    "strength",
    "index",
}


def _csv(out: Path, name: str) -> pd.DataFrame | None:
    p = out / result_files()[name]
    return pd.read_csv(p) if p.exists() else None


def _dose_metrics(df: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    chosen = meta.get("dose_metrics")
    if chosen:
        return [m for m in chosen if m in df.columns]
    num = df.select_dtypes("number").columns
    return [c for c in num if c not in _DOSE_KEYS][:6]


#: what the sweep table's uncertainty columns are, shown under the sweep figure.
SWEEP_NOTE = (
    "token_auroc_ci_lo/hi: confidence interval of token_auroc_mean from a cluster bootstrap "
    "(whole conversations resampled, all their tokens kept; see run.json sweep.ci). "
    "token_auroc_sd and function_score_sd_splits: sd over splits, which share most of their "
    "training criteria, so they are not standard errors. function_score_sd_all_scores: np.std "
    "over every (split x held-out criterion) 0/1 score, as the paper's released code reports."
)


def _sweep_body(df: pd.DataFrame, meta: dict[str, Any]) -> list[Any]:
    """The sweep figure (its CI band labelled from ``run.json``'s ``sweep.ci``), note, table."""
    return [F.sweep_figure(df, ci_settings=_sweep_ci(meta)), SWEEP_NOTE, df]


def _sweep_ci(meta: dict[str, Any]) -> dict[str, Any] | None:
    """``run.json``'s ``sweep.ci``: the bootstrap's settings, which a CSV-read table lacks."""
    ci = (meta.get("sweep") or {}).get("ci")
    return ci if isinstance(ci, dict) else None


#: the heading of the report's first section when the run has a sweep.
ANSWER_HEAD = "Does the value axis read more than position?"


def value_sentence(df: pd.DataFrame, smallest_effect: float = 0.1) -> str | None:
    """The sentence of :func:`value_lens.analysis.confounds.value_beyond_position` for the sweep
    table at its best layer (None for tables without the discontinuity, from older sweeps)."""
    if "rd_value" not in df.columns:
        return None
    from value_lens.analysis.confounds import value_beyond_position

    return value_beyond_position(df, smallest_effect=smallest_effect).sentence


def code_sentence(code: dict[str, Any]) -> str:
    """:func:`value_lens.evals.code_sentence`: the code suite's per-kind and pooled d."""
    return _code_sentence(code)


def _answer(out: Path, meta: dict[str, Any]) -> list[Any]:
    """The first section's items: the value-beyond-position sentence, the controls at the best
    layer (forest plot and table) and the code suite's sentence, for what ``out`` holds."""
    items: list[Any] = []
    sweep = _csv(out, "sweep")
    if sweep is not None and C.present(sweep, "token_auroc_mean"):
        margin = float((meta.get("sweep") or {}).get("smallest_effect", 0.1))
        sentence = value_sentence(sweep, margin)
        if sentence:
            items.append(sentence)
            items += [
                P.discontinuity_figure(sweep, smallest_effect=margin),
                P.discontinuity_table(sweep),
            ]
        items += [
            C.control_panel_figure(sweep, ci_label=F.ci_label(_sweep_ci(meta))),
            C.control_table(sweep),
        ]
    code = meta.get("code_suite")
    if isinstance(code, dict) and {"d", "d_ci_lo", "d_ci_hi"} <= set(code):
        items.append(code_sentence(code))
    return items


def _suite_sections(out: Path, meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each registered suite's report sections, for the tables ``out`` holds."""
    import value_lens.viz as viz

    sections: list[tuple[str, Any]] = []
    for suite in suites().values():
        record = meta.get(suite.meta_key) if suite.meta_key else None
        for sec in suite.sections:
            frames = {t: _csv(out, t) for t in sec.tables}
            if all(df is None for df in frames.values()):
                continue
            items: list[Any] = []
            if sec.sentence is not None and isinstance(record, dict) and "d" in record:
                items.append(sec.sentence(record))
            for item in sec.items:
                if isinstance(item, str):
                    items += [] if frames[item] is None else [frames[item]]
                    continue
                df = frames[item.table]
                if df is not None and not df.empty:
                    fn = (
                        getattr(viz, item.function)
                        if isinstance(item.function, str)
                        else item.function
                    )
                    items.append(fn(df))
            sections.append((sec.heading, items))
    return sections


#: the heading of the report's section on a base vs tuned comparison (``value-lens compare``).
COMPARE_HEAD = "Did post-training move the value axis?"


def _compare_body(out: Path, meta: dict[str, Any]) -> list[Any]:
    """Each comparison's summary that ``out`` holds: a caption, its figure and the table."""
    from value_lens.compare import figures as CF

    run = meta.get("compare") or {}
    where = f" at layer {run['layer']}" if "layer" in run else ""
    parts: list[tuple[str, str, Callable[[pd.DataFrame], Any]]] = [
        (
            "selection_summary",
            "Selection of the target by log-likelihood (Fig 12).",
            CF.selection_figure,
        ),
        (
            "rank_assistant_summary",
            f"Target's value rank, each option prefilled as the answer{where} (Figs 7a, 15).",
            CF.rank_figure,
        ),
        (
            "rank_user_summary",
            f"Target's value rank at its tokens in the prompt{where} (Fig 13).",
            CF.rank_figure,
        ),
        (
            "word_delta_summary",
            f"Tuned - base value on the word in natural sentences{where} (Fig 7b).",
            CF.word_delta_figure,
        ),
    ]
    items: list[Any] = []
    for name, caption, figure in parts:
        df = _csv(out, name)
        if df is not None:
            items += [caption, figure(df), df]
    return items


def report_sections(out: str | os.PathLike[str]) -> list[tuple[str, Any]]:
    """The report sections for whatever results ``out`` holds, in pipeline order."""
    out = Path(out)
    meta = read_meta(out)
    layer = meta.get("heatmap_layer")
    sections: list[tuple[str, Any]] = []
    answer = _answer(out, meta)
    if answer:
        sections.append((ANSWER_HEAD, answer))
    builders: list[tuple[str, str, Callable[[pd.DataFrame], list[Any]]]] = [
        ("sweep", "Held-out layer sweep", lambda d: _sweep_body(d, meta)),
        (
            "methods",
            "Which direction detects and which steers",
            lambda d: [METHOD_NOTE, method_table_view(d)],
        ),
        (
            "cosine",
            "Cosine between layer directions",
            lambda d: [F.layer_cosine_figure(d.set_index(d.columns[0]))],
        ),
    ]
    for name, head, build in builders:
        df = _csv(out, name)
        if df is not None:
            sections.append((head, build(df)))
    for p in sorted(out.glob(TRACE_GLOB)):
        tr, title = load_trace(p)
        depth = int(meta.get("n_layers") or max(tr.layers) + 1)  # runs before n_layers was kept
        show = layer if layer in tr.layers else default_layer(depth, tr.layers)
        sections.append((title or p.stem, [token_heatmap(tr, show), layer_token_heatmap(tr)]))
    dose = _csv(out, "dose")
    if dose is not None:
        metrics = _dose_metrics(dose, meta)
        if metrics:
            sections.append(("Steering dose-response", E.dose_response_figure(dose, metrics)))
    slopes = _csv(out, "slopes")
    if slopes is not None:
        if "slope" in slopes.columns and slopes["slope"].notna().any():
            body: list[Any] = [E.slope_heatmap_figure(slopes), slopes]
        else:
            body = ["No slope could be estimated (too few non-degenerate strengths).", slopes]
        sections.append(("Dose-response slopes", body))
    reliability = _csv(out, "reliability")
    if reliability is not None:
        sections.append((RELIABILITY_HEAD, [RELIABILITY_NOTE, reliability]))
    sections += _suite_sections(out, meta)
    compared = _compare_body(out, meta)
    if compared:
        sections.append((COMPARE_HEAD, compared))
    return sections


RELIABILITY_HEAD = "Steering reliability per prompt"
RELIABILITY_NOTE = (
    "Per metric and layer: the mean over prompts of each prompt's OLS slope on strength (t "
    "interval over prompts), the share of prompts whose slope runs against the mean "
    "(anti-steerable, Wilson interval), each prompt's Spearman monotonicity and the change at "
    "the largest strength (value_lens.steering.reliability; per-prompt rows in "
    "dose_per_prompt.csv)."
)


def report_from_dir(
    out: str | os.PathLike[str],
    *,
    path: str | os.PathLike[str] | None = None,
    title: str = "value_lens report",
    intro: str = "",
    plotlyjs: str = "inline",
) -> Path:
    """Write ``out/report.html`` (or ``path``) from the results found in ``out``.

    ``intro`` is a paragraph of text shown before the results.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"{out} is not a directory; pass the --out folder of an earlier run")
    sections = report_sections(out)
    if not sections:
        raise InputError(
            f"{out} holds no results ({', '.join(result_files().values())} or {TRACE_GLOB}); "
            "run build/sweep/trace/steer/eval with --out there first"
        )
    meta = {k: v for k, v in read_meta(out).items() if k not in {"dose_metrics"}}
    if intro and sections[0][0] == ANSWER_HEAD:
        sections[0] = ("About this run", [intro, *sections[0][1]])
    elif intro:
        sections.insert(0, ("About this run", intro))
    return write_report(
        path or out / "report.html", sections, title=title, metadata=meta, plotlyjs=plotlyjs
    )
