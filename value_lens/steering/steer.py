"""Steering along the value axis: hook functions and a leak-proof, nestable context manager.

Two entry points:

* :func:`steering_hook` returns a ``(hook_name, fn)`` pair for TransformerLens
  ``model.hooks(fwd_hooks=[...])`` / ``run_with_hooks``.
* :func:`steer` returns a :class:`Steering`. Used as ``with steer(model, axis, ...):`` it
  installs its hooks and removes exactly those handles on exit, also after an exception;
  contexts nest. Passed as ``generate(model, prompts, steer=...)`` it is installed once per
  batch with that batch's prompt lengths and left padding, so ``"prompt"``, ``"generated"``
  and ``"from:k"`` are exact there.

What a hook does is its *mode*, an operator object (:mod:`value_lens.steering.operator`) looked
up by name in the registry :data:`~value_lens.steering.modes.MODES` or passed in directly. With
``u`` the direction (unit length unless ``normalize=False``) and ``p = h . u``: ``add``
``h + alpha * u`` (the paper's intervention); ``ablate`` ``h - fraction * p * u`` (all of ``p``
by default); ``clamp`` ``h + (alpha - p) * u``; ``cap`` ``h + max(0, floor - p) * u`` (and/or a
ceiling); ``rotate`` turns ``h`` by ``angle`` degrees toward ``u`` in the plane ``span(u, h)``.
``alpha`` is each mode's primary strength (the floor for ``cap``, the angle for ``rotate``, the
fraction for ``ablate``); strengths are
converted to raw units first (see :mod:`value_lens.steering.strength`). ``when=`` makes the
steering conditional per row (:mod:`value_lens.steering.condition`).

Each input is checked and converted once, at the door (:mod:`value_lens.steering._resolve`):
the axis becomes ``{layer: direction}`` plus a calibration, and each layer a
:class:`~value_lens.steering._hook.LayerSteer` with its hook name and its operator in raw
units. A :class:`Steering` holds only those; its hooks (:mod:`value_lens.steering._hook`) read
them, and record per activation how many tokens each layer moved (:meth:`Steering.report`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError
from value_lens.steering._hook import HookFn, LayerSteer, RunRecord, make_hook, stream
from value_lens.steering._resolve import (
    POINTS,
    AxisAtLayers,
    AxisLike,
    Point,
    at_layers,
    check_alpha,
    check_options,
    hook_name,
    raw_strength,
)
from value_lens.steering.condition import Condition, make_gate
from value_lens.steering.modes import MODES
from value_lens.steering.operator import ModeSpec, Operator, resolve_operator
from value_lens.steering.positions import Positions, PositionSpec, parse_positions
from value_lens.steering.strength import Calibration, Unit

__all__ = ["MODES", "POINTS", "Point", "Steering", "raw_alpha", "steer", "steering_hook"]

Alpha = float | Sequence[float] | Mapping[int, float]


def _unit_scale(op: Operator, at: AxisAtLayers, unit: Unit) -> Any:
    if op.strength_fields() and not op.takes_units() and unit != "raw":
        raise InputError(
            f"mode {op.name!r} takes its strength as is ({', '.join(op.strength_fields())}); "
            f"leave unit='raw' instead of {unit!r}"
        )
    return lambda layer, x: raw_strength(x, layer, unit=unit, calibration=at.calibration)


def layer_steers(
    at: AxisAtLayers, op: Operator, *, unit: Unit, point: Point
) -> tuple[LayerSteer, ...]:
    """One :class:`LayerSteer` per layer of ``at``: ``op`` resolved there in raw units."""
    layers = list(at.directions)
    raw = resolve_operator(op, layers, scale=_unit_scale(op, at, unit), n_layers=at.n_layers)
    given = resolve_operator(op, layers, scale=lambda _, x: check_alpha(x), n_layers=at.n_layers)
    key = op.primary

    def primary(o: Operator) -> float:
        value = None if key is None else getattr(o, key)
        return 0.0 if value is None else float(value)

    return tuple(
        LayerSteer(layer, hook_name(layer, point, at.n_layers), v, primary(g), primary(r), r)
        for (layer, v), g, r in zip(at.directions.items(), given, raw, strict=True)
    )


def raw_alpha(
    axis: AxisLike,
    layer: int,
    alpha: float,
    *,
    mode: ModeSpec = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
) -> float:
    """``alpha`` (``mode``'s primary strength) in raw units at ``layer`` (calibration merged
    with the axis's own); a strength the unit does not convert (an angle) passes through.

    >>> raw_alpha(torch.ones(4), 0, 2.5)
    2.5
    """
    check_options(unit, "resid_post")
    at = at_layers(axis, layer, calibration=calibration)
    (s,) = layer_steers(at, MODES.build(mode, alpha), unit=unit, point="resid_post")
    return s.raw if s.op.primary is not None else check_alpha(alpha)


def steering_hook(
    axis: AxisLike,
    layer: int,
    alpha: float | None = None,
    *,
    positions: PositionSpec = "all",
    mode: ModeSpec = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
    point: Point = "resid_post",
    normalize: bool = True,
    prompt_lens: torch.Tensor | None = None,
    pads: torch.Tensor | None = None,
    **params: Any,
) -> tuple[str, HookFn]:
    """A ``(hook_name, fn)`` steering pair for ``model.hooks(fwd_hooks=[...])``.

    Args:
        axis: a ValueAxis, or a direction tensor ``[d_model]`` / ``[n_layers, d_model]``.
        layer: value_lens layer (output of block ``layer``).
        alpha: the mode's primary strength in ``unit`` (the push for ``add``, the target for
            ``clamp``, the floor for ``cap``, degrees for ``rotate``, the share of the projection
            removed for ``ablate``, 1 unless given).
        positions: ``"all"``, ``"prompt"``, ``"generated"``, ``"from:k"`` or a bool mask.
        mode: a registered mode's name (:data:`~value_lens.steering.modes.MODES`), an
            :class:`~value_lens.steering.operator.Operator`, or a callable ``fn(h, u) -> h``.
        unit: ``"raw"``, ``"percent"`` (of the mean residual norm) or ``"sd"``.
        calibration: scales for percent/sd; defaults to the axis's stored ones.
        point: where value_lens ``layer`` (HF ``hidden_states[layer + 1]``, for a bare tensor
            too) is hooked: ``"resid_post"`` = ``blocks.{layer}.hook_resid_post`` (default) or
            ``"resid_pre"`` = ``blocks.{layer + 1}.hook_resid_pre``. Same stream, same result,
            but a ``hook_resid_post`` cache then stays unsteered; the last layer has no next block.
        normalize: use the unit direction (True) or the stored vector as is.
        prompt_lens / pads: per-row prompt length and left padding, when known.
        params: the mode's other parameters (``floor=``, ``ceiling=``, ``angle=``).

    >>> import torch
    >>> name, fn = steering_hook(torch.tensor([0.0, 2.0]), 3, alpha=5.0)
    >>> name, fn(torch.zeros(1, 2, 2)).tolist()
    ('blocks.3.hook_resid_post', [[[0.0, 5.0], [0.0, 5.0]]])
    """
    check_options(unit, point)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputError(f"layer must be an int, got {layer!r}")
    at = at_layers(axis, layer, normalize=normalize, calibration=calibration)
    (s,) = layer_steers(at, MODES.build(mode, alpha, params), unit=unit, point=point)
    return s.hook, make_hook(s, parse_positions(positions), stream(prompt_lens, pads), RunRecord())


@dataclass(frozen=True, eq=False)
class Steering:
    """A validated steering intervention on one model: build it with :func:`steer`.

    Use it as a context manager (``with steering: ...``) or pass it to
    ``value_lens.core.generate(..., steer=steering)``. Each ``with`` owns its own hook handles.
    Every activation (a ``with`` block, or one ``generate`` batch) leaves a record:
    :meth:`report`, :meth:`moved_tokens` and :meth:`trigger_steps` read them.

    Attributes:
        model: the model it steers.
        steers: per layer: the hook name, the direction, the strength and the operator.
        positions, unit, point: as passed to :func:`steer`; mode: the operator's name.
        when: the per-row condition, or ``None``.
    """

    model: HookedModel
    steers: tuple[LayerSteer, ...]
    positions: Positions
    mode: str
    unit: Unit
    point: Point
    when: Condition | None = None
    _stack: list[list[tuple[Any, Any]]] = field(default_factory=list, init=False, repr=False)
    _runs: list[RunRecord] = field(default_factory=list, init=False, repr=False)

    @property
    def layers(self) -> list[int]:
        return [s.layer for s in self.steers]

    @property
    def alphas(self) -> list[float]:
        """The primary strengths as given, in ``unit``."""
        return [s.alpha for s in self.steers]

    @property
    def raw_alphas(self) -> list[float]:
        """The primary strengths in residual-stream units, as the hooks apply them."""
        return [s.raw for s in self.steers]

    def hooks(
        self, *, prompt_lens: torch.Tensor | None = None, pads: torch.Tensor | None = None
    ) -> list[tuple[str, HookFn]]:
        """Fresh ``(hook_name, fn)`` pairs (each with its own stream record) sharing one new
        activation record; a condition's read-only hook comes first."""
        run = RunRecord()
        self._runs.append(run)
        gate = None if self.when is None else make_gate(self.when, run, prompt_lens, pads)
        pairs = [] if gate is None else [gate.hook()]
        return pairs + [
            (s.hook, make_hook(s, self.positions, stream(prompt_lens, pads), run, gate))
            for s in self.steers
        ]

    def _install(self, pairs: list[tuple[str, HookFn]]) -> list[tuple[Any, Any]]:
        hook_dict = getattr(self.model, "hook_dict", None)
        if hook_dict is None:
            raise InputError("steering needs a TransformerLens model with hook points (hook_dict)")
        installed: list[tuple[Any, Any]] = []
        try:
            for name, fn in pairs:
                hp = hook_dict[name]
                handle = hp.add_hook(fn, dir="fwd")
                if handle is None:  # TransformerLens < 4 returns nothing: take the newest handle
                    handle = hp.fwd_hooks[-1]
                installed.append((hp, handle))
        except BaseException:
            _remove(installed)
            raise
        return installed

    @contextlib.contextmanager
    def activate(
        self, *, prompt_lens: torch.Tensor | None = None, pads: torch.Tensor | None = None
    ) -> Iterator[Steering]:
        """Install the hooks for one batch with known prompt lengths / left padding."""
        installed = self._install(self.hooks(prompt_lens=prompt_lens, pads=pads))
        try:
            yield self
        finally:
            _remove(installed)

    def __enter__(self) -> Steering:
        self._stack.append(self._install(self.hooks()))
        return self

    def __exit__(self, *exc: object) -> None:
        _remove(self._stack.pop())

    def report(self, gens: Sequence[Any] | None = None) -> pd.DataFrame:
        """One row per (activation row, layer) since :meth:`clear`, rows in the order
        ``generate`` returned them: ``row``, ``layer``, ``moved`` (tokens the operator changed),
        ``push`` / ``push_abs`` (their summed change along the direction), ``trigger``.

        With ``gens`` (the generations of those rows), a trigger at or past a row's last kept
        token (read from padding after the row ended) counts as none.
        """
        out, base = [], 0
        for run in self._runs:
            trig = _triggers(run, gens, base)
            for s in self.steers:
                vals = run.per_row(s.layer)
                for j in range(run.rows):
                    out.append(
                        {"row": base + j, "layer": s.layer, "trigger": trig[j]}
                        | {k: v[j] for k, v in vals.items()}
                    )
            base += run.rows
        cols = ["row", "layer", "moved", "push", "push_abs", "trigger"]
        frame = pd.DataFrame(out, columns=cols)
        frame["trigger"] = frame["trigger"].astype("Int64")  # <NA>: never triggered
        return frame

    def moved_tokens(self) -> dict[int, int]:
        """Tokens each layer's operator changed, over every activation since :meth:`clear`."""
        rep = self.report()
        return {s.layer: int(rep.loc[rep["layer"] == s.layer, "moved"].sum()) for s in self.steers}

    def trigger_steps(self, gens: Sequence[Any] | None = None) -> list[int | None]:
        """Per row (generation order), the relative index of the token whose value fired the
        condition (``-1``: the prompt; ``None``: never); see :meth:`report` for ``gens``."""
        out: list[int | None] = []
        for run in self._runs:
            out += _triggers(run, gens, len(out))
        return out

    def clear(self) -> None:
        """Forget the activation records."""
        self._runs.clear()

    def __repr__(self) -> str:
        key = self.steers[0].op.primary if self.steers else None
        per = ", ".join(f"{s.layer}: {s.alpha:g}" for s in self.steers)
        what = (
            "" if key is None else f"{'alpha' if key == 'alpha' else key}={{{per}}} {self.unit}, "
        )
        cond = "" if self.when is None else f", when={self.when!r}"
        return (
            f"Steering(mode={self.mode!r}, {what}positions={str(self.positions)!r}, "
            f"point={self.point!r}{cond})"
        )


