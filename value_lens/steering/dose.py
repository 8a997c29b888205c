"""Dose-response sweeps: generate under a grid of alpha x layer x seed and measure the outputs.

:func:`dose_response` runs every cell ``(layer, alpha, seed)`` over a prompt set with
:func:`value_lens.core.generate.generate` and :func:`value_lens.steering.steer.steer` (``alpha = 0`` is run
once per seed and shared by all layers), scores each output with :func:`text_metrics`, and
returns a tidy DataFrame (one row per prompt x cell) plus :func:`dose_slopes`, the OLS slope of
each metric against alpha per layer (the paper's Fig. 11).

With ``log=path`` every finished cell is appended to a :class:`value_lens.core.io.JsonlLog` (one
fsynced record per cell); rerunning with the same path skips the cells already there, so a
killed sweep resumes losing at most the cell in flight. Records carry a fingerprint of the
configuration, and a log written by a different configuration is refused.

Slope units: per 1 unit of ``unit`` (per 1% of the residual norm for the default
``unit="percent"``; for ``unit="raw"`` :func:`dose_slopes` is called with ``per=25`` to match
the paper's "per 25-unit step").
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.text_metrics import METRICS, text_metrics
from value_lens.core.generate import GenerationConfig, format_prompts, generate
from value_lens.core.io import JsonlLog
from value_lens.core.model import model_id, n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.steering.steer import raw_alpha, steer
from value_lens.steering.strength import UNITS, Calibration, Unit

__all__ = [
    "DEFAULT_ALPHAS",
    "DOSE_GENERATION",
    "PAPER_RAW_ALPHAS",
    "DoseGrid",
    "DoseResult",
    "dose_response",
    "dose_slopes",
]

DEFAULT_ALPHAS: tuple[float, ...] = (-16.8, -8.4, 0.0, 8.4, 16.8)
"""Percent of the residual norm: the paper's alpha in {-50, -25, 0, 25, 50} at Qwen3-8B L21."""

PAPER_RAW_ALPHAS: tuple[float, ...] = (-50.0, -25.0, 0.0, 25.0, 50.0)
"""The paper's Fig. 11 grid: the same raw alpha at every layer (``unit="raw"``; slopes per 25)."""


DOSE_GENERATION = GenerationConfig(max_new_tokens=128, temperature=0.7, top_p=0.9)
"""The paper's sampling for steered generations: T=0.7, top_p=0.9, thinking off (its ``seed`` is
replaced by each of :attr:`DoseGrid.seeds`)."""


@dataclass(frozen=True)
class DoseGrid:
    """The cells of a dose-response sweep: every ``layer x alpha x seed``.

    Attributes:
        layers: layers to steer, one at a time (default: the axis's layers).
        alphas: strengths in ``unit`` (default: the paper's grid in percent of the norm).
        unit: ``"percent"`` (default), ``"raw"`` or ``"sd"``; see
            :mod:`value_lens.steering.strength`.
        seeds: sampling seeds; each is one full pass over the prompts.
        positions: steering positions (the paper steers ``"all"``).
        calibration: scales for percent/sd (default: the axis's stored ones).
    """

    layers: int | Sequence[int] | None = None
    alphas: Sequence[float] = DEFAULT_ALPHAS
    unit: Unit = "percent"
    seeds: Sequence[int] = (0,)
    positions: str = "all"
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(f"unknown strength unit {self.unit!r}; use one of {UNITS}")
        if not list(self.alphas) or not list(self.seeds):
            raise InputError("alphas and seeds must each be non-empty")


