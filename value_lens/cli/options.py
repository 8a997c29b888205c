"""The ``value-lens`` typer app, the options its commands share, and the small helpers that
turn options into what a pipeline step takes (a loaded model, an axis, a layer list, a text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from value_lens.core.model import n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.evals.registry import suite_help, suites
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline.options import load_axis_option, load_model_option, parse_layers
from value_lens.pipeline.steps import AXIS_FILE
from value_lens.steering.modes import MODES

__all__ = ["LAYER_CONVENTION", "app", "axis_for", "layer_list", "model_for", "say", "text_source"]

app = typer.Typer(
    name="value-lens",
    help="See, measure and steer a language model's value axis ('am I on the right track?').",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: how every layer option counts layers (value_lens.core.conventions)
LAYER_CONVENTION = (
    "Layer i is the output of block i (blocks.i.hook_resid_post, HF hidden_states index "
    "i+1); the paper's layer 21 is 20."
)
_DEFAULT_LAYER = "default: 20 on a 36-block model like the paper's, else the middle one"

# ------------------------------------------------------------------ shared options
Model = Annotated[
    str | None,
    typer.Option(help="Model dir or hub id; default the embedded SmolLM2-135M-Instruct."),
]
Layers = Annotated[
    str | None, typer.Option(help=f"Layers: 20, -1, 10-20, 3,5,7 or all. {LAYER_CONVENTION}")
]
SteerLayers = Annotated[
    str | None,
    typer.Option(
        help=f"Layers to steer ({_DEFAULT_LAYER}): 20, -1, 10-20, 3,5,7 or all. {LAYER_CONVENTION}"
    ),
]
Layer = Annotated[
    int | None, typer.Option(help=f"Layer to read ({_DEFAULT_LAYER}). {LAYER_CONVENTION}")
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
PerCriterion = Annotated[int, typer.Option(help="Conversations per criterion.")]
BatchSize = Annotated[int, typer.Option(help="Sequences per forward pass.")]
MemoryBudget = Annotated[
    float | None,
    typer.Option(
        help="GB of labelled residuals kept for one forward pass (statistics and sweep "
        "together); above it, two passes. Default 2."
    ),
]


def _method_help() -> str:
    """The ``--method`` help: every registered fitting method with its one-line summary."""
    from value_lens.fitting.methods import FITTERS

    return "Fitting method. " + "; ".join(f"{n}: {f.summary}" for n, f in FITTERS.items()) + "."


Method = Annotated[str, typer.Option(help=_method_help())]
MethodPrompts = Annotated[
    int, typer.Option(help="With --method all: steering prompts per method (0: none).")
]
SweepMethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        help="Fitting method swept (any registered one; see `build --help`), or 'all': every "
        "method swept, fitted and steered at equal strength into one table (methods.csv).",
    ),
]
BuildUnit = Annotated[
    str,
    typer.Option(
        help="Strength unit you will steer this axis in: percent and raw need nothing more; sd "
        "also collects second moments so the axis stores each layer's projection sd."
    ),
]
SteerUnit = Annotated[
    str,
    typer.Option(
        help="percent (of the layer's mean residual norm on the fitting data), raw, or sd "
        "(of the projection on the axis; needs an axis built with --unit sd)."
    ),
]
ModeUnit = Annotated[
    str | None,
    typer.Option(
        "--unit",
        help="percent (of the layer's mean residual norm on the fitting data), raw, or sd "
        "(of the projection on the axis; needs an axis built with --unit sd). Default: percent, "
        "or raw for a mode whose strength is unit-free (rotate: degrees; ablate: a fraction).",
    ),
]
Prompts = Annotated[list[str] | None, typer.Option(help="A user prompt (repeatable).")]
PromptsFile = Annotated[
    Path | None, typer.Option(exists=True, dir_okay=False, help="One prompt per line.")
]
Alphas = Annotated[
    list[float] | None,
    typer.Option(
        help="Strength (repeatable: several = a grid): the mode's primary strength (the push for "
        "add, the target for clamp, the floor for cap, degrees for rotate)."
    ),
]


SteerMode = Annotated[
    str,
    typer.Option(
        help=f"Steering mode, one of: {', '.join(MODES)} (the registry "
        "value_lens.steering.modes.MODES; docs/guides/steering.md)."
    ),
]
SteerParams = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A mode parameter as key=value (repeatable), e.g. --param ceiling=0.5 for cap.",
    ),
]
Text = Annotated[str | None, typer.Argument(help="Text to read (or use --file).")]
TextFile = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="Read this text file (.json: messages)."),
]


def _check_suite(suite: str) -> str:
    if suite not in suites():
        raise typer.BadParameter(f"unknown suite {suite!r}; use one of {tuple(suites())}")
    return suite


Suite = Annotated[str, typer.Option(callback=_check_suite, help=f"The suite: {suite_help()}.")]


# ------------------------------------------------------------------ helpers
def say(msg: str) -> None:
    """A progress line on stderr (stdout holds the results)."""
    typer.echo(msg, err=True)


def model_for(model: str | None, device: str, dtype: str | None) -> Any:
    """Load ``--model`` (saying so on stderr)."""
    say(f"loading model {model or 'SmolLM2-135M-Instruct (embedded)'} ...")
    return load_model_option(model, device=device, dtype=dtype)


def axis_for(axis: Path | None, model: GenerativeModel, out: Path) -> ValueAxis:
    """Load ``--axis``, by default the one ``build`` saved in ``--out``."""
    if axis is None:
        axis = out / AXIS_FILE
        if not axis.exists():
            raise typer.BadParameter(
                f"no --axis given and {axis} does not exist; run `value-lens build` first",
                param_hint="--axis",
            )
    return load_axis_option(axis, model)


def layer_list(spec: str | None, model: GenerativeModel) -> list[int] | None:
    """``--layers`` for ``model`` (None when not given)."""
    return parse_layers(spec, n_layers(model))


def text_source(text: str | None, file: Path | None, chat: bool) -> Any:
    """The TEXT argument or ``--file`` (``.json``: chat messages); ``chat`` wraps a text as one
    user message."""
    if (text is None) == (file is None):
        raise typer.BadParameter("give either a TEXT argument or --file", param_hint="TEXT")
    src: Any = text
    if file is not None:
        src = file.read_text(encoding="utf-8")
        if file.suffix == ".json":
            src = json.loads(src)
    return [{"role": "user", "content": src}] if chat and isinstance(src, str) else src
