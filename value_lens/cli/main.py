"""The ``value-lens`` command line.

Subcommands: ``build`` (ICRL data -> axis artifact), ``sweep`` (held-out layer sweep),
``trace`` (token heatmaps of a text or file), ``steer`` (steered generation or a dose-response
grid), ``eval`` (evaluation suites), ``report`` (HTML report of a results folder) and ``demo``
(the whole story on the embedded model). Every command writes into ``--out`` and records what it
did in ``--out/run.json``, so ``value-lens report --out DIR`` can draw it all.

User errors (bad options, missing files, a ValueLensError) print one line to stderr and exit
non-zero without a traceback: 2 for bad usage, 1 for everything else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from value_lens.errors import ValueLensError

__all__ = ["app", "main"]

app = typer.Typer(
    name="value-lens",
    help="See, measure and steer a language model's value axis ('am I on the right track?').",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# ------------------------------------------------------------------ shared options
Model = Annotated[
    str | None,
    typer.Option(help="Model dir or hub id; default the embedded SmolLM2-135M-Instruct."),
]
#: how every layer option counts layers (value_lens.core.conventions)
LAYER_CONVENTION = (
    "Layer i is the output of block i (blocks.i.hook_resid_post, HF hidden_states index "
    "i+1); the paper's layer 21 is 20."
)
Layers = Annotated[
    str | None, typer.Option(help=f"Layers: 20, -1, 10-20, 3,5,7 or all. {LAYER_CONVENTION}")
]
Device = Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")]
Dtype = Annotated[str | None, typer.Option(help="e.g. bf16, fp16, fp32 (default: checkpoint).")]
Out = Annotated[Path, typer.Option(help="Results folder (created if needed).")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Axis = Annotated[
    Path | None,
    typer.Option(help="A saved ValueAxis (.safetensors) or the paper's value_axis.npy."),
]
Corpus = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="Your own paragraphs (.txt blank-line separated, or .jsonl).",
    ),
]
Criteria = Annotated[
    str | None,
    typer.Option(help="ICRL criteria: all, syntactic, semantic, first:N or a comma list."),
]


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _model(model: str | None, device: str, dtype: str | None) -> Any:
    from value_lens.pipeline.workflow import load_model_option

    _say(f"loading model {model or 'SmolLM2-135M-Instruct (embedded)'} ...")
    return load_model_option(model, device=device, dtype=dtype)


def _axis(axis: Path | None, model: Any, out: Path) -> Any:
    from value_lens.pipeline.workflow import load_axis_option

    if axis is None:
        axis = out / "axis.safetensors"
        if not axis.exists():
            raise typer.BadParameter(
                f"no --axis given and {axis} does not exist; run `value-lens build` first",
                param_hint="--axis",
            )
    return load_axis_option(axis, model)


def _layer_list(spec: str | None, model: Any) -> list[int] | None:
    from value_lens.core.model import n_layers
    from value_lens.pipeline.workflow import parse_layers

    return parse_layers(spec, n_layers(model))


# ------------------------------------------------------------------ commands
@app.command()
def build(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out"),
    seed: Seed = 0,
    criteria: Criteria = None,
    n_per_criterion: Annotated[int, typer.Option(help="Conversations per criterion.")] = 4,
    corpus: Corpus = None,
    method: Annotated[
        str,
        typer.Option(
            help="mean_diff (the paper's), pca_diff, ridge (collects second moments) or "
            "logistic (collects a token sample)."
        ),
    ] = "mean_diff",
    unit: Annotated[
        str,
        typer.Option(
            help="Strength unit you will steer this axis in: percent and raw need nothing "
            "more; sd also collects second moments so the axis stores each layer's "
            "projection sd."
        ),
    ] = "percent",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 4,
) -> None:
    """Generate scripted ICRL conversations, label them and fit the value axis."""
    from value_lens.core.model import model_id
    from value_lens.pipeline.rundir import update_meta
    from value_lens.pipeline.workflow import (
        build_icrl_data,
        collect_requirements,
        fit_axis,
        parse_criteria,
    )

    collect_requirements(method, unit)  # a bad --method or --unit fails before any work
    m = _model(model, device, dtype)
    crit = parse_criteria(criteria)
    convs, data, report = build_icrl_data(
        m, n_per_criterion=n_per_criterion, criteria=crit, seed=seed, out=out, corpus=corpus
    )
    _say(f"{len(convs)} conversations, {len(data)} labelled turns, {data.n_tokens} tokens")
    axis, stats = fit_axis(m, data, layers=_layer_list(layers, m), method=method, unit=unit,
                           batch_size=batch_size)  # fmt: skip
    path = axis.save(out / "axis.safetensors")
    stats.save(out / "stats.safetensors")
    update_meta(out, model=model_id(m), layers=list(axis.layers), seed=seed, method=method,
                unit=unit, criteria=sorted(set(data.groups)), n_conversations=len(convs),
                n_labelled_turns=len(data), dropped=report.reasons())  # fmt: skip
    typer.echo(str(path))


@app.command()
def sweep(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out"),
    seed: Seed = 0,
    criteria: Criteria = None,
    n_per_criterion: Annotated[int, typer.Option(help="Conversations per criterion.")] = 4,
    corpus: Corpus = None,
    splits: Annotated[int, typer.Option(help="Held-out splits by criterion.")] = 10,
    n_train: Annotated[int | None, typer.Option(help="Training criteria per split.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 4,
) -> None:
    """Held-out layer sweep with its controls (matched, placebo and DiD AUROCs, position scores,
    sign-aligned random directions), on data labelled with placebo turns."""
    from value_lens.analysis.sweep import cosine_matrix, layer_sweep
    from value_lens.core.model import model_id
    from value_lens.pipeline.rundir import RESULT_FILES, update_meta, value_sentence
    from value_lens.pipeline.workflow import build_icrl_data, parse_criteria

    m = _model(model, device, dtype)
    _, data, _ = build_icrl_data(m, n_per_criterion=n_per_criterion,
                                 criteria=parse_criteria(criteria), seed=seed, out=out,
                                 corpus=corpus)  # fmt: skip
    n_groups = len(set(data.groups))
    n_tr = n_train if n_train is not None else max(1, round(0.7 * n_groups))
    lay = _layer_list(layers, m)
    stats = None
    saved = out / "stats.safetensors"  # reuse `build`'s pass when it saw exactly this data
    if saved.exists():
        from value_lens.fitting.stats import ActivationStats

        cand = ActivationStats.load(saved)
        if cand.meta.get("dataset_hash") == data.fingerprint() and set(lay or []) <= set(
            cand.layers
        ):
            stats = cand
            _say(f"reusing {saved} (same data)")
    df = layer_sweep(m, data, n_splits=splits, n_train=n_tr, seed=seed, stats=stats,
                     layers=lay if lay is not None or stats is None else list(stats.layers),
                     batch_size=batch_size)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / RESULT_FILES["sweep"], index=False)
    cosine_matrix(df).to_csv(out / RESULT_FILES["cosine"])
    update_meta(out, model=model_id(m), layers=list(df["layer"]), seed=seed,
                sweep={"n_splits": splits, "n_train": n_tr, "n_criteria": n_groups,
                       "ci": df.attrs.get("ci")})  # fmt: skip
    best = df.loc[df["token_auroc_mean"].idxmax()]
    typer.echo(
        f"best layer {int(best['layer'])}: token AUROC {best['token_auroc_mean']:.3f}; "
        f"wrote {out / RESULT_FILES['sweep']}"
    )
    sentence = value_sentence(df)
    if sentence:
        typer.echo(sentence)


@app.command()
def trace(
    text: Annotated[str | None, typer.Argument(help="Text to read (or use --file).")] = None,
    file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Read this text file (.json: messages)."),
    ] = None,
    model: Model = None,
    layers: Layers = None,
    layer: Annotated[
        int | None,
        typer.Option(
            help="Layer of the token heatmap (default: 20 on a 36-block model like the paper's, "
            f"else the middle one). {LAYER_CONVENTION}"
        ),
    ] = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out"),
    seed: Seed = 0,
    axis: Axis = None,
    name: Annotated[str, typer.Option(help="Name of this trace in the results folder.")] = "text",
    chat: Annotated[bool, typer.Option(help="Wrap the text as one user chat message.")] = False,
) -> None:
    """Per-token value heatmaps (one layer, and tokens x layers) of a text or file."""
    import json

    from value_lens.analysis.readout import trace as read_trace
    from value_lens.core.conventions import default_layer
    from value_lens.core.model import n_layers
    from value_lens.pipeline.rundir import save_trace, update_meta
    from value_lens.viz import layer_token_heatmap, token_heatmap, write_report

    if (text is None) == (file is None):
        raise typer.BadParameter("give either a TEXT argument or --file", param_hint="TEXT")
    src: Any = text
    if file is not None:
        src = file.read_text(encoding="utf-8")
        if file.suffix == ".json":
            src = json.loads(src)
    if chat and isinstance(src, str):
        src = [{"role": "user", "content": src}]
    m = _model(model, device, dtype)
    ax = _axis(axis, m, out)
    tr = read_trace(m, src, ax, _layer_list(layers, m))
    show = layer if layer is not None else default_layer(n_layers(m), tr.layers)
    hm = token_heatmap(tr, show)
    fig = layer_token_heatmap(tr)
    save_trace(tr, out / f"trace-{name}.json", title=f"trace: {name}")
    page = write_report(out / f"trace-{name}.html", [(f"Layer {show}", hm), ("All layers", fig)],
                        title=f"value trace: {name}",
                        metadata={"model": tr.model_id, "layers": tr.layers, "seed": seed})  # fmt: skip
    update_meta(out, heatmap_layer=show)
    typer.echo(f"{len(tr.tokens)} tokens, mean value at layer {show}: {tr.mean(show):+.4f}")
    typer.echo(str(page))


@app.command()
def report(
    out: Out = Path("value_lens_out"),
    title: Annotated[str, typer.Option(help="Report title.")] = "value_lens report",
    plotlyjs: Annotated[
        str, typer.Option(help="inline (one file) or directory (local plotly.min.js).")
    ] = "inline",
) -> None:
    """Write OUT/report.html from every result found in the results folder."""
    from value_lens.pipeline.rundir import report_from_dir

    typer.echo(str(report_from_dir(out, title=title, plotlyjs=plotlyjs)))


# ------------------------------------------------------------------ entry point
def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _click_error() -> type[Exception]:
    """Typer 0.2x vendors click; its ClickException is the base of every usage error."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    command = typer.main.get_command(app)
    click_error = _click_error()
    try:
        rv = command.main(args=argv, prog_name="value-lens", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except click_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was printed
            return 0
        msg = exc.format_message()  # type: ignore[attr-defined]
        print(f"value-lens: error: {_one_line(msg)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2) or 2)
    except (ValueLensError, OSError) as exc:
        print(f"value-lens: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        print("value-lens: interrupted", file=sys.stderr)
        return 130
    return int(rv) if isinstance(rv, int) else 0


# steer, eval and demo live in their own module; importing it registers them on ``app``.
from value_lens.cli import more as _more  # noqa: E402, F401
