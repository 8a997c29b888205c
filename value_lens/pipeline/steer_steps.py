"""Steering steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract): one
steered generation next to its baseline, and a dose-response grid.

Example:
    >>> DOSE_METRICS
    ('n_tokens', 'backtrack', 'code_lines', 'rep4')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from value_lens.core.generate import GenerationConfig, generate
from value_lens.core.io import atomic_write_text
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline.options import layer_or_default
from value_lens.pipeline.rundir import RESULT_FILES, update_meta
from value_lens.steering.dose import DOSE_GENERATION, DoseGrid, DoseResult, dose_response
from value_lens.steering.steer import raw_alpha
from value_lens.steering.steer import steer as make_steer
from value_lens.steering.strength import Unit

__all__ = ["DOSE_METRICS", "STEERED_FILE", "check_unit", "dose", "steer"]

#: the text metrics the report draws for a dose-response (``run.json`` ``dose_metrics``).
DOSE_METRICS = ("n_tokens", "backtrack", "code_lines", "rep4")
#: where :func:`steer` writes its generations, inside ``out``.
STEERED_FILE = "steered.jsonl"

PathLike = str | os.PathLike[str]


def check_unit(axis: ValueAxis, layers: Sequence[int], unit: Unit) -> None:
    """An ``sd`` strength needs the projection sd that ``build --unit sd`` stores."""
    if unit != "sd":
        return
    sd = axis.proj_std
    missing = [i for i in layers if sd is None or not math.isfinite(float(sd[i]))]
    if missing:
        raise InputError(
            f"--unit sd needs the projection sd of layer(s) {missing}, which this axis does not "
            "store; rebuild it with `value-lens build --unit sd` (an imported axis has none), "
            "or use --unit percent or raw"
        )


def _messages(prompts: Sequence[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p}] for p in prompts]


def steer(
    model: GenerativeModel,
    axis: ValueAxis,
    prompts: Sequence[str],
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    alpha: float,
    unit: Unit = "percent",
    gen: GenerationConfig = DOSE_GENERATION,
) -> list[dict[str, Any]]:
    """Each prompt's reply with ``gen``, with and without ``alpha`` (in ``unit``) added at one
    layer (default :func:`~value_lens.pipeline.options.layer_or_default`); the rows are saved to
    ``steered.jsonl``."""
    if layers is not None and len(layers) != 1:
        raise InputError("one steered generation takes one layer; pass --layers L")
    layer = layer_or_default(model, axis.layers, layers[0] if layers else None)
    check_unit(axis, [layer], unit)
    st = make_steer(model, axis, layers=layer, alpha=alpha, unit=unit)
    base = generate(model, _messages(prompts), gen)
    gens = generate(model, _messages(prompts), gen, steer=st)
    raw = raw_alpha(axis, layer, alpha, unit=unit)
    rows = [
        {
            "prompt": p,
            "baseline": b.text,
            "layer": layer,
            "raw_alpha": raw,
            f"alpha={alpha:g} {unit} @ layer {layer}": g.text,
        }
        for p, b, g in zip(prompts, base, gens, strict=True)
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STEERED_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    update_meta(out, steer={"layer": layer, "alpha": alpha, "unit": unit, **asdict(gen)})
    return rows


def dose(
    model: GenerativeModel,
    axis: ValueAxis,
    prompts: Sequence[str],
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    alphas: Sequence[float] = (-10.0, 0.0, 10.0),
    unit: Unit = "percent",
    seeds: int = 1,
    gen: GenerationConfig = DOSE_GENERATION,
    progress: bool = True,
) -> DoseResult:
    """A dose-response grid over ``alphas`` x ``layers`` (default one layer,
    :func:`~value_lens.pipeline.options.layer_or_default`) x ``seeds`` sampling seeds from
    ``gen.seed``, resumable through ``dose.jsonl``: ``dose.csv``, ``dose_slopes.csv``."""
    lay = list(layers) if layers else [layer_or_default(model, axis.layers)]
    check_unit(axis, lay, unit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = range(gen.seed, gen.seed + seeds)
    grid = DoseGrid(layers=lay, alphas=list(alphas), unit=unit, seeds=seed_list)
    res = dose_response(
        model,
        axis,
        _messages(prompts),
        grid=grid,
        gen=gen,
        log=out / "dose.jsonl",
        progress=progress,
    )
    res.frame.to_csv(out / RESULT_FILES["dose"], index=False)
    res.slopes.to_csv(out / RESULT_FILES["slopes"], index=False)
    update_meta(
        out,
        dose={
            "layers": lay,
            "alphas": list(alphas),
            "unit": unit,
            "seeds": seeds,
            "prompts": len(prompts),
            **asdict(gen),
        },
        dose_metrics=list(DOSE_METRICS),
    )
    return res