@dataclass(frozen=True)
class DoseResult:
    """``frame``: one row per prompt x cell; ``slopes``: :func:`dose_slopes` of it;
    ``settings``: what the grid ran with (model, unit, positions, generation settings,
    ``enable_thinking``, the log's configuration fingerprint)."""

    frame: pd.DataFrame
    slopes: pd.DataFrame
    calibration: Calibration | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def summary(self, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
        """Mean of each metric per layer and alpha (degenerate outputs excluded)."""
        ok = self.frame[~self.frame["degenerate"]]
        cols = [m for m in metrics if m in ok]
        return ok.groupby(["layer", "alpha"])[cols].mean()


def _prompt_items(prompts: Any) -> list[dict[str, Any]]:
    if isinstance(prompts, (str, Mapping)) or not isinstance(prompts, Sequence) or not prompts:
        raise InputError(
            "prompts must be a non-empty list of str, message lists, or dicts with a 'prompt' key"
        )
    items = []
    for i, p in enumerate(prompts):
        if isinstance(p, Mapping) and "prompt" in p:
            items.append({"id": str(p.get("id", i)), "kind": str(p.get("kind", "")), **p})
        else:
            items.append({"id": str(i), "kind": "", "prompt": p})
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        raise InputError("prompt ids must be unique")
    return items


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dose_response(
    model: GenerativeModel,
    axis: Any,
    prompts: Any,
    *,
    grid: DoseGrid = DoseGrid(),
    gen: GenerationConfig = DOSE_GENERATION,
    log: Any = None,
    keep_text: bool = True,
    progress: bool = True,
) -> DoseResult:
    """Sweep steering strength x layer x seed over ``prompts`` and score every output.

    Args:
        model: a TransformerBridge.
        axis: the ValueAxis (its ``layers`` are the default layers).
        prompts: a list of str / message lists, or dicts ``{"prompt", "id"?, "kind"?}``;
            a prompt with a kind other than ``"yesno"`` gets no yes-rate (NaN).
        grid: the cells (:class:`DoseGrid`: layers, alphas, unit, seeds, positions,
            calibration).
        gen: the generation settings (:class:`~value_lens.core.generate.GenerationConfig`;
            default :data:`DOSE_GENERATION`, the paper's T=0.7, top_p=0.9, thinking off); each
            cell runs with its grid seed in place of ``gen.seed``. Every cell, ``alpha = 0``
            included, generates exactly as :func:`value_lens.core.generate.generate` with ``gen``.
        log: a JSONL path; finished cells are appended and skipped on rerun.
        keep_text: keep the generated text in the frame and the log.
        progress: show a progress bar over cells.

    Returns:
        A :class:`DoseResult`; ``frame`` columns: layer, alpha, unit, raw_alpha, seed,
        prompt_id, kind, the :data:`value_lens.analysis.text_metrics.METRICS` columns, degenerate,
        hit_limit, (text).

    >>> import torch
    >>> from value_lens.fitting.axis import ValueAxis
    >>> from value_lens.testing import tiny_qwen3
    >>> m = tiny_qwen3()
    >>> ax = ValueAxis(torch.randn(2, 64), model_id=m.cfg.model_name)
    >>> r = dose_response(m, ax, ["hi", "yo"], grid=DoseGrid(layers=1, alphas=[-4, 0, 4],
    ...                   unit="raw"), gen=DOSE_GENERATION.with_overrides(max_new_tokens=4),
    ...                   progress=False)
    >>> r.frame.shape[0], sorted(set(r.slopes["layer"].tolist()))
    (6, [1])
    """
    unit, positions, calibration = grid.unit, grid.positions, grid.calibration
    layers, alphas, seeds = grid.layers, grid.alphas, grid.seeds
    items = _prompt_items(prompts)
    if layers is None:
        layers = list(getattr(axis, "layers", ()) or range(n_layers(model)))
    layer_list = [layers] if isinstance(layers, int) else list(layers)
    alpha_list = sorted({float(a) for a in alphas})
    seed_list = [int(s) for s in seeds]
    if not alpha_list or not seed_list or not layer_list:
        raise InputError("alphas, seeds and layers must each be non-empty")
    # validate every steering (alpha finite, calibration present, layer in range) before work
    raw = {
        (layer, a): raw_alpha(axis, layer, a, unit=unit, calibration=calibration)
        for layer in layer_list
        for a in alpha_list
    }
    for layer in layer_list:
        steer(model, axis, layers=layer, alpha=1.0, positions=positions)
    texts = format_prompts(
        model,
        [it["prompt"] for it in items],
        enable_thinking=gen.enable_thinking,
        system=gen.system,
    )
    cfg = {
        "model": model_id(model),
        "axis": _fingerprint(getattr(axis, "directions", axis).tolist()),
        "prompts": _fingerprint(texts),
        "unit": unit,
        "positions": positions,
        "gen": {k: v for k, v in gen.to_dict().items() if k not in ("seed", "system")},
        "enable_thinking": gen.enable_thinking,
        "cal": calibration.to_dict() if calibration is not None else None,
    }
    fp = _fingerprint(cfg)
    jl = JsonlLog(log, key="key") if log is not None else None
    done: dict[str, dict[str, Any]] = {}
    if jl is not None:
        for rec in jl:
            if rec.get("config") != fp:
                raise InputError(
                    f"the log {jl.path} was written by a different sweep configuration; "
                    "use a new log path (or delete it) to start over"
                )
            done[rec["key"]] = rec
    cells: list[tuple[int | None, float, int]] = [
        (None, 0.0, s) for s in seed_list if 0.0 in alpha_list
    ]
    cells += [
        (layer, a, s) for layer in layer_list for a in alpha_list if a != 0 for s in seed_list
    ]
    it_cells: Any = cells
    if progress:
        from tqdm.auto import tqdm

        it_cells = tqdm(cells, desc="dose-response")
    for layer, a, seed in it_cells:
        key = f"{'base' if layer is None else layer}|{a:g}|{seed}"
        if key in done:
            continue
        t0 = time.perf_counter()
        st = (
            None
            if layer is None
            else steer(
                model,
                axis,
                layers=layer,
                alpha=a,
                unit=unit,
                calibration=calibration,
                positions=positions,
            )
        )
        # texts are already rendered (template, system): generate them as raw prompts
        gens = generate(model, texts, gen.with_overrides(seed=seed, system=None), steer=st)
        rows = []
        for item, g in zip(items, gens, strict=True):
            row = {"prompt_id": item["id"], "kind": item["kind"], "hit_limit": g.hit_limit}
            row.update(text_metrics(g.text, g.output_ids.tolist()))
            if item["kind"] and item["kind"] != "yesno":
                row["yes"] = math.nan  # a yes-rate only means something for yes/no prompts
            if keep_text:
                row["text"] = g.text
            rows.append(row)
        rec = {
            "key": key,
            "config": fp,
            "layer": layer,
            "alpha": a,
            "seed": seed,
            "rows": rows,
            "seconds": time.perf_counter() - t0,
            "new_tokens": int(sum(g.n_tokens for g in gens)),
        }
        done[key] = rec
        if jl is not None:
            jl.append(rec)
    frame = _frame(done, layer_list, alpha_list, seed_list, unit, raw)
    per = 25.0 if unit == "raw" else 1.0
    settings = {**cfg, "fingerprint": fp, "slopes_per": per}
    return DoseResult(frame, dose_slopes(frame, per=per), calibration, settings)


def _frame(
    done: Mapping[str, Mapping[str, Any]],
    layers: list[int],
    alphas: list[float],
    seeds: list[int],
    unit: str,
    raw: Mapping[tuple[int, float], float],
) -> pd.DataFrame:
    out = []
    for layer in layers:
        for a in alphas:
            for s in seeds:
                rec = done[f"{'base' if a == 0 else layer}|{a:g}|{s}"]
                for row in rec["rows"]:
                    out.append(
                        {
                            "layer": layer,
                            "alpha": a,
                            "unit": unit,
                            "raw_alpha": raw[(layer, a)],
                            "seed": s,
                            **row,
                        }
                    )
    frame = pd.DataFrame(out)
    first = ["layer", "alpha", "unit", "raw_alpha", "seed", "prompt_id", "kind", *METRICS]
    cols = [c for c in first if c in frame] + sorted(c for c in frame if c not in first)
    return frame[cols]


def dose_slopes(
    frame: pd.DataFrame,
    metrics: Sequence[str] = METRICS,
    *,
    per: float = 1.0,
    max_degenerate: float = 0.5,
    min_strengths: int = 3,
) -> pd.DataFrame:
    """OLS slope of each metric's per-alpha mean against alpha, per layer (paper Fig. 11).

    Degenerate outputs are excluded; an alpha whose outputs are more than ``max_degenerate``
    degenerate is dropped, and a slope needs ``min_strengths`` surviving alphas (else NaN).
    Each surviving alpha's mean counts once. Slopes are per ``per`` units of alpha.

    >>> f = pd.DataFrame({"layer": 0, "alpha": [-1.0, 0.0, 1.0] * 2, "degenerate": False,
    ...                   "n_tokens": [12, 10, 8, 12, 10, 8]})
    >>> dose_slopes(f, ["n_tokens"])[["layer", "metric", "slope", "n_strengths"]].values.tolist()
    [[0, 'n_tokens', -2.0, 3]]
    """
    rows = []
    for layer, g in frame.groupby("layer"):
        frac_bad = g.groupby("alpha")["degenerate"].mean()
        keep = frac_bad[frac_bad <= max_degenerate].index
        ok = g[g["alpha"].isin(keep) & ~g["degenerate"]]
        for metric in metrics:
            if metric not in g:
                continue
            means = ok.groupby("alpha")[metric].apply(
                lambda s: float(pd.to_numeric(s, errors="coerce").astype(float).mean())
            )
            means = means[np.isfinite(means.to_numpy(dtype=float))]
            slope = intercept = math.nan
            if len(means) >= max(min_strengths, 2):
                x = means.index.to_numpy(dtype=float)
                y = means.to_numpy(dtype=float)
                dx = x - x.mean()
                if float(dx @ dx) > 0:
                    slope = float(dx @ (y - y.mean()) / (dx @ dx))
                    intercept = float(y.mean() - slope * x.mean())
                    slope *= per
            rows.append(
                {
                    "layer": int(layer),
                    "metric": metric,
                    "slope": float(slope),
                    "per": per,
                    "intercept": float(intercept),
                    "n_strengths": int(len(means)),
                }
            )
    return pd.DataFrame(rows)
