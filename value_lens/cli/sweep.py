"""The ``value-lens sweep`` command: the held-out layer sweep of one method
(:mod:`value_lens.pipeline.sweep_steps`), or every registered method into one table
(``--method all``, :mod:`value_lens.pipeline.method_steps`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from value_lens.cli.options import (
    BatchSize,
    Corpus,
    Criteria,
    Device,
    Dtype,
    Layers,
    MemoryBudget,
    MethodPrompts,
    Model,
    Out,
    PerCriterion,
    Seed,
    SweepMethodOpt,
    app,
    layer_list,
    model_for,
    say,
)
from value_lens.pipeline import launch, steps, sweep_steps
from value_lens.pipeline.method_steps import methods_from_options
from value_lens.pipeline.options import parse_criteria

__all__ = ["sweep"]

OUT = Path("value_lens_out")
Splits = Annotated[int, typer.Option(help="Held-out splits by criterion.")]
NTrain = Annotated[int | None, typer.Option(help="Training criteria per split.")]


def _data(m: Any, out: Path, run: Any, criteria: str | None, n: int, seed: int, corpus: Any) -> Any:
    """The ICRL data with placebo turns (rank 0 alone writes it under torchrun)."""
    crit = parse_criteria(criteria)
    write = run is None or run.writer
    return steps.build_data(
        m, out, n_per_criterion=n, criteria=crit, seed=seed, corpus=corpus, write=write
    ).tokens


@app.command()
def sweep(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    criteria: Criteria = None,
    n_per_criterion: PerCriterion = 4,
    corpus: Corpus = None,
    splits: Splits = 10,
    n_train: NTrain = None,
    batch_size: BatchSize = 4,
    memory_budget: MemoryBudget = None,
    method: SweepMethodOpt = "mean_diff",
    dose_prompts: MethodPrompts = 4,
) -> None:
    """Held-out layer sweep with its position controls (the difference in discontinuities and
    its verdict, matched, placebo and DiD AUROCs, position scores, sign-aligned random
    directions), on data labelled with placebo turns (on N processes under
    `torchrun --nproc-per-node N -m value_lens sweep ...`; rank 0 writes and prints). A finished
    sweep in OUT for the same model, data and settings is reused. `--method all` sweeps, fits
    and steers every registered method into one table (methods.csv), in one process."""
    run = launch.from_env()
    with launch.muted(run):
        m = model_for(model, launch.device_for(device, run), dtype)
        data = _data(m, out, run, criteria, n_per_criterion, seed, corpus)
        lay = layer_list(layers, m)
        if method == "all":
            opts = (splits, n_train, seed, batch_size, dose_prompts)
            typer.echo(methods_from_options(m, data, out, *opts, layers=lay, log=say).summary())
            return
        res = sweep_steps.sweep(
            m,
            data,
            out,
            layers=lay,
            n_splits=splits,
            n_train=n_train,
            seed=seed,
            batch_size=batch_size,
            memory_budget_gb=2.0 if memory_budget is None else memory_budget,
            method=method,
            log=say,
        )
        typer.echo(res.summary())
