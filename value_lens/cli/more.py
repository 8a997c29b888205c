"""``value-lens steer``, ``eval`` and ``demo`` (registered on :data:`value_lens.cli.main.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from value_lens.cli.main import (
    LAYER_CONVENTION,
    Axis,
    Corpus,
    Criteria,
    Device,
    Dtype,
    Layers,
    Model,
    Out,
    Seed,
    _axis,
    _layer_list,
    _model,
    _say,
    app,
)
from value_lens.errors import InputError

__all__ = ["demo", "eval_", "steer"]

SUITES = ("code", "backtracking", "confidence")


def _default_layer(model: Any, axis: Any) -> int:
    """The paper's layer on a model of its depth, else the middle one (among the axis's)."""
    from value_lens.core.conventions import default_layer
    from value_lens.core.model import n_layers

    return default_layer(n_layers(model), axis.layers)


def _check_unit(axis: Any, layers: list[int], unit: str) -> None:
    """An ``sd`` strength needs the projection sd that ``build --unit sd`` stores."""
    import math

    if unit != "sd":
        return
    missing = [i for i in layers if not math.isfinite(float(axis.proj_std[i]))]
    if missing:
        raise InputError(
            f"--unit sd needs the projection sd of layer(s) {missing}, which this axis does not "
            "store; rebuild it with `value-lens build --unit sd` (an imported axis has none), "
            "or use --unit percent or raw"
        )


def _prompts(prompt: list[str] | None, prompts_file: Path | None) -> list[str]:
    from value_lens.pipeline.workflow import STEER_PROMPTS

    out = list(prompt or [])
    if prompts_file is not None:
        out += [ln.strip() for ln in prompts_file.read_text(encoding="utf-8").splitlines()
                if ln.strip()]  # fmt: skip
    return out or list(STEER_PROMPTS)


@app.command()
def steer(
    prompt: Annotated[list[str] | None, typer.Option(help="A user prompt (repeatable).")] = None,
    prompts_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="One prompt per line.")
    ] = None,
    model: Model = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Layers to steer (default: 20 on a 36-block model like the paper's, else the "
            f"middle one): 20, -1, 10-20, 3,5,7 or all. {LAYER_CONVENTION}"
        ),
    ] = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out"),
    seed: Seed = 0,
    axis: Axis = None,
    alpha: Annotated[
        list[float] | None, typer.Option(help="Strength (repeatable: several = a grid).")
    ] = None,
    unit: Annotated[
        str,
        typer.Option(
            help="percent (of the layer's mean residual norm on the fitting data), raw, or sd "
            "(of the projection on the axis; needs an axis built with --unit sd)."
        ),
    ] = "percent",
    grid: Annotated[bool, typer.Option(help="Run a dose-response grid even for one alpha.")] = (
        False
    ),
    seeds: Annotated[int, typer.Option(help="Sampling seeds per grid cell.")] = 1,
    max_new_tokens: Annotated[int, typer.Option(help="New tokens per reply.")] = 48,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
) -> None:
    """Steered generation along the axis, or a dose-response grid (several --alpha or --grid)."""
    import json

    from value_lens.analysis.text_metrics import METRICS
    from value_lens.core.generate import generate
    from value_lens.pipeline.rundir import RESULT_FILES, update_meta
    from value_lens.steering.dose import dose_response
    from value_lens.steering.steer import raw_alpha
    from value_lens.steering.steer import steer as make_steer

    m = _model(model, device, dtype)
    ax = _axis(axis, m, out)
    texts = _prompts(prompt, prompts_file)
    msgs = [[{"role": "user", "content": t}] for t in texts]
    lay = _layer_list(layers, m) or [_default_layer(m, ax)]
    _check_unit(ax, lay, unit)
    alphas = list(alpha) if alpha else [-10.0, 0.0, 10.0]
    if len(alphas) == 1 and not grid:
        if len(lay) != 1:
            raise InputError("one steered generation takes one layer; pass --layers L")
        st = make_steer(m, ax, layers=lay[0], alpha=alphas[0], unit=unit)
        base = generate(m, msgs, seed=seed, temperature=temperature,
                        max_new_tokens=max_new_tokens)  # fmt: skip
        gens = generate(m, msgs, steer=st, seed=seed, temperature=temperature,
                        max_new_tokens=max_new_tokens)  # fmt: skip
        raw = raw_alpha(ax, lay[0], alphas[0], unit=unit)
        for t, b, g in zip(texts, base, gens, strict=True):
            typer.echo(json.dumps({"prompt": t, "baseline": b.text, "layer": lay[0],
                                   "raw_alpha": raw,
                                   f"alpha={alphas[0]:g} {unit} @ layer {lay[0]}": g.text}))  # fmt: skip
        return
    res = dose_response(m, ax, msgs, layers=lay, alphas=alphas, unit=unit,
                        seeds=range(seed, seed + seeds), max_new_tokens=max_new_tokens,
                        temperature=temperature, log=out / "dose.jsonl")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    res.frame.to_csv(out / RESULT_FILES["dose"], index=False)
    res.slopes.to_csv(out / RESULT_FILES["slopes"], index=False)
    update_meta(out, dose={"layers": lay, "alphas": alphas, "unit": unit, "seeds": seeds,
                           "prompts": len(texts), "max_new_tokens": max_new_tokens},
                dose_metrics=["n_tokens", "backtrack", "code_lines", "rep4"])  # fmt: skip
    typer.echo(res.summary([x for x in METRICS if x in res.frame]).round(3).to_string())
    typer.echo(str(out / RESULT_FILES["dose"]))


@app.command("eval")
def eval_(
    suite: Annotated[str, typer.Option(help="code, backtracking or confidence.")] = "code",
    model: Model = None,
    layer: Annotated[
        int | None,
        typer.Option(
            help="Layer to read (default: 20 on a 36-block model like the paper's, else the "
            f"middle one). {LAYER_CONVENTION}"
        ),
    ] = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out"),
    seed: Seed = 0,
    axis: Axis = None,
    n: Annotated[int, typer.Option(help="Problems (code/confidence) or questions.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per generated reply.")] = 128,
) -> None:
    """Run an evaluation suite: correct vs corrupted code, backtracking, or confidence."""
    from value_lens import evals
    from value_lens.pipeline.rundir import RESULT_FILES, update_meta

    if suite not in SUITES:
        raise typer.BadParameter(f"unknown suite {suite!r}; use one of {SUITES}",
                                 param_hint="--suite")  # fmt: skip
    m = _model(model, device, dtype)
    ax = _axis(axis, m, out)
    lay = layer if layer is not None else _default_layer(m, ax)
    out.mkdir(parents=True, exist_ok=True)
    if suite == "code":
        res = evals.run_code_suite(m, ax, lay, n_problems=n, seed=seed,
                                   log=out / "code.jsonl")  # fmt: skip
        res.table.to_csv(out / RESULT_FILES["code"], index=False)
    elif suite == "backtracking":
        probs = [p["question"] for p in evals.arithmetic_problems(n, seed=seed)]
        res = evals.run_backtracking_suite(m, ax, lay, problems=probs, n_rollouts=2, seed=seed,
                                           max_new_tokens=max_new_tokens)  # fmt: skip
        res.extras["bands"].to_csv(out / RESULT_FILES["bands"], index=False)
        res.extras["event_locked"].to_csv(out / RESULT_FILES["events"], index=False)
    else:
        res = evals.run_confidence_suite(m, ax, lay, n_problems=n, seed=seed,
                                         max_new_tokens=max_new_tokens, n_samples=4,
                                         log=out / "confidence.jsonl")  # fmt: skip
        res.summary.to_csv(out / RESULT_FILES["confidence"], index=False)
        res.table.to_csv(out / RESULT_FILES["prefills"], index=False)
    update_meta(out, **{f"eval_{suite}": {"layer": lay, "n": n, "seed": seed}})
    typer.echo(res.summary.round(4).to_string())


@app.command()
def demo(
    model: Model = None,
    layers: Layers = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = Path("value_lens_out/demo"),
    seed: Seed = 0,
    criteria: Criteria = None,
    corpus: Corpus = None,
    quick: Annotated[bool, typer.Option(help="Reduced setting for CI (about a minute).")] = False,
    paper: Annotated[
        bool | None,
        typer.Option(help="Paper-scale setting (default: on for CUDA devices)."),
    ] = None,
) -> None:
    """The whole story: ICRL data -> axis -> held-out sweep -> heatmaps -> steering -> report."""
    from value_lens.pipeline.demo import run_demo

    path = run_demo(model=model, out=out, device=device, dtype=dtype, seed=seed, quick=quick,
                    paper=paper, layers=layers, criteria=criteria, corpus=corpus,
                    log=_say)  # fmt: skip
    typer.echo(str(path))
