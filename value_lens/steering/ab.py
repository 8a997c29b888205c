"""An A/B evaluation of steering in the style of CAA (Rimsky et al., arXiv 2312.06681).

Each item (:mod:`value_lens.steering.ab_items`) is a chat ending in a two-choice question. The
assistant's reply is prefilled with ``"("`` so that the next token is the letter, and one forward
pass gives the probabilities of ``A`` and ``B`` there:

    p(match) = p(letter_match) / (p(A) + p(B))

It reads logits, not samples, so it is low-noise even on a small model. :func:`ab_probs` scores a
set of items once (unsteered, or under one steering); :func:`ab_eval` runs every cell of an
:class:`ABGrid` (mode x layer x strength, one layer steered at a time), asking every item in both
letter orders by default, and returns the per-item table, the mean ``p(match)`` per cell with its
change from the unsteered model (a paired t interval over items), the shift of the letter
preference (``a_shift``), and each item's reliability across strengths
(:mod:`value_lens.steering.reliability`). A small model often prefers one letter whatever the
content: asked in one order only, an item's ``p(match)`` then moves with that preference, so half
the items look anti-steerable by construction; averaging the two orders cancels it per item. ``letter_mass`` (``p(A) + p(B)``) says how well the
format holds; ``mean_abs_push`` is the mean change of the steered tokens' projection, so modes can
be compared at equal size.

Example:
    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.steering.ab_items import ab_items
    >>> m = tiny_qwen3()
    >>> t = ab_probs(m, ab_items(["verbosity"], n=2))
    >>> bool(((t["p_match"] >= 0) & (t["p_match"] <= 1)).all()), len(t)
    (True, 2)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.analysis.intervals import t_quantile
from value_lens.core.model import model_device, to_token_ids
from value_lens.core.prompts import format_prompts
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError
from value_lens.steering._resolve import AxisLike
from value_lens.steering.ab_items import ABItem
from value_lens.steering.modes import MODES
from value_lens.steering.operator import ModeSpec, Operator
from value_lens.steering.reliability import prompt_curves, reliability
from value_lens.steering.steer import Steering, steer
from value_lens.steering.strength import Calibration, Unit

__all__ = ["ABGrid", "ABResult", "ab_eval", "ab_probs", "letter_ids"]

PREFILL = "("


def letter_ids(model: HookedModel) -> tuple[int, int]:
    """The token ids of ``A`` and ``B`` (each must be a single token)."""
    out = []
    for letter in "AB":
        ids = model.tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise InputError(f"the tokenizer splits {letter!r} into {ids}; A/B needs one token")
        out.append(int(ids[0]))
    return out[0], out[1]


def _tokens(model: HookedModel, items: Sequence[ABItem]) -> list[torch.Tensor]:
    texts = format_prompts(model, [list(it.messages) for it in items], enable_thinking=False)
    return [to_token_ids(model, t + PREFILL) for t in texts]


def ab_probs(
    model: HookedModel,
    items: Sequence[ABItem],
    *,
    steering: Steering | None = None,
    batch_size: int = 8,
) -> pd.DataFrame:
    """One row per item: ``p_a``, ``p_b``, ``p_match`` and ``letter_mass`` at the answer token
    (and ``moved`` / ``mean_abs_push`` under ``steering``). Rows are right-padded, so the
    causal mask keeps padding out of every real position."""
    if not items:
        raise InputError("ab_probs needs at least one item")
    a_id, b_id = letter_ids(model)
    ids, dev = _tokens(model, items), model_device(model)
    rows: list[dict[str, Any]] = []
    if steering is not None:
        steering.clear()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        lens = torch.tensor([x.numel() for x in chunk])
        tokens = torch.zeros(len(chunk), int(lens.max()), dtype=torch.long)
        for j, x in enumerate(chunk):
            tokens[j, : x.numel()] = x
        ctx = (
            steering.activate(prompt_lens=lens, pads=torch.zeros_like(lens))
            if steering is not None
            else contextlib.nullcontext()
        )
        with torch.no_grad(), ctx:
            logits = model(tokens.to(dev))
        last = logits[torch.arange(len(chunk)), (lens - 1).to(logits.device)].double()
        p = torch.softmax(last, dim=-1)[:, [a_id, b_id]].cpu()
        for j, it in enumerate(items[start : start + batch_size]):
            pa, pb = float(p[j, 0]), float(p[j, 1])
            mass = pa + pb
            pm = (pa if it.match == "A" else pb) / mass if mass > 0 else float("nan")
            rows.append(
                {
                    "item_id": it.id,
                    "behaviour": it.behaviour,
                    "match": it.match,
                    "p_a": pa,
                    "p_b": pb,
                    "p_match": pm,
                    "a_share": pa / mass if mass > 0 else float("nan"),
                    "letter_mass": mass,
                }
            )
    frame = pd.DataFrame(rows)
    if steering is not None:
        rep = steering.report().groupby("row")[["moved", "push_abs"]].sum()
        frame["moved"] = rep["moved"].to_numpy()
        frame["mean_abs_push"] = (rep["push_abs"] / rep["moved"].where(rep["moved"] > 0)).to_numpy()
    return frame


@dataclass(frozen=True)
class ABGrid:
    """The cells of an A/B evaluation: every mode x layer x strength, one layer at a time.

    Attributes:
        layers: the layers to steer (each cell steers one).
        strengths: each mode's primary strength in ``unit`` (degrees for ``rotate``).
        modes: registered mode names or operator objects whose primary strength is set.
        unit: the strength unit (a ``rotate`` strength is always in degrees).
        positions: the steered positions (default all, as CAA steers).
        calibration: scales for percent/sd units (default: the axis's stored ones).
        batch_size: items per forward pass.
        both_orders: ask every item with its letters as built and exchanged, and average.
    """

    layers: int | Sequence[int]
    strengths: Sequence[float] = (-1.0, 0.0, 1.0)
    modes: Sequence[ModeSpec] = ("add",)
    unit: Unit = "raw"
    positions: str = "all"
    calibration: Calibration | None = None
    batch_size: int = 8
    both_orders: bool = True

    def operators(self) -> list[Operator]:
        """One prototype operator per mode (each cell sets its primary strength)."""
        ops = [MODES.build(m) for m in self.modes]
        for op in ops:
            if op.primary is None:
                raise InputError(f"mode {op.name!r} takes no strength; an A/B grid varies one")
        return ops


@dataclass(frozen=True)
class ABResult:
    """``frame``: one row per item x letter order x cell (``strength`` NaN and ``mode`` "none"
    for the unsteered model); ``summary``: per cell, means over items (each averaged over its
    orders) of ``p_match``, ``a_share`` (``p(A) / (p(A) + p(B))``), ``letter_mass`` and
    ``mean_abs_push``, and the paired changes from unsteered with t intervals over items
    (``delta`` of p(match), ``a_shift`` of the letter share); ``per_item`` and ``reliability``:
    each item's curve over strengths and their summary per (behaviour, mode, layer)."""

    frame: pd.DataFrame
    summary: pd.DataFrame
    per_item: pd.DataFrame = field(default_factory=pd.DataFrame)
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)


