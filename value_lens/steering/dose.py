"""Dose-response sweeps: generate under a grid of alpha x layer x seed and measure the outputs.

:func:`dose_response` runs every cell ``(layer, alpha, seed)`` over a prompt set with
:func:`value_lens.core.generate.generate` and :func:`value_lens.steering.steer.steer` in any
registered mode (the identity strength, ``alpha = 0`` for ``add``, is run once per seed and
shared by all layers), scores each output with :func:`text_metrics`, and returns a tidy
DataFrame (one row per prompt x cell), :func:`dose_slopes`, the OLS slope of each metric against
alpha per layer (the paper's Fig. 11), and the reliability of each prompt's curve
(:mod:`value_lens.steering.reliability`: per-prompt slopes, the anti-steerable fraction,
Spearman monotonicity, ``delta_at_max``).

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

import pandas as pd

from value_lens.analysis.text_metrics import METRICS, text_metrics
from value_lens.core.generate import GenerationConfig, format_prompts, generate
from value_lens.core.io import JsonlLog
from value_lens.core.model import model_id, n_layers
from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.steering._resolve import at_layers
from value_lens.steering.modes import MODES
from value_lens.steering.operator import ModeSpec, Operator
from value_lens.steering.reliability import dose_slopes, prompt_curves, reliability
from value_lens.steering.steer import Steering, steer
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
        alphas: strengths in ``unit`` (default: the paper's grid in percent of the norm); each
            sets the mode's primary strength (the push for ``add``, the floor for ``cap``, the
            angle in degrees for ``rotate``).
        unit: ``"percent"`` (default), ``"raw"`` or ``"sd"``; see
            :mod:`value_lens.steering.strength` (a ``rotate`` grid takes ``"raw"``: degrees).
        seeds: sampling seeds; each is one full pass over the prompts.
        positions: steering positions (the paper steers ``"all"``).
        calibration: scales for percent/sd (default: the axis's stored ones).
        mode: any registered mode (:data:`~value_lens.steering.modes.MODES`) or an operator
            object whose primary strength the grid sets; the strength at which it is the
            identity (0 for ``add`` and ``rotate``) runs once, unsteered, shared by all layers.
        params: the mode's other parameters, e.g. ``{"ceiling": 0.0}`` for a ``cap`` grid over
            ceilings.
    """

    layers: int | Sequence[int] | None = None
    alphas: Sequence[float] = DEFAULT_ALPHAS
    unit: Unit = "percent"
    seeds: Sequence[int] = (0,)
    positions: str = "all"
    calibration: Calibration | None = None
    mode: ModeSpec = "add"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(f"unknown strength unit {self.unit!r}; use one of {UNITS}")
        if not list(self.alphas) or not list(self.seeds):
            raise InputError("alphas and seeds must each be non-empty")
        if self.operator().primary is None:
            raise InputError(
                f"mode {self.operator().name!r} takes no strength, so a grid over alphas has "
                "nothing to vary; steer it with vl.steer(...) instead"
            )

    def operator(self) -> Operator:
        """The grid's prototype operator (each cell sets its primary strength)."""
        return MODES.build(self.mode, None, self.params)


@dataclass(frozen=True)
class DoseResult:
    """``frame``: one row per prompt x cell; ``slopes``: :func:`dose_slopes` of it;
    ``settings``: what the grid ran with (model, unit, positions, generation settings,
    ``enable_thinking``, the log's configuration fingerprint); ``per_prompt`` and
    ``reliability``: each prompt's slope, Spearman and ``delta_at_max`` per layer and metric,
    and their summary with the anti-steerable fraction
    (:mod:`value_lens.steering.reliability`)."""

    frame: pd.DataFrame
    slopes: pd.DataFrame
    calibration: Calibration | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    per_prompt: pd.DataFrame = field(default_factory=pd.DataFrame)
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)

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


def _checked_cells(
    model: GenerativeModel, axis: Any, grid: DoseGrid, layers: list[int], alphas: list[float]
) -> tuple[Operator, dict[tuple[int, float], float]]:
    """The grid's prototype operator and every cell's raw strength, all checked before work."""
    proto = grid.operator()
    raw = {
        (layer, a): _steering(model, axis, grid, proto, layer, a).raw_alphas[0]
        for layer in layers
        for a in alphas
    }
    return proto, raw


def _steering(
    model: GenerativeModel, axis: Any, grid: DoseGrid, proto: Operator, layer: int, a: float
) -> Steering:
    return steer(
        model,
        axis,
        layers=layer,
        mode=proto.with_strength(a),
        unit=grid.unit,
        calibration=grid.calibration,
        positions=grid.positions,
    )


def _open_log(log: Any, fp: str) -> tuple[JsonlLog | None, dict[str, dict[str, Any]]]:
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
    return jl, done


