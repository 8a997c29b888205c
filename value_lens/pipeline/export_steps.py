"""Export steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract): a saved
axis written in another runtime's format. Today: llama.cpp control vectors (GGUF), which
``llama-cli`` / ``llama-server --control-vector FILE`` apply.

The layers default to the one ``value-lens steer`` steers
(:func:`~value_lens.core.conventions.default_layer` among the axis's fitted layers), so
``value-lens export --alpha 8`` writes the residual change that ``value-lens steer --alpha 8``
adds. The step records what it wrote in ``out/run.json`` under ``export``.

Example:
    >>> import tempfile, torch
    >>> from value_lens.fitting.axis import ValueAxis
    >>> axis = ValueAxis(torch.eye(4)[:3], model_id="toy")
    >>> path = export(axis, tempfile.mkdtemp(), layers=[1, 2], alpha=2.0, unit="raw")
    >>> path.name
    'value_axis.gguf'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from value_lens.core.conventions import default_layer
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline.options import parse_unit
from value_lens.pipeline.rundir import update_meta
from value_lens.pipeline.steps import quiet

__all__ = ["FORMATS", "GGUF_FILE", "export"]

#: the formats :func:`export` writes
FORMATS = ("gguf",)
#: the default file name of a GGUF export inside ``out``
GGUF_FILE = "value_axis.gguf"

PathLike = str | os.PathLike[str]


def export(
    axis: ValueAxis,
    out: PathLike,
    *,
    fmt: str = "gguf",
    layers: Sequence[int] | None = None,
    alpha: float = 1.0,
    unit: str = "raw",
    file: str | None = None,
    log: Callable[[str], None] = quiet,
) -> Path:
    """Write ``axis`` at ``layers`` (default: ``value-lens steer``'s layer) with strength ``alpha``
    in ``unit`` to ``out/file`` (default :data:`GGUF_FILE`) in format ``fmt``; returns the path.

    Raises:
        InputError: an unknown format or unit.
        LayerError: layer 0, or a layer the axis has no direction for.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {list(FORMATS)}")
    unit = parse_unit(unit)
    chosen = list(layers) if layers else [default_layer(axis.n_layers, axis.layers)]
    path = axis.to_gguf(Path(out) / (file or GGUF_FILE), layers=chosen, alpha=alpha, unit=unit)
    log(
        f"wrote a llama.cpp control vector: layers {chosen} (direction.<layer>), "
        f"alpha {alpha:g} {unit}; apply it with llama-cli -m MODEL.gguf --control-vector {path}"
    )
    update_meta(
        out,
        export={
            "format": fmt,
            "path": str(path),
            "layers": chosen,
            "alpha": float(alpha),
            "unit": unit,
            "model_id": axis.model_id,
        },
    )
    return path
