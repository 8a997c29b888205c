"""Steering along the value axis: hook functions and a leak-proof, nestable context manager.

Two entry points:

* :func:`steering_hook` returns a ``(hook_name, fn)`` pair for TransformerLens
  ``model.hooks(fwd_hooks=[...])`` / ``run_with_hooks``.
* :func:`steer` returns a :class:`Steering`. Used as ``with steer(model, axis, ...):`` it
  installs its hooks and removes exactly those handles on exit, also after an exception;
  contexts nest. Passed as ``generate(model, prompts, steer=...)`` it is installed once per
  batch with that batch's prompt lengths and left padding, so ``"prompt"``, ``"generated"``
  and ``"from:k"`` are exact there.

Modes, with ``u`` the direction (unit length unless ``normalize=False``), ``p = h . u`` and
``m`` the position mask: ``add``: ``h + m * alpha * u`` (the paper's intervention);
``ablate``: ``h - m * p * u`` (alpha unused); ``clamp``: ``h + m * (alpha - p) * u``, i.e. the
projection is set to ``alpha``. ``alpha`` is converted to raw units first (see
:mod:`value_lens.steering.strength`; a clamp target in ``"sd"`` is ``alpha`` projection sds from 0).

Each input is checked and converted once, at the door (:mod:`value_lens.steering._resolve`):
the axis becomes ``{layer: direction}`` plus a calibration, and each layer a
:class:`~value_lens.steering._resolve.LayerSteer` with its hook name and raw strength. A
:class:`Steering` holds only those; its hooks read them.

How a hook knows the KV-cache step: each hook keeps a small stream record. A forward pass with
``T > 1`` positions, or the first pass, starts at stream position 0 (a prompt, or a full
recompute when generating without a cache). A single-position pass after earlier passes
continues the stream at the number of positions already seen (one cached decoding step).
Prompt lengths and padding come from :func:`value_lens.core.generate.generate`; without them the
hook assumes no padding and takes the first pass of each sequence to be the prompt, which is
right for single-prompt ``model.generate`` with its default KV cache. Each hook is called once
per forward pass, so per-hook records need no coordination.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from value_lens.core.protocols import HookedModel
from value_lens.errors import AxisMismatchError, InputError
from value_lens.steering._resolve import (
    MODES,
    POINTS,
    AxisLike,
    LayerSteer,
    Mode,
    Point,
    at_layers,
    check_options,
    layer_steers,
    per_layer,
    raw_strength,
    resolve_alpha_keys,
)
from value_lens.steering.positions import Positions, PositionSpec, parse_positions, position_mask
from value_lens.steering.strength import Calibration, Unit

__all__ = ["MODES", "POINTS", "Mode", "Point", "Steering", "raw_alpha", "steer", "steering_hook"]

HookFn = Callable[..., torch.Tensor]
Alpha = float | Sequence[float] | Mapping[int, float]


class _Stream:
    """Where in the token stream each forward pass starts (see the module docstring)."""

    def __init__(self, prompt_lens: torch.Tensor | None, pads: torch.Tensor | None) -> None:
        self.given = prompt_lens is not None
        self.prompt_lens = None if prompt_lens is None else prompt_lens.reshape(-1).long().cpu()
        self.pads = None if pads is None else pads.reshape(-1).long().cpu()
        if self.pads is None and self.prompt_lens is not None:
            self.pads = torch.zeros_like(self.prompt_lens)
        self.processed = 0

    def locate(self, batch: int, seq_len: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        regrouped = (
            not self.given and self.prompt_lens is not None and self.prompt_lens.numel() != batch
        )
        fresh = self.processed == 0 or seq_len > 1 or regrouped
        offset = 0 if fresh else self.processed
        if self.given:
            assert self.prompt_lens is not None and self.pads is not None
            if self.prompt_lens.numel() != batch:
                raise InputError(
                    f"the steering was activated for {self.prompt_lens.numel()} rows but the "
                    f"forward pass has {batch}; use value_lens.core.generate(..., steer=...) or "
                    "`with steering:` for plain forward passes"
                )
        elif fresh:
            self.prompt_lens = torch.full((batch,), seq_len, dtype=torch.long)
            self.pads = torch.zeros(batch, dtype=torch.long)
        assert self.prompt_lens is not None and self.pads is not None
        self.processed = offset + seq_len
        return offset, self.prompt_lens, self.pads


def _make_hook(s: LayerSteer, mode: Mode, pos: Positions, stream: _Stream) -> HookFn:
    d = s.direction.shape[0]
    alpha = s.raw
    cache: dict[torch.device, torch.Tensor] = {}

    def hook_fn(resid: torch.Tensor, hook: Any = None) -> torch.Tensor:  # noqa: ARG001 - TL contract
        if resid.ndim != 3 or resid.shape[-1] != d:
            raise AxisMismatchError(
                f"the steering direction has d_model {d} but the hooked activation has shape "
                f"{tuple(resid.shape)}; use an axis fitted on this model"
            )
        batch, seq_len, _ = resid.shape
        offset, lens, pads = stream.locate(batch, seq_len)
        u = cache.get(resid.device)
        if u is None:
            u = cache[resid.device] = s.direction.to(resid.device, torch.float32)
        m: torch.Tensor | None = None
        # "all" needs no mask past the first pass (padding only precedes the prompt) or without
        # padding: decoding steps skip building one
        if not (pos.kind == "all" and (offset > 0 or not bool(pads.any()))):
            mask = position_mask(pos, seq_len, prompt_lens=lens, offset=offset, pads=pads)
            if not bool(mask.any()):
                return resid
            m = mask.to(resid.device, torch.float32)[..., None]
        # fp32 throughout, one rounding back to the model dtype: a bf16 projection would leave
        # about 0.4% of it behind after an ablation
        h = resid.float()
        if mode == "add":
            delta = alpha * u
        else:
            proj = (h @ u)[..., None]  # [B, T, 1]
            delta = (-proj if mode == "ablate" else alpha - proj) * u
        return (h + (delta if m is None else m * delta)).to(resid.dtype)

    return hook_fn


def _stream(prompt_lens: torch.Tensor | None, pads: torch.Tensor | None) -> _Stream:
    return _Stream(
        None if prompt_lens is None else torch.as_tensor(prompt_lens),
        None if pads is None else torch.as_tensor(pads),
    )


def raw_alpha(
    axis: AxisLike,
    layer: int,
    alpha: float,
    *,
    mode: Mode = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
) -> float:
    """``alpha`` in raw residual units at ``layer`` (calibration merged with the axis's own).

    >>> raw_alpha(torch.ones(4), 0, 2.5)
    2.5
    """
    check_options(mode, unit, "resid_post")
    cal = at_layers(axis, layer, calibration=calibration).calibration
    return raw_strength(alpha, layer, mode=mode, unit=unit, calibration=cal)


def steering_hook(
    axis: AxisLike,
    layer: int,
    alpha: float = 0.0,
    *,
    positions: PositionSpec = "all",
    mode: Mode = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
    point: Point = "resid_post",
    normalize: bool = True,
    prompt_lens: torch.Tensor | None = None,
    pads: torch.Tensor | None = None,
) -> tuple[str, HookFn]:
    """A ``(hook_name, fn)`` steering pair for ``model.hooks(fwd_hooks=[...])``.

    Args:
        axis: a ValueAxis, or a direction tensor ``[d_model]`` / ``[n_layers, d_model]``.
        layer: value_lens layer (output of block ``layer``).
        alpha: strength in ``unit`` (the clamp target for ``mode="clamp"``; unused by ablate).
        positions: ``"all"``, ``"prompt"``, ``"generated"``, ``"from:k"`` or a bool mask.
        mode: ``"add"``, ``"ablate"`` or ``"clamp"``.
        unit: ``"raw"``, ``"percent"`` (of the mean residual norm) or ``"sd"``.
        calibration: scales for percent/sd; defaults to the axis's stored ones.
        point: where value_lens ``layer`` (HF ``hidden_states[layer + 1]``, for a bare tensor
            too) is hooked: ``"resid_post"`` = ``blocks.{layer}.hook_resid_post`` (default) or
            ``"resid_pre"`` = ``blocks.{layer + 1}.hook_resid_pre``. Same stream, same result,
            but a ``hook_resid_post`` cache then stays unsteered; the last layer has no next block.
        normalize: use the unit direction (True) or the stored vector as is.
        prompt_lens / pads: per-row prompt length and left padding, when known.

    >>> import torch
    >>> name, fn = steering_hook(torch.tensor([0.0, 2.0]), 3, alpha=5.0)
    >>> name, fn(torch.zeros(1, 2, 2)).tolist()
    ('blocks.3.hook_resid_post', [[[0.0, 5.0], [0.0, 5.0]]])
    """
    check_options(mode, unit, point)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputError(f"layer must be an int, got {layer!r}")
    at = at_layers(axis, layer, normalize=normalize, calibration=calibration)
    (s,) = layer_steers(at, [alpha], mode=mode, unit=unit, point=point)
    return s.hook, _make_hook(s, mode, parse_positions(positions), _stream(prompt_lens, pads))


@dataclass(frozen=True, eq=False)
class Steering:
    """A validated steering intervention on one model: build it with :func:`steer`.

    Use it as a context manager (``with steering: ...``) or pass it to
    ``value_lens.core.generate(..., steer=steering)``. Each ``with`` owns its own hook handles.

    Attributes:
        model: the model it steers.
        steers: per layer: the hook name, the direction and the strength (given and raw).
        positions, mode, unit, point: as passed to :func:`steer`.
    """

    model: HookedModel
    steers: tuple[LayerSteer, ...]
    positions: Positions
    mode: Mode
    unit: Unit
    point: Point
    _stack: list[list[tuple[Any, Any]]] = field(default_factory=list, init=False, repr=False)

    @property
    def layers(self) -> list[int]:
        return [s.layer for s in self.steers]

    @property
    def alphas(self) -> list[float]:
        """The strengths as given, in ``unit``."""
        return [s.alpha for s in self.steers]

    @property
    def raw_alphas(self) -> list[float]:
        """The strengths in residual-stream units, as the hooks apply them."""
        return [s.raw for s in self.steers]

    def hooks(
        self, *, prompt_lens: torch.Tensor | None = None, pads: torch.Tensor | None = None
    ) -> list[tuple[str, HookFn]]:
        """Fresh ``(hook_name, fn)`` pairs (each with its own stream record)."""
        return [
            (s.hook, _make_hook(s, self.mode, self.positions, _stream(prompt_lens, pads)))
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

    def __repr__(self) -> str:
        per = ", ".join(f"{s.layer}: {s.alpha:g}" for s in self.steers)
        return (
            f"Steering(mode={self.mode!r}, alpha={{{per}}} {self.unit}, "
            f"positions={str(self.positions)!r}, point={self.point!r})"
        )


def _remove(installed: list[tuple[Any, Any]]) -> None:
    for hp, handle in reversed(installed):
        handle.hook.remove()
        hp.fwd_hooks[:] = [h for h in hp.fwd_hooks if h is not handle]


def steer(
    model: HookedModel,
    axis: AxisLike,
    *,
    layers: int | Sequence[int],
    alpha: Alpha = 0.0,
    positions: PositionSpec = "all",
    mode: Mode = "add",
    unit: Unit = "raw",
    calibration: Calibration | None = None,
    point: Point = "resid_post",
    normalize: bool = True,
    check_model_id: bool = True,
) -> Steering:
    """Build a :class:`Steering`: use it in ``with`` or pass it to ``generate(steer=...)``.

    Every input is checked and converted here, once; nothing is installed until it is used.

    Args:
        model: the TransformerBridge (or any :class:`~value_lens.core.protocols.HookedModel`).
        axis: a ValueAxis fitted on ``model``, or a direction tensor ``[d]`` / ``[n_layers, d]``.
        layers: one layer or several.
        alpha: one strength, one per layer (list), or ``{layer: alpha}``.
        positions, mode, unit, calibration, point, normalize: see :func:`steering_hook`.
        check_model_id: also require the axis's model id to match the model's.

    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> with steer(model, torch.ones(64), layers=1, alpha=4.0) as s:
    ...     logits = model(torch.tensor([[1, 2, 3]]))
    >>> s
    Steering(mode='add', alpha={1: 4} raw, positions='all', point='resid_post')
    """
    check_options(mode, unit, point)
    pos = parse_positions(positions)
    at = at_layers(
        axis,
        layers,
        model=model,
        normalize=normalize,
        calibration=calibration,
        check_model_id=check_model_id,
    )
    alphas = per_layer(resolve_alpha_keys(alpha, at.n_layers), list(at.directions))
    steers = layer_steers(at, alphas, mode=mode, unit=unit, point=point)
    return Steering(model, steers, pos, mode, unit, point)