def _cell_rows(
    items: list[dict[str, Any]], gens: list[Any], keep_text: bool
) -> list[dict[str, Any]]:
    rows = []
    for item, g in zip(items, gens, strict=True):
        row = {"prompt_id": item["id"], "kind": item["kind"], "hit_limit": g.hit_limit}
        row.update(text_metrics(g.text, g.output_ids.tolist()))
        if item["kind"] and item["kind"] != "yesno":
            row["yes"] = math.nan  # a yes-rate only means something for yes/no prompts
        if keep_text:
            row["text"] = g.text
        rows.append(row)
    return rows


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
            calibration, mode).
        gen: the generation settings (:class:`~value_lens.core.generate.GenerationConfig`;
            default :data:`DOSE_GENERATION`, the paper's T=0.7, top_p=0.9, thinking off); each
            cell runs with its grid seed in place of ``gen.seed``. Every cell, the unsteered one
            included, generates exactly as :func:`value_lens.core.generate.generate` with ``gen``.
        log: a JSONL path; finished cells are appended and skipped on rerun.
        keep_text: keep the generated text in the frame and the log.
        progress: show a progress bar over cells.

    Returns:
        A :class:`DoseResult`; ``frame`` columns: layer, alpha, unit, raw_alpha, seed,
        prompt_id, kind, the :data:`value_lens.analysis.text_metrics.METRICS` columns, degenerate,
        hit_limit, mode, (text); ``per_prompt`` and ``reliability`` as in
        :mod:`value_lens.steering.reliability`.

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
    items = _prompt_items(prompts)
    layers = grid.layers
    if layers is None:
        layers = list(getattr(axis, "layers", ()) or range(n_layers(model)))
    layer_list = [layers] if isinstance(layers, int) else list(layers)
    alpha_list = sorted({float(a) for a in grid.alphas})
    seed_list = [int(s) for s in grid.seeds]
    if not alpha_list or not seed_list or not layer_list:
        raise InputError("alphas, seeds and layers must each be non-empty")
    # the axis converted once for the whole grid (every cell picks its layer from it)
    at = at_layers(axis, layer_list, model=model, calibration=grid.calibration)
    proto, raw = _checked_cells(model, at, grid, layer_list, alpha_list)
    texts = format_prompts(
        model,
        [it["prompt"] for it in items],
        enable_thinking=gen.enable_thinking,
        system=gen.system,
    )
    cfg = _config(model, axis, texts, grid, gen, proto)
    fp = _fingerprint(cfg)
    jl, done = _open_log(log, fp)
    base = proto.neutral
    cells: list[tuple[int | None, float, int]] = [
        (None, a, s) for a in alpha_list if a == base for s in seed_list
    ]
    cells += [
        (layer, a, s) for layer in layer_list for a in alpha_list if a != base for s in seed_list
    ]
    it_cells: Any = cells
    if progress:
        it_cells = progress_bar(cells, desc="dose-response", unit="cell")
    for layer, a, seed in it_cells:
        key = f"{'base' if layer is None else layer}|{a:g}|{seed}"
        if key in done:
            continue
        t0 = time.perf_counter()
        st = None if layer is None else _steering(model, at, grid, proto, layer, a)
        # texts are already rendered (template, system): generate them as raw prompts
        gens = generate(model, texts, gen.with_overrides(seed=seed, system=None), steer=st)
        rec = {
            "key": key,
            "config": fp,
            "layer": layer,
            "alpha": a,
            "seed": seed,
            "rows": _cell_rows(items, gens, keep_text),
            "seconds": time.perf_counter() - t0,
            "new_tokens": int(sum(g.n_tokens for g in gens)),
        }
        done[key] = rec
        if jl is not None:
            jl.append(rec)
    frame = _frame(done, (layer_list, alpha_list, seed_list), grid.unit, raw, (proto.name, base))
    per = 25.0 if grid.unit == "raw" and proto.primary == "alpha" else 1.0
    settings = {**cfg, "fingerprint": fp, "slopes_per": per}
    pp = prompt_curves(frame, METRICS, per=per, reference=base)
    return DoseResult(
        frame, dose_slopes(frame, per=per), grid.calibration, settings, pp, reliability(pp)
    )


def _config(
    model: GenerativeModel,
    axis: Any,
    texts: list[str],
    grid: DoseGrid,
    gen: GenerationConfig,
    proto: Operator,
) -> dict[str, Any]:
    """What the log's fingerprint covers (a plain add grid keeps the older fingerprint)."""
    cfg = {
        "model": model_id(model),
        "axis": _fingerprint(getattr(axis, "directions", axis).tolist()),
        "prompts": _fingerprint(texts),
        "unit": grid.unit,
        "positions": grid.positions,
        "gen": {k: v for k, v in gen.to_dict().items() if k not in ("seed", "system")},
        "enable_thinking": gen.enable_thinking,
        "cal": grid.calibration.to_dict() if grid.calibration is not None else None,
    }
    if not (grid.mode == "add" and not grid.params):
        cfg["mode"] = proto.describe()
    return cfg


def _frame(
    done: Mapping[str, Mapping[str, Any]],
    grid: tuple[list[int], list[float], list[int]],
    unit: str,
    raw: Mapping[tuple[int, float], float],
    mode: tuple[str, float | None],
) -> pd.DataFrame:
    out = []
    name, base = mode
    layers, alphas, seeds = grid
    for layer in layers:
        for a in alphas:
            for s in seeds:
                rec = done[f"{'base' if a == base else layer}|{a:g}|{s}"]
                for row in rec["rows"]:
                    out.append(
                        {
                            "layer": layer,
                            "alpha": a,
                            "unit": unit,
                            "raw_alpha": raw[(layer, a)],
                            "seed": s,
                            **row,
                            "mode": name,
                        }
                    )
    frame = pd.DataFrame(out)
    first = ["layer", "alpha", "unit", "raw_alpha", "seed", "prompt_id", "kind", *METRICS]
    cols = [c for c in first if c in frame] + sorted(c for c in frame if c not in first)
    return frame[cols]
