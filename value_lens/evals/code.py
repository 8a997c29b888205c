"""Correct-vs-corrupted code suite: does the axis read higher on correct code?

Correct code comes from real functions in the Python standard library's own source files
(:func:`stdlib_functions`, offline) or from a user JSONL of ``{"problem", "solution"}``
(:func:`load_code_problems`). :func:`build_code_pairs` corrupts each with
:func:`~value_lens.evals.corrupt.corrupt_code`; :func:`run_code_suite` prefills each version as
the assistant's reply after a coding system prompt and a user request, and scores the mean
readout (cosine by default, as the paper) over the whole code and over a window starting at the
first changed token. :mod:`value_lens.evals.code_stats` turns the pairs into Cohen's d per
corruption kind with intervals over problems, each kind's length change in tokens, and the
pooled d (secondary). The reply follows Qwen3's empty think block (``enable_thinking=False``, the
paper's setting) unless told otherwise.

Example:
    >>> fns = stdlib_functions(2, seed=0)
    >>> sorted(fns[0]) == ["code", "name", "path", "problem"]
    True
"""

from __future__ import annotations

import ast
import os
import random
import sysconfig
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.evals._common import (
    EvalResult,
    ReadOptions,
    load_jsonl,
    open_log,
    prefill_trace,
    run_id,
    span_tokens,
)
from value_lens.evals.code_stats import code_headline, code_sentence, code_summary
from value_lens.evals.corrupt import CORRUPTIONS, corrupt_code
from value_lens.evals.registry import Figure, Section, Suite, SuiteRequest, Table, register_suite
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "CODE_SYSTEM",
    "build_code_pairs",
    "code_headline",
    "code_sentence",
    "code_summary",
    "load_code_problems",
    "run_code_suite",
    "stdlib_functions",
]

CODE_SYSTEM = "You are a helpful coding assistant. Write clean, correct Python code."
CODE_USER = (
    "Write a Python solution for the following problem:\n\n{problem}\n\n"
    "Provide only the code in a ```python``` block."
)
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "dist-packages"}


def _usable(code: str, kinds: Sequence[str]) -> bool:
    for k in kinds:
        try:
            corrupt_code(code, k, random.Random(0))
        except Exception:  # any failure: this function is not usable for every kind
            return False
    return True


def stdlib_functions(
    n: int = 100,
    *,
    seed: int = 0,
    min_lines: int = 5,
    max_lines: int = 40,
    kinds: Sequence[str] = CORRUPTIONS,
    root: str | os.PathLike[str] | None = None,
) -> list[dict[str, str]]:
    """``n`` real functions from the standard library's source, each corruptible by ``kinds``.

    Files are visited in a seeded random order; module- and class-level functions of
    ``min_lines``..``max_lines`` lines are dedented and kept if every corruption applies.
    Returns dicts with ``name``, ``path`` (relative to the stdlib), ``code`` and ``problem``
    (a one-line request naming the function and its module).
    """
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in base.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(base).parts[:-1])
    )
    if not files:
        raise InputError(f"no Python source files under {base}; pass root= to a stdlib copy")
    random.Random(seed).shuffle(files)
    out: list[dict[str, str]] = []
    for path in files:
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        lines = src.splitlines(keepends=True)
        nodes = [(None, x) for x in tree.body] + [
            (c.name, x) for c in tree.body if isinstance(c, ast.ClassDef) for x in c.body
        ]
        module = ".".join(path.relative_to(base).with_suffix("").parts)
        for owner, node in nodes:
            if not isinstance(node, ast.FunctionDef) or node.decorator_list:
                continue
            size = (node.end_lineno or 0) - node.lineno + 1
            if not min_lines <= size <= max_lines:
                continue
            code = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno]))
            if not _usable(code, kinds):
                continue
            name = f"{owner}.{node.name}" if owner else node.name
            out.append(
                {
                    "name": name,
                    "path": str(path.relative_to(base)),
                    "code": code,
                    "problem": f"Implement `{name}` from the Python module `{module}`.",
                }
            )
            if len(out) == n:
                return out
    return out


