"""The ``value-lens`` commands. Each parses its options, calls a pipeline step
(:mod:`value_lens.pipeline.steps`, :mod:`~value_lens.pipeline.read_steps`,
:mod:`~value_lens.pipeline.steer_steps`, :mod:`~value_lens.pipeline.compare_steps`,
:mod:`~value_lens.pipeline.demo`) and prints where the
results went; the step writes the files and ``--out/run.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from value_lens.analysis.text_metrics import METRICS
from value_lens.cli.options import (
    Alphas,
    Axis,
    BatchSize,
    BuildUnit,
    Corpus,
    Criteria,
    Device,
    Dtype,
    Layer,
    Layers,
    MemoryBudget,
    Method,
    Model,
    ModeUnit,
    Out,
    PerCriterion,
    Prompts,
    PromptsFile,
    Seed,
    SteerLayers,
    SteerMode,
    SteerParams,
    Suite,
    Text,
    TextFile,
    app,
    axis_for,
    layer_list,
    model_for,
    say,
    text_source,
)
from value_lens.pipeline import compare_steps, launch, read_steps, steer_steps, steps
from value_lens.pipeline.demo import run_demo
from value_lens.pipeline.options import (
    collect_requirements,
    parse_criteria,
    parse_unit,
    read_prompts,
)
from value_lens.pipeline.rundir import RESULT_FILES
from value_lens.steering.dose import DOSE_GENERATION

__all__ = ["build", "compare", "demo", "eval_", "posttrain", "report", "steer", "trace"]

OUT = Path("value_lens_out")


@app.command()
def build(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    criteria: Criteria = None,
    n_per_criterion: PerCriterion = 4,
    corpus: Corpus = None,
    method: Method = "mean_diff",
    unit: BuildUnit = "percent",
    batch_size: BatchSize = 4,
) -> None:
    """Generate scripted ICRL conversations, label them and fit the value axis (on N processes
    under `torchrun --nproc-per-node N -m value_lens build ...`; rank 0 writes and prints)."""
    collect_requirements(method, unit)  # a bad --method or --unit fails before loading
    run = launch.from_env()
    with launch.muted(run):
        m = model_for(model, launch.device_for(device, run), dtype)
        steps.build(
            m,
            out,
            n_per_criterion=n_per_criterion,
            criteria=parse_criteria(criteria),
            seed=seed,
            corpus=corpus,
            layers=layer_list(layers, m),
            method=method,
            unit=unit,
            batch_size=batch_size,
            log=say,
        )
        typer.echo(str(out / steps.AXIS_FILE))


@app.command()
def trace(
    text: Text = None,
    file: TextFile = None,
    model: Model = None,
    layers: Layers = None,
    layer: Layer = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    axis: Axis = None,
    name: Annotated[str, typer.Option(help="Name of this trace in the results folder.")] = "text",
    chat: Annotated[bool, typer.Option(help="Wrap the text as one user chat message.")] = False,
) -> None:
    """Per-token value heatmaps (one layer, and tokens x layers) of a text or file."""
    src = text_source(text, file, chat)
    m = model_for(model, device, dtype)
    ax = axis_for(axis, m, out)
    res = read_steps.trace_to_dir(
        m, ax, src, out, layers=layer_list(layers, m), layer=layer, name=name, seed=seed
    )
    mean = res.trace.mean(res.layer)
    typer.echo(f"{len(res.trace.tokens)} tokens, mean value at layer {res.layer}: {mean:+.4f}")
    typer.echo(str(res.page))


@app.command()
def steer(
    prompt: Prompts = None,
    prompts_file: PromptsFile = None,
    model: Model = None,
    layers: SteerLayers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    axis: Axis = None,
    alpha: Alphas = None,
    unit: ModeUnit = None,
    grid: Annotated[bool, typer.Option(help="Run a dose-response grid even for one alpha.")] = (
        False
    ),
    seeds: Annotated[int, typer.Option(help="Sampling seeds per grid cell.")] = 1,
    max_new_tokens: Annotated[int, typer.Option(help="New tokens per reply.")] = 48,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    mode: SteerMode = "add",
    param: SteerParams = None,
) -> None:
    """Steered generation along the axis, or a dose-response grid (several --alpha or --grid)."""
    m = model_for(model, device, dtype)
    ax = axis_for(axis, m, out)
    texts, lay, alphas = read_prompts(prompt, prompts_file), layer_list(layers, m), alpha or []
    gen = DOSE_GENERATION.with_overrides(
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
    )
    how: dict[str, Any] = {
        "unit": parse_unit(unit) if unit else steer_steps.default_unit(mode),
        "mode": mode,
        "params": steer_steps.parse_params(param),
    }
    if len(alphas) == 1 and not grid:
        rows = steer_steps.steer_to_dir(
            m, ax, texts, out, layers=lay, alpha=alphas[0], gen=gen, **how
        )
        typer.echo("\n".join(json.dumps(row) for row in rows))
        say(f"wrote {out / steer_steps.STEERED_FILE}")
        return
    alphas = alphas or [-10.0, 0.0, 10.0]
    res = steer_steps.dose(
        m, ax, texts, out, layers=lay, alphas=alphas, seeds=seeds, gen=gen, **how
    )
    typer.echo(res.summary([x for x in METRICS if x in res.frame]).round(3).to_string())
    typer.echo(str(out / RESULT_FILES["dose"]))


@app.command("eval")
def eval_(
    suite: Suite = "code",
    model: Model = None,
    layer: Layer = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    axis: Axis = None,
    n: Annotated[int, typer.Option(help="Problems (code/confidence) or questions.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per generated reply.")] = 128,
) -> None:
    """Run a registered evaluation suite (see --suite) and save its tables in OUT."""
    m = model_for(model, device, dtype)
    ax = axis_for(axis, m, out)
    res = read_steps.evaluate(
        m, ax, out, suite=suite, layer=layer, n=n, seed=seed, max_new_tokens=max_new_tokens
    )
    typer.echo(res.result.summary.round(4).to_string())
    typer.echo(str(out))


@app.command()
def report(
    out: Out = OUT,
    title: Annotated[str, typer.Option(help="Report title.")] = "value_lens report",
    plotlyjs: Annotated[
        str, typer.Option(help="inline (one file) or directory (local plotly.min.js).")
    ] = "inline",
) -> None:
    """Write OUT/report.html from every result found in the results folder."""
    typer.echo(str(steps.report(out, title=title, plotlyjs=plotlyjs)))


@app.command()
def demo(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT / "demo",
    seed: Seed = 0,
    criteria: Criteria = None,
    corpus: Corpus = None,
    quick: Annotated[bool, typer.Option(help="Reduced setting for CI (about a minute).")] = False,
    paper: Annotated[
        bool | None,
        typer.Option(help="Paper-scale setting (default: on for CUDA devices)."),
    ] = None,
    memory_budget: MemoryBudget = None,
) -> None:
    """The whole story: ICRL data -> axis -> held-out sweep -> heatmaps -> steering -> report."""
    path = run_demo(
        model=model,
        out=out,
        device=device,
        dtype=dtype,
        seed=seed,
        quick=quick,
        paper=paper,
        layers=layers,
        criteria=criteria,
        corpus=corpus,
        memory_budget_gb=memory_budget,
        log=say,
    )
    typer.echo(str(path))


Word = Annotated[str, typer.Option(help="The preferred word (an item of the shipped pool).")]


@app.command()
def posttrain(
    word: Word = "kite",
    model: Model = None,
    dtype: Dtype = None,
    out: Out = OUT / "posttrain",
    seed: Annotated[int, typer.Option(help="Seed of the pairs and the training.")] = 42,
    pairs: Annotated[
        int | None, typer.Option(help="Preference pairs (default: 640 as the paper, 64 on CPU).")
    ] = None,
    method: Annotated[str, typer.Option(help="dpo, or sft on the chosen replies.")] = "dpo",
    epochs: Annotated[
        float | None, typer.Option(help="default: 6 (DPO), 3 (SFT); 2 on CPU.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="default: 8 (DPO), 16 (SFT).")] = None,
    lr: Annotated[float | None, typer.Option(help="default: 5e-5 (DPO), 2e-5 (SFT).")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank (default 16).")] = None,
    paper: Annotated[
        bool | None, typer.Option(help="The paper's size (default: on when CUDA is available).")
    ] = None,
) -> None:
    """LoRA DPO (or SFT) preferring one word, with the paper's settings on CUDA and a CPU size
    otherwise (needs value_lens[train]); shows a progress bar and, after the first step, the
    estimated time; saves the merged model to OUT/model for `--model OUT/model`."""
    size_pairs, size_epochs = compare_steps.posttrain_size(paper)
    which = "the paper's size" if size_epochs is None else "the CPU size (--paper for the paper's)"
    say(f"{which}: {pairs or size_pairs} pairs, {epochs or size_epochs or 'default'} epoch(s)")
    say(f"loading model {model or 'SmolLM2-135M-Instruct (embedded)'} ...")
    hf, tok = compare_steps.load_hf_option(model, dtype=dtype)
    res = compare_steps.posttrain(
        hf,
        tok,
        out,
        word=word,
        n_pairs=pairs or size_pairs,
        method=method,
        seed=seed,
        log=say,
        epochs=epochs or size_epochs,
        batch_size=batch_size,
        lr=lr,
        lora={"r": lora_r} if lora_r else None,
        progress=True,
    )
    typer.echo(str(res.path))


@app.command()
def compare(
    tuned: Annotated[str, typer.Option(help="The post-trained model (e.g. OUT/model).")],
    base: Model = None,
    word: Word = "kite",
    layer: Layer = None,
    axis: Axis = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT / "compare",
    seed: Seed = 0,
    prompts: Annotated[int, typer.Option(help="Held-out evaluation prompts.")] = 160,
    sentences: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSONL word sentences.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of each CI.")] = 1000,
    criteria: Criteria = None,
    n_per_criterion: PerCriterion = 4,
) -> None:
    """Compare a base and a tuned model along the base's value axis (--axis, else OUT's, else
    fitted on --base as build does): selection accuracy, the word's value rank, word delta."""
    b, t = model_for(base, device, dtype), model_for(tuned, device, dtype)
    res = compare_steps.compare(
        b,
        t,
        out,
        word=word,
        axis=axis,
        layer=layer,
        n_prompts=prompts,
        sentences=sentences,
        seed=seed,
        n_boot=n_boot,
        criteria=parse_criteria(criteria),
        n_per_criterion=n_per_criterion,
        log=say,
    )
    for name, r in res.results.items():
        typer.echo(f"{name}:\n{r.summary.round(3).to_string(index=False)}")
    typer.echo(str(out))
