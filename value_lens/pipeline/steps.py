"""The pipeline's steps, shared by the ``value-lens`` command line and the demo.

A step takes a loaded model (where it needs one), the results folder ``out`` and its options;
it writes its own files under ``out``, records its settings in ``out/run.json``
(:func:`~value_lens.pipeline.rundir.update_meta`) and returns what it made. Statistics are
collected once and reused by every later step through one rule, :func:`saved_stats`; what to
collect follows from the fitting method and the strength unit
(:func:`~value_lens.pipeline.options.collect_requirements`).

This module holds the fitting chain (:func:`build_data` -> :func:`collect` -> :func:`fit`, or
:func:`build` for all three) and :func:`report`; the sweep step is in
:mod:`value_lens.pipeline.sweep_steps`. The reading steps (``trace``,
``evaluate``, ``heatmaps``) are in :mod:`value_lens.pipeline.read_steps`, the steering steps
(``steer``, ``dose``) in :mod:`value_lens.pipeline.steer_steps`.

Example:
    >>> import tempfile
    >>> data = LabelledTokens.from_lists([[1, 2, 3]], [[0, 0, 1]], ["a"])
    >>> saved_stats(tempfile.mkdtemp(), data, [0]) is None  # nothing saved there: collect
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from value_lens.core.conventions import resolve_layers
from value_lens.core.model import model_device, model_id, n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.collect import collect_stats
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats
from value_lens.pipeline.launch import from_env, process_group
from value_lens.pipeline.options import collect_requirements
from value_lens.pipeline.rundir import update_meta

__all__ = [
    "AXIS_FILE",
    "STATS_FILE",
    "Data",
    "build",
    "build_data",
    "collect",
    "fit",
    "report",
    "saved_stats",
]

#: where :func:`collect` saves the statistics and :func:`fit` the axis, inside ``out``.
STATS_FILE = "stats.safetensors"
AXIS_FILE = "axis.safetensors"

Log = Callable[[str], None]
PathLike = str | os.PathLike[str]


def quiet(_msg: str) -> None:
    """The default ``log`` of a step: say nothing."""


@dataclass(frozen=True)
class Data:
    """What :func:`build_data` made: the conversations, their labelled tokens, the label report."""

    conversations: list[Any]
    tokens: LabelledTokens
    report: Any


def build_data(
    model: GenerativeModel,
    out: PathLike,
    *,
    n_per_criterion: int = 4,
    criteria: list[str] | None = None,
    seed: int = 0,
    corpus: PathLike | None = None,
    placebo: bool = True,
    keep_per_criterion: int | None = None,
    write: bool = True,
) -> Data:
    """Scripted ICRL conversations (resumable through ``out/conversations.jsonl``), labelled.

    ``corpus`` is a paragraph file (``.txt``, blank-line separated, or ``.jsonl``); default the
    packaged corpus. ``placebo`` also labels placebo turns (failed attempts cut at a
    pseudo-reward; no extra forward pass), which the sweep's DiD and placebo controls need.
    ``keep_per_criterion`` keeps only that many shortest labelled turns per criterion.
    ``write=False`` (torchrun ranks other than 0) makes the same data and writes nothing.
    """
    from value_lens.data.icrl import generate_scripted
    from value_lens.data.icrl.label import label

    out = Path(out)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    convs = generate_scripted(
        n_per_criterion,
        seed=seed,
        criteria=criteria,
        out=out / "conversations.jsonl" if write else None,
        corpus=corpus,
    )
    tokens, labelled = label(convs, model, return_report=True, placebo=placebo)
    tokens = tokens.shortest_per_group(keep_per_criterion)
    if not write:
        return Data(convs, tokens, labelled)
    update_meta(
        out,
        model=model_id(model),
        n_layers=n_layers(model),
        seed=seed,
        criteria=sorted(set(tokens.groups)),
        n_conversations=len(convs),
        n_labelled_turns=len(tokens),
        dropped=labelled.reasons(),
    )
    return Data(convs, tokens, labelled)


def saved_stats(
    out: PathLike,
    data: LabelledTokens,
    layers: Sequence[int],
    *,
    moments: bool = False,
    sample_per_class: int = 0,
    plan: CollectPlan | None = None,
) -> ActivationStats | None:
    """The statistics saved in ``out`` if they match, else None: the only reuse rule.

    They match when they were collected over the same data (its fingerprint), at every layer in
    ``layers`` (more is fine), and hold everything ``plan`` (with ``moments`` and
    ``sample_per_class``) asks for (:meth:`~value_lens.fitting.plan.CollectPlan.missing`).
    """
    path = Path(out) / STATS_FILE
    if not path.exists():
        return None
    stats = ActivationStats.load(path)
    want = (plan or CollectPlan()) | CollectPlan(moments=moments, sample_per_class=sample_per_class)
    match = (
        stats.meta.get("dataset_hash") == data.fingerprint()
        and set(layers) <= set(stats.layers)
        and want.satisfied_by(stats)
    )
    return stats if match else None


def collect(
    model: GenerativeModel,
    data: LabelledTokens,
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    unit: str = "percent",
    batch_size: int = 4,
    progress: bool = True,
    log: Log = quiet,
) -> ActivationStats:
    """The statistics that fitting with ``method`` and steering in ``unit`` need, at ``layers``
    (None: all): reused from ``out`` when :func:`saved_stats` matches, else collected and saved.

    Under ``torchrun`` (:func:`~value_lens.pipeline.launch.from_env`) the ranks collect
    together in a process group (``collect_stats(..., distributed=True)``); every rank returns
    the statistics and rank 0 alone saves them.
    """
    need = collect_requirements(method, unit)
    want = resolve_layers(layers, n_layers(model))
    launch = from_env()
    with process_group(launch, model_device(model)) as distributed:
        stats = saved_stats(out, data, want, **need)
        if distributed:
            same_on_every_rank(data, stats is not None)
        if stats is not None:
            log(f"reusing {Path(out) / STATS_FILE} (same data and layers)")
            return stats
        log(f"collecting statistics over {data.n_tokens} tokens at {len(want)} layers")
        stats = collect_stats(
            model,
            data,
            layers=want,
            batch_size=batch_size,
            progress=progress and (launch is None or launch.writer),
            distributed=distributed,
            **need,
        )
    if launch is None or launch.writer:
        Path(out).mkdir(parents=True, exist_ok=True)
        stats.save(Path(out) / STATS_FILE)
    return stats


def same_on_every_rank(data: LabelledTokens, reuse: Any) -> None:
    """Raise unless every rank holds the same data and makes the same reuse decisions."""
    seen: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(seen, (data.fingerprint(), reuse))
    if len(set(seen)) > 1:
        raise InputError(
            f"the torchrun ranks disagree on the data or on reusing saved results "
            f"(fingerprint, reuse per rank: {seen}); give every rank the same files and options"
        )


def fit(
    stats: ActivationStats,
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    unit: str = "percent",
    write: bool = True,
) -> ValueAxis:
    """Fit a :class:`ValueAxis` with ``method`` on ``stats`` (restricted to ``layers`` when the
    statistics hold more), save it as ``out/axis.safetensors`` and record how in ``run.json``
    (unless ``write=False``)."""
    axis = ValueAxis.fit(stats, method=method)
    if layers is not None and set(axis.layers) != set(layers):
        axis = axis.restrict(layers)
    if not write:
        return axis
    axis.save(Path(out) / AXIS_FILE)
    update_meta(out, layers=list(axis.layers), method=method, unit=unit)
    return axis


def build(
    model: GenerativeModel,
    out: PathLike,
    *,
    n_per_criterion: int = 4,
    criteria: list[str] | None = None,
    seed: int = 0,
    corpus: PathLike | None = None,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    unit: str = "percent",
    batch_size: int = 4,
    log: Log = quiet,
) -> tuple[Data, ValueAxis]:
    """:func:`build_data`, :func:`collect` and :func:`fit`: ICRL data to a saved axis.

    Under ``torchrun`` every rank builds the same data, the ranks collect together and rank 0
    alone writes (see :func:`collect`).
    """
    collect_requirements(method, unit)  # a bad method or unit fails before any work
    launch = from_env()
    write = launch is None or launch.writer
    data = build_data(
        model,
        out,
        n_per_criterion=n_per_criterion,
        criteria=criteria,
        seed=seed,
        corpus=corpus,
        write=write,
    )
    tok = data.tokens
    log(
        f"{len(data.conversations)} conversations, {len(tok)} labelled turns, {tok.n_tokens} tokens"
    )
    stats = collect(
        model, tok, out, layers=layers, method=method, unit=unit, batch_size=batch_size, log=log
    )
    return data, fit(stats, out, layers=layers, method=method, unit=unit, write=write)


def report(
    out: PathLike, *, title: str = "value_lens report", intro: str = "", plotlyjs: str = "inline"
) -> Path:
    """``out/report.html`` from every result in ``out``
    (:func:`~value_lens.pipeline.report.report_from_dir`; the figure code loads only now)."""
    from value_lens.pipeline.report import report_from_dir

    return report_from_dir(out, title=title, intro=intro, plotlyjs=plotlyjs)