def load_code_problems(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """User problems from JSONL lines ``{"problem": ..., "solution": ...}`` (one function each)."""
    recs = load_jsonl(path, ["problem", "solution"])
    return [
        {
            "name": str(r.get("name", i)),
            "path": str(path),
            "code": str(r["solution"]),
            "problem": str(r["problem"]),
        }
        for i, r in enumerate(recs)
    ]


def build_code_pairs(
    problems: Sequence[dict[str, str]], kinds: Sequence[str] = CORRUPTIONS, *, seed: int = 0
) -> list[dict[str, Any]]:
    """One (correct, corrupted) pair per problem and kind; problems a kind cannot corrupt are
    skipped for that kind and counted in ``pair["skipped"]`` of the returned list's items."""
    rng = random.Random(seed)
    pairs = []
    for i, p in enumerate(problems):
        for k in kinds:
            try:
                bad = corrupt_code(p["code"], k, rng)
            except InputError:
                continue
            pairs.append(
                {
                    "problem_id": i,
                    "name": p.get("name", str(i)),
                    "problem": p["problem"],
                    "kind": k,
                    "correct": p["code"],
                    "corrupted": bad,
                }
            )
    if not pairs:
        raise InputError("no problem could be corrupted; check that each solution is one function")
    return pairs


def _score(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    problem: str,
    code: str,
    first: int,
    window: int,
    enable_thinking: bool,
    opts: ReadOptions,
) -> tuple[float, float, int]:
    """(whole-code mean, mean over ``window`` tokens from char ``first`` of the code, tokens)."""
    reply = f"```python\n{code}\n```"
    msgs = [
        {"role": "system", "content": CODE_SYSTEM},
        {"role": "user", "content": CODE_USER.format(problem=problem)},
        {"role": "assistant", "content": reply},
    ]
    pf, tr = prefill_trace(
        model, msgs, axis, layer, truncate=opts.truncate, enable_thinking=enable_thinking
    )
    start = pf.start + len("```python\n")
    idx = span_tokens(tr, start, start + len(code))
    if idx.numel() == 0:
        raise InputError("the code has no tokens in the context; raise n_ctx or truncate less")
    vals = getattr(tr, opts.metric)[0, idx].double().numpy()
    ends = tr.offsets[idx, 1].numpy()
    k = int(np.searchsorted(ends, start + first, side="right"))
    win = vals[k : k + window]
    return float(vals.mean()), float(win.mean()) if win.size else float("nan"), int(idx.numel())


def run_code_suite(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    pairs: Sequence[dict[str, Any]] | None = None,
    *,
    n_problems: int = 50,
    kinds: Sequence[str] = CORRUPTIONS,
    seed: int = 0,
    window: int = 32,
    enable_thinking: bool = False,
    read: ReadOptions | None = None,
    **read_options: Any,
) -> EvalResult:
    """Score correct vs corrupted code prefilled as the assistant's reply.

    Args:
        model / axis / layer: what to read.
        pairs: from :func:`build_code_pairs`; default: ``n_problems`` stdlib functions x
            ``kinds``.
        window: tokens scored from the first changed token on.
        enable_thinking: Qwen3's chat-template switch; ``False`` (the paper's setting) puts the
            empty think block before the prefilled code.
        read: :class:`~value_lens.evals._common.ReadOptions` (metric, truncate, log,
            progress), or set them as keywords (``metric="projection"``, ``progress=False``).
            The log keeps each finished pair.

    Returns:
        ``table``: one row per pair (``correct_whole``, ``corrupted_whole``,
        ``correct_window``, ``corrupted_window``, ``correct_tokens``, ``corrupted_tokens``);
        ``summary``: :func:`code_summary` (d per kind with intervals over problems, each kind's
        length change in tokens); ``meta``: the run's settings (``enable_thinking`` and
        ``metric`` included).
    """
    opts = ReadOptions.of(read, **read_options)
    if pairs is None:
        pairs = build_code_pairs(
            stdlib_functions(n_problems, seed=seed, kinds=kinds), kinds, seed=seed
        )
    run = run_id(
        "code",
        model,
        axis,
        layer,
        metric=opts.metric,
        window=window,
        enable_thinking=enable_thinking,
    )
    logf, done = open_log(opts.log, run)
    rows = []
    for p in progress_bar(pairs, desc="code", enabled=None if opts.progress else False):
        key = f"{p['problem_id']}|{p['kind']}|{p['name']}"
        if key in done:
            rows.append(done[key]["row"])
            continue
        rows.append(_pair_row(model, axis, layer, p, (window, enable_thinking, opts)))
        if logf is not None:
            logf.append({"key": key, "run": run, "row": rows[-1]})
    table = pd.DataFrame(rows)
    return EvalResult(table, code_summary(table), meta=dict(run))


def _pair_row(
    model: GenerativeModel, axis: ValueAxis, layer: int, p: dict[str, Any], how: tuple[Any, ...]
) -> dict[str, Any]:
    """One pair's readouts: whole code, the window after the first change, token counts."""
    good, bad = p["correct"], p["corrupted"]
    first = next(
        (i for i, (x, y) in enumerate(zip(good, bad, strict=False)) if x != y),
        min(len(good), len(bad)),
    )
    cw, cwin, cn = _score(model, axis, layer, p["problem"], good, first, *how)
    bw, bwin, bn = _score(model, axis, layer, p["problem"], bad, first, *how)
    return {
        "problem_id": p["problem_id"],
        "name": p["name"],
        "kind": p["kind"],
        "first_change_char": first,
        "correct_whole": cw,
        "corrupted_whole": bw,
        "correct_window": cwin,
        "corrupted_window": bwin,
        "correct_tokens": cn,
        "corrupted_tokens": bn,
    }


def _pipeline_run(
    model: GenerativeModel, axis: ValueAxis, layer: int, req: SuiteRequest
) -> EvalResult:
    """``value-lens eval --suite code``: ``n`` stdlib functions x 4 corruptions, resumable."""
    log = None if req.folder is None else Path(req.folder) / "code.jsonl"
    return run_code_suite(
        model,
        axis,
        layer,
        n_problems=req.n,
        seed=req.seed,
        enable_thinking=req.enable_thinking,
        log=log,
        progress=req.progress,
    )


def _headline(res: EvalResult, req: SuiteRequest) -> dict[str, Any] | None:  # noqa: ARG001
    """The per-kind and pooled d, once there are at least 2 scored pairs."""
    if len(res.table.dropna(subset=["correct_whole", "corrupted_whole"])) < 2:
        return None
    return code_headline(res.table)


SUITE = register_suite(
    Suite(
        name="code",
        order=10,
        help="correct vs corrupted stdlib functions (syntax, shuffle, rename, logic)",
        run=_pipeline_run,
        tables={
            "code": Table("code.csv", lambda r: r.table),
            "code_summary": Table("code_summary.csv", lambda r: r.summary),
        },
        sections=(
            Section(
                "Correct vs corrupted code",
                ("code_summary", Figure("code_scatter_figure", "code")),
                sentence=code_sentence,
            ),
        ),
        headline=_headline,
        meta_key="code_suite",
    )
)
