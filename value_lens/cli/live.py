"""The live ``value-lens`` commands: ``monitor`` streams replies to prompts and ``chat`` holds a
conversation, each token coloured by its value as it is written (:mod:`value_lens.pipeline.live_steps`,
rich ``Live``). They are registered on the same typer app as :mod:`value_lens.cli.commands`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from value_lens.analysis.stop import parse_aggregate
from value_lens.cli.options import (
    Axis,
    Device,
    Dtype,
    Layer,
    Model,
    Out,
    Prompts,
    PromptsFile,
    Seed,
    app,
    axis_for,
    model_for,
    say,
)
from value_lens.core.generate import GenerationConfig
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline import live_steps
from value_lens.pipeline.options import layer_or_default, read_prompts

__all__ = ["chat", "monitor"]

OUT = Path("value_lens_out")
CHAT_FILE = "chat.jsonl"

MaxNewTokens = Annotated[int, typer.Option(help="New tokens per reply.")]
Temperature = Annotated[float, typer.Option(help="0 = greedy.")]


def _check_aggregate(spec: str) -> str:
    try:
        parse_aggregate(spec)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return spec


Aggregate = Annotated[
    str,
    typer.Option(
        callback=_check_aggregate,
        help="Aggregate for the summary and --stop-below: ema:0.9, mean:32, min:32 or max:32.",
    ),
]
StopBelow = Annotated[
    float | None, typer.Option(help="End a reply at the first token whose aggregate is below this.")
]
StopAfter = Annotated[int, typer.Option(min=0, help="No early stop before this many new tokens.")]
Vmax = Annotated[
    float | None, typer.Option(help="Fixed colour limit (default: the largest |value| so far).")
]


def _setup(
    model: str | None, device: str, dtype: str | None, axis: Path | None, out: Path
) -> tuple[GenerativeModel, ValueAxis]:
    m = model_for(model, device, dtype)
    return m, axis_for(axis, m, out)


def _layer(m: GenerativeModel, ax: ValueAxis, layer: int | None) -> int:
    return layer_or_default(m, ax.layers, layer)


@app.command()
def monitor(
    prompt: Prompts = None,
    prompts_file: PromptsFile = None,
    model: Model = None,
    layer: Layer = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    axis: Axis = None,
    max_new_tokens: MaxNewTokens = 64,
    temperature: Temperature = 0.0,
    aggregate: Aggregate = "ema:0.9",
    stop_below: StopBelow = None,
    stop_after: StopAfter = 0,
    vmax: Vmax = None,
    raw: Annotated[bool, typer.Option(help="Prompts are raw text, not user messages.")] = False,
) -> None:
    """Stream replies with each token coloured by its value at one layer as it is written, then
    a summary per prompt; writes OUT/monitor.jsonl and OUT/monitor.html (the token heatmap)."""
    m, ax = _setup(model, device, dtype, axis, out)
    cfg = live_steps.WatchConfig(_layer(m, ax, layer), aggregate, stop_below, stop_after, vmax, raw)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    res = live_steps.watch(m, ax, read_prompts(prompt, prompts_file), cfg, gen)
    typer.echo("\n".join(res.summary()))
    for path in res.save(out):
        say(f"wrote {path}")


@app.command()
def chat(
    model: Model = None,
    layer: Layer = None,
    device: Device = "cpu",
    dtype: Dtype = None,
    out: Out = OUT,
    seed: Seed = 0,
    axis: Axis = None,
    max_new_tokens: MaxNewTokens = 128,
    temperature: Temperature = 0.0,
    aggregate: Aggregate = "ema:0.9",
    stop_below: StopBelow = None,
    stop_after: StopAfter = 0,
    vmax: Vmax = None,
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
) -> None:
    """Chat with the model: each line on stdin is a user turn (until end of input or /exit), each
    reply streams with its tokens coloured by their value; writes OUT/chat.jsonl after each turn."""
    m, ax = _setup(model, device, dtype, axis, out)
    cfg = live_steps.WatchConfig(_layer(m, ax, layer), aggregate, stop_below, stop_after, vmax)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    say("type a message and press Enter; /exit or end of input (Ctrl-D) ends the chat")
    turns = live_steps.chat(m, ax, sys.stdin, cfg, gen, system=system, transcript=out / CHAT_FILE)
    say(f"{len(turns)} turn(s); wrote {out / CHAT_FILE}" if turns else "no turn")