def _cell(
    model: HookedModel,
    axis: AxisLike,
    items: Sequence[ABItem],
    grid: ABGrid,
    op: Operator,
    layer: int,
    a: float,
) -> pd.DataFrame:
    st = steer(
        model,
        axis,
        layers=layer,
        mode=op.with_strength(a),
        unit=grid.unit,
        calibration=grid.calibration,
        positions=grid.positions,
    )
    t = ab_probs(model, items, steering=st, batch_size=grid.batch_size)
    return t.assign(mode=op.name, layer=layer, strength=a, raw_strength=st.raw_alphas[0])


_CELL = ["behaviour", "mode", "layer", "strength"]
_MEAN = ["p_match", "a_share", "letter_mass", "mean_abs_push"]


def _per_item(frame: pd.DataFrame) -> pd.DataFrame:
    """Each item's values averaged over the letter orders it was asked in."""
    return frame.groupby(["item_id", *_CELL], sort=True, dropna=False)[_MEAN].mean().reset_index()


def _summary(frame: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Per cell: means over items and the paired change of p(match) from unsteered."""
    ref = base.set_index("item_id")
    rows = []
    for key, g in frame.groupby(_CELL, sort=True):
        out = dict(zip(_CELL, key, strict=True)) | {"n": int(len(g))}
        out |= {c: float(g[c].mean()) for c in _MEAN}
        for col, name in (("p_match", "delta"), ("a_share", "a_shift")):
            d = (g[col].to_numpy() - ref.loc[g["item_id"], col].to_numpy()).astype(float)
            d = d[np.isfinite(d)]
            half = (
                t_quantile(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
                if d.size > 1
                else float("nan")
            )
            mean = float(d.mean()) if d.size else float("nan")
            out |= {name: mean, f"{name}_lo": mean - half, f"{name}_hi": mean + half}
        rows.append(out)
    return pd.DataFrame(rows)


def ab_eval(model: HookedModel, axis: AxisLike, items: Sequence[ABItem], grid: ABGrid) -> ABResult:
    """``p(match)`` of every item in every cell of ``grid`` (see the module docstring).

    With ``grid.both_orders`` (default) every item is asked as built and with its letters
    exchanged, and its ``p(match)`` is the mean of the two, so a letter preference, and any shift
    of it under steering, cancels within each item; ``a_shift`` in the summary is that letter
    shift (the change of ``p(A) / (p(A) + p(B))``). A strength at which a mode is the identity
    (0 for ``add``, ``ablate`` and ``rotate``) is not run again: its rows are the unsteered
    model's.

    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.steering.ab_items import ab_items
    >>> m = tiny_qwen3()
    >>> res = ab_eval(m, torch.ones(64), ab_items(["confidence"], n=4),
    ...               ABGrid(layers=1, strengths=[0.0, 2.0], modes=["add", "rotate"]))
    >>> sorted(set(res.summary["mode"])), int(res.summary["n"].iloc[0])
    (['add', 'rotate'], 4)
    """
    if not items or len({it.id for it in items}) != len(items):
        raise InputError("ab_eval needs a non-empty list of items with unique ids")
    layers = [grid.layers] if isinstance(grid.layers, int) else list(grid.layers)
    strengths = sorted({float(a) for a in grid.strengths})
    asked = list(items) + ([it.swapped() for it in items] if grid.both_orders else [])
    base = ab_probs(model, asked, batch_size=grid.batch_size).assign(moved=0, mean_abs_push=0.0)
    parts, curves = [], []
    for op in grid.operators():
        for layer in layers:
            for a in strengths:
                cell = (
                    base.assign(mode=op.name, layer=layer, strength=a, raw_strength=a)
                    if a == op.neutral
                    else _cell(model, axis, asked, grid, op, layer, a)
                )
                parts.append(cell)
        mine = _per_item(pd.concat(parts[-len(layers) * len(strengths) :], ignore_index=True))
        curves.append(
            prompt_curves(
                mine,
                ["p_match"],
                x="strength",
                prompt="item_id",
                by=("behaviour", "mode", "layer"),
                exclude=None,
                reference=op.neutral,
            )
        )
    none = {"mode": "none", "layer": -1, "strength": float("nan"), "raw_strength": float("nan")}
    frame = pd.concat([base.assign(**none), *parts], ignore_index=True)
    base_items = _per_item(base.assign(**none))
    per_item = pd.concat(curves, ignore_index=True)
    return ABResult(
        frame,
        _summary(_per_item(pd.concat(parts)), base_items),
        per_item,
        reliability(per_item, by=("behaviour", "mode", "layer")),
    )