def _triggers(run: RunRecord, gens: Sequence[Any] | None, base: int) -> list[int | None]:
    trig: list[int | None] = list(run.trigger) if run.trigger is not None else [None] * run.rows
    if gens is not None:
        for j, t in enumerate(trig):
            if t is not None and base + j < len(gens) and t >= gens[base + j].n_tokens:
                trig[j] = None
    return trig


def _remove(installed: list[tuple[Any, Any]]) -> None:
    for hp, handle in reversed(installed):
        handle.hook.remove()
        hp.fwd_hooks[:] = [h for h in hp.fwd_hooks if h is not handle]


def steer(
    model: HookedModel,
    axis: AxisLike,
    *,
    layers: int | Sequence[int],
    alpha: Alpha | None = None,
    positions: PositionSpec = "all",
    mode: ModeSpec = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
    point: Point = "resid_post",
    normalize: bool = True,
    when: Condition | None = None,
    check_model_id: bool = True,
    **params: Any,
) -> Steering:
    """Build a :class:`Steering`: use it in ``with`` or pass it to ``generate(steer=...)``.

    Every input is checked and converted here, once; nothing is installed until it is used.

    Args:
        model: the TransformerBridge (or any :class:`~value_lens.core.protocols.HookedModel`).
        axis: a ValueAxis fitted on ``model``, or a direction tensor ``[d]`` / ``[n_layers, d]``.
        layers: one layer or several.
        alpha: the mode's primary strength: one, one per layer (list), or ``{layer: alpha}``.
        positions, mode, unit, calibration, point, normalize: see :func:`steering_hook`.
        when: a :class:`~value_lens.steering.condition.Condition`: steer only the rows (and
            from the token) where a monitor rule fires; rows it never fires on are untouched.
        check_model_id: also require the axis's model id to match the model's.
        params: the mode's other parameters, e.g. ``floor=``/``ceiling=`` for ``"cap"``,
            ``angle=`` for ``"rotate"`` (each one number, one per layer, or ``{layer: x}``).

    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> with steer(model, torch.ones(64), layers=1, alpha=4.0) as s:
    ...     logits = model(torch.tensor([[1, 2, 3]]))
    >>> s
    Steering(mode='add', alpha={1: 4} raw, positions='all', point='resid_post')
    >>> s.moved_tokens()
    {1: 3}
    """
    check_options(unit, point)
    pos = parse_positions(positions)
    op = MODES.build(mode, alpha, params)
    at = at_layers(
        axis,
        layers,
        model=model,
        normalize=normalize,
        calibration=calibration,
        check_model_id=check_model_id,
    )
    steers = layer_steers(at, op, unit=unit, point=point)
    if when is not None:
        when.check(model)
    return Steering(model, steers, pos, op.name, unit, point, when)
