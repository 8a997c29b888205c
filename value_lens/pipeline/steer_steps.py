"""Steering steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract): one
steered generation next to its baseline, and a dose-response grid, in any registered steering
mode (:data:`value_lens.steering.modes.MODES`; ``--mode`` and ``--param key=value`` on the CLI).

Example:
    >>> DOSE_METRICS
    ('n_tokens', 'backtrack', 'code_lines', 'rep4')
    >>> parse_params(["ceiling=0.5", "note=x"])
    {'ceiling': 0.5, 'note': 'x'}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
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
from value_lens.steering.modes import MODES
from value_lens.steering.steer import steer as make_steer
from value_lens.steering.strength import Unit

__all__ = [
    "DOSE_METRICS",
    "RELIABILITY_FILES",
    "STEERED_FILE",
    "check_unit",
    "default_unit",
    "dose",
    "parse_params",
    "steer_to_dir",
]

#: the text metrics the report draws for a dose-response (``run.json`` ``dose_metrics``).
DOSE_METRICS = ("n_tokens", "backtrack", "code_lines", "rep4")
#: where :func:`steer` writes its generations, inside ``out``.
STEERED_FILE = "steered.jsonl"
#: where :func:`dose` writes each prompt's curve and the reliability summary, inside ``out``.
RELIABILITY_FILES = {k: RESULT_FILES[k] for k in ("per_prompt", "reliability")}

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


def default_unit(mode: str) -> Unit:
    """``"percent"``, or ``"raw"`` for a mode whose strengths take no unit (rotate, ablate)."""
    return "percent" if MODES[mode].takes_units() else "raw"


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` as a dict (numbers as floats), for a mode's other parameters."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param takes key=value (e.g. ceiling=0.5), got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def _label(mode: str, params: Mapping[str, Any], alpha: float, unit: str, layer: int) -> str:
    """The column name of a steered reply (``alpha=... unit @ layer L`` for plain add)."""
    if mode == "add" and not params:
        return f"alpha={alpha:g} {unit} @ layer {layer}"
    primary = MODES.build(mode, None, params).primary or "alpha"
    extra = "".join(f" {k}={v}" for k, v in params.items())
    return f"{mode}{extra} {primary}={alpha:g} {unit} @ layer {layer}"


def steer_to_dir(
    model: GenerativeModel,
    axis: ValueAxis,
    prompts: Sequence[str],
    out: PathLike,
    *,
    layers: Sequence[int] | None = None,
    alpha: float,
    unit: Unit = "percent",
    gen: GenerationConfig = DOSE_GENERATION,
    mode: str = "add",
    params: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each prompt's reply with ``gen``, with and without steering at one layer (default
    :func:`~value_lens.pipeline.options.layer_or_default`) in ``mode`` with primary strength
    ``alpha`` (in ``unit``) and the mode's other ``params``; the rows are saved to
    ``steered.jsonl``."""
    if layers is not None and len(layers) != 1:
        raise InputError("one steered generation takes one layer; pass --layers L")
    params = dict(params or {})
    layer = layer_or_default(model, axis.layers, layers[0] if layers else None)
    check_unit(axis, [layer], unit)
    st = make_steer(model, axis, layers=layer, alpha=alpha, unit=unit, mode=mode, **params)
    base = generate(model, _messages(prompts), gen)
    gens = generate(model, _messages(prompts), gen, steer=st)
    label = _label(mode, params, alpha, unit, layer)
    rows = [
        {
            "prompt": p,
            "baseline": b.text,
            "layer": layer,
            "raw_alpha": st.raw_alphas[0],
            label: g.text,
        }
        for p, b, g in zip(prompts, base, gens, strict=True)
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STEERED_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    meta = {"layer": layer, "alpha": alpha, "unit": unit, "mode": mode, "params": params}
    update_meta(out, steer={**meta, **asdict(gen)})
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
    mode: str = "add",
    params: Mapping[str, Any] | None = None,
) -> DoseResult:
    """A dose-response grid in ``mode`` over ``alphas`` (its primary strength) x ``layers``
    (default one layer, :func:`~value_lens.pipeline.options.layer_or_default`) x ``seeds``
    sampling seeds from ``gen.seed``, resumable through ``dose.jsonl``: ``dose.csv``,
    ``dose_slopes.csv`` and the per-prompt reliability files (:data:`RELIABILITY_FILES`)."""
    lay = list(layers) if layers else [layer_or_default(model, axis.layers)]
    check_unit(axis, lay, unit)
    params = dict(params or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = range(gen.seed, gen.seed + seeds)
    grid = DoseGrid(
        layers=lay, alphas=list(alphas), unit=unit, seeds=seed_list, mode=mode, params=params
    )
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
    res.per_prompt.to_csv(out / RELIABILITY_FILES["per_prompt"], index=False)
    res.reliability.to_csv(out / RELIABILITY_FILES["reliability"], index=False)
    update_meta(
        out,
        dose={
            "layers": lay,
            "alphas": list(alphas),
            "unit": unit,
            "mode": mode,
            "params": params,
            "seeds": seeds,
            "prompts": len(prompts),
            **asdict(gen),
        },
        dose_metrics=list(DOSE_METRICS),
    )
    return res
