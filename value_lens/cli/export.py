"""The ``value-lens export`` command: a saved axis written for another runtime (today llama.cpp's
control-vector GGUF, :mod:`value_lens.pipeline.export_steps`). No model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from value_lens.cli.options import Out, SteerLayers, SteerUnit, app
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline import export_steps
from value_lens.pipeline.options import parse_layers
from value_lens.pipeline.steps import AXIS_FILE

__all__ = ["export"]

OUT = Path("value_lens_out")


def _axis(axis: Path | None, out: Path) -> ValueAxis:
    path = axis if axis is not None else out / AXIS_FILE
    if not path.is_file():
        raise InputError(
            f"axis file {path} does not exist; pass --axis FILE.safetensors or run "
            "`value-lens build --out DIR` first"
        )
    if path.suffix == ".npy":
        raise InputError(
            f"{path} is the paper's .npy format, which needs the model to map its rows; import "
            "it with ValueAxis.from_official(path, model).save(...) first"
        )
    return ValueAxis.load(path)


@app.command()
def export(
    alpha: Annotated[float, typer.Option(help="Strength, in --unit (as for `value-lens steer`).")],
    axis: Annotated[
        Path | None, typer.Option(help="A saved ValueAxis (default: OUT/axis.safetensors).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="gguf: a llama.cpp control vector (--control-vector).")
    ] = "gguf",
    layers: SteerLayers = None,
    unit: SteerUnit = "percent",
    out: Out = OUT,
    file: Annotated[
        str | None, typer.Option(help=f"File name in OUT (default {export_steps.GGUF_FILE}).")
    ] = None,
) -> None:
    """Write the axis as a llama.cpp control vector: per layer, alpha (in --unit) times the unit
    direction, the residual change `value-lens steer` adds at that strength; layer i is
    llama.cpp's direction.i (output of block i); layer 0 cannot be exported."""
    ax = _axis(axis, out)
    picked = parse_layers(layers, ax.n_layers)
    path = export_steps.export(
        ax, out, fmt=fmt, layers=picked, alpha=alpha, unit=unit, file=file, log=_say
    )
    typer.echo(str(path))


def _say(msg: str) -> None:
    typer.echo(msg, err=True)
