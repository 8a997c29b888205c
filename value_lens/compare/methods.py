"""Which direction detects and which steers: every fitting method on the same data, one table.

For each method, at its best held-out layer (the highest ``token_auroc_mean`` of its own sweep):

* **detection**: the held-out token AUROC with its between- and within-turn parts, each with
  the sweep's leave-one-criterion-out interval (the direction refitted without the criterion);
* **position**: the difference in discontinuities ``rd_value`` (the jump of the readout at the
  real cut minus the jump at the placebo turns' cut) with its interval, the matched and placebo
  AUROCs, and the 95th percentile of sign-aligned random directions;
* **geometry**: the cosine of its steering direction with the mean-difference axis's at the
  same layer;
* **steering** at equal strength: every method's unit direction is added at ``alphas`` percent
  of the layer's mean residual norm (the same norm for every method, recorded as
  ``steer_norm``); the dose-response slope of each behaviour metric (per 1% of the norm) with a
  t interval over prompts (:mod:`value_lens.steering.reliability`).

All sweeps come from one statistics pass and one projection pass
(:func:`~value_lens.analysis.sweep.sweep_each_method`); the axes are fitted on every criterion
from those statistics.

Example:
    >>> MethodTableConfig(methods=("mean_diff", "lda")).methods
    ('mean_diff', 'lda')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from value_lens.analysis.sweep import SweepConfig, SweepResult, sweep_each_method
from value_lens.core.generate import GenerationConfig
from value_lens.core.protocols import GenerativeModel
from value_lens.data.tokens import PLACEBO_AFTER, PLACEBO_BEFORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.methods import FITTERS
from value_lens.steering.dose import DoseGrid, DoseResult, dose_response
from value_lens.steering.steer import raw_alpha

__all__ = ["DETECT_COLUMNS", "MethodTable", "MethodTableConfig", "method_rows", "method_table"]

DETECT_COLUMNS: tuple[str, ...] = (
    "token_auroc_mean",
    "token_auroc_between",
    "token_auroc_within",
    "rd_value",
    "matched_auroc",
    "placebo_auroc",
)
"""Sweep columns copied into the table, each with its ``_ci_lo``/``_ci_hi`` where it has one."""


@dataclass(frozen=True)
class MethodTableConfig:
    """What the method table runs.

    Attributes:
        methods: the fitting methods (default every registered one; ``did`` only on data with
            placebo turns).
        sweep: the sweep's settings (its ``method`` is replaced by each method).
        alphas: steering strengths in percent of the layer's mean residual norm (``()``: no
            steering columns).
        metrics: behaviour metrics of :func:`~value_lens.analysis.text_metrics.text_metrics`
            whose slopes are reported (the paper's: self-correction and length).
        gen: generation settings of the steered samples.
        seeds: sampling seeds per cell.
    """

    methods: Sequence[str] | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    alphas: Sequence[float] = (-8.4, 0.0, 8.4)
    metrics: Sequence[str] = ("n_backtrack", "n_tokens")
    gen: GenerationConfig = GenerationConfig(max_new_tokens=64, temperature=0.7, top_p=0.9)
    seeds: Sequence[int] = (0,)

    def __post_init__(self) -> None:
        if self.methods is not None:
            object.__setattr__(self, "methods", tuple(self.methods))
            unknown = [m for m in self.methods if m not in FITTERS]
            if unknown:
                raise InputError(
                    f"unknown fitting methods {unknown}; registered: {sorted(FITTERS)}"
                )
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        if self.alphas and (0.0 not in self.alphas or len(set(self.alphas)) < 2):
            raise InputError(
                f"alphas {self.alphas} need 0 (the unsteered cell) and another strength for a slope"
            )

    def resolved(self, data: LabelledTokens) -> tuple[str, ...]:
        """The methods to run on ``data`` (``did`` dropped without placebo turns)."""
        if self.methods is not None:
            return tuple(self.methods)
        counts = data.label_counts()
        placebo = bool(counts.get(PLACEBO_BEFORE)) and bool(counts.get(PLACEBO_AFTER))
        return tuple(m for m in FITTERS if m != "did" or placebo)


@dataclass
class MethodTable:
    """``table``: one row per method (see the module docs); ``sweeps``, ``axes``, ``doses``: each
    method's sweep, axis (fitted on every criterion) and dose-response result."""

    table: pd.DataFrame
    sweeps: dict[str, SweepResult]
    axes: dict[str, ValueAxis]
    doses: dict[str, DoseResult]

    def summary(self) -> str:
        """The table as text, each number with its interval (:mod:`value_lens.viz.methods`)."""
        from value_lens.viz.methods import method_table_view

        return str(method_table_view(self.table).to_string(index=False))


def _cosine(a: ValueAxis, b: ValueAxis, layer: int) -> float:
    u, v = a.direction(layer).double(), b.direction(layer).double()
    return float((u @ v) / (u.norm() * v.norm()).clamp_min(1e-30))


def method_rows(
    sweeps: dict[str, SweepResult],
    axes: dict[str, ValueAxis],
    doses: dict[str, DoseResult] | None = None,
    *,
    alphas: Sequence[float] = (),
    metrics: Sequence[str] = (),
) -> pd.DataFrame:
    """The table from finished sweeps, axes and dose results (one row per method, in order)."""
    doses = doses or {}
    ref = axes.get("mean_diff")
    top = max((abs(a) for a in alphas), default=0.0)
    rows = []
    for name, sw in sweeps.items():
        layer = sw.best_layer
        r = sw.table.set_index("layer").loc[layer]
        row: dict[str, Any] = {"method": name, "layer": layer}
        for col in DETECT_COLUMNS:
            row[col] = float(r.get(col, math.nan))
            stem = col.removesuffix("_mean")
            if f"{stem}_ci_lo" in r:
                row[f"{stem}_ci_lo"], row[f"{stem}_ci_hi"] = r[f"{stem}_ci_lo"], r[f"{stem}_ci_hi"]
        row["random_auroc_p95"] = float(r.get("random_auroc_p95", math.nan))
        row["cos_mean_diff"] = math.nan if ref is None else _cosine(axes[name], ref, layer)
        row["steer_norm"] = (
            abs(raw_alpha(axes[name], layer, top, unit="percent")) if top else math.nan
        )
        _slopes(row, doses.get(name), metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def _slopes(row: dict[str, Any], dose: DoseResult | None, metrics: Sequence[str]) -> None:
    rel = None if dose is None else dose.reliability
    for m in metrics:
        hit = pd.DataFrame() if rel is None or rel.empty else rel[rel["metric"] == m]
        for key, col in (
            ("slope", "mean_slope"),
            ("slope_lo", "slope_lo"),
            ("slope_hi", "slope_hi"),
        ):
            row[f"{m}_{key}"] = float(hit[col].iloc[0]) if len(hit) else math.nan


def method_table(
    model: GenerativeModel,
    data: LabelledTokens,
    prompts: Sequence[Any] = (),
    config: MethodTableConfig | None = None,
    *,
    layers: int | list[int] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> MethodTable:
    """Sweep, fit and steer every method on ``data`` (see the module docs).

    Args:
        model: a TransformerBridge.
        data: BEFORE/AFTER-labelled sequences (with placebo turns for ``rd_value``).
        prompts: the steering prompts (as :func:`~value_lens.steering.dose.dose_response`
            takes them); empty: no steering columns.
        config: :class:`MethodTableConfig`.
        layers / batch_size / progress: as :func:`~value_lens.analysis.sweep.layer_sweep`.
    """
    cfg = config or MethodTableConfig()
    methods = cfg.resolved(data)
    sweeps, stats = sweep_each_method(
        model, data, methods, cfg.sweep, layers=layers, batch_size=batch_size, progress=progress
    )
    if stats is None:
        raise InputError("the sweep kept no statistics to fit the axes from")
    axes = {m: ValueAxis.fit(stats, method=m) for m in methods}
    doses: dict[str, DoseResult] = {}
    if prompts and cfg.alphas:
        for m in methods:
            grid = DoseGrid(
                layers=[sweeps[m].best_layer],
                alphas=cfg.alphas,
                unit="percent",
                seeds=cfg.seeds,
            )
            doses[m] = dose_response(
                model, axes[m], list(prompts), grid=grid, gen=cfg.gen, progress=progress
            )
    table = method_rows(
        sweeps,
        axes,
        doses,
        alphas=cfg.alphas if doses else (),
        metrics=cfg.metrics if doses else (),
    )
    return MethodTable(table, sweeps, axes, doses)
