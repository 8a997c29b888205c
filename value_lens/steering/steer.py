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
from typing import Any

import torch

from value_lens.core.conventions import resolve_layer, resolve_layers
from value_lens.core.model import d_model as model_d_model
from value_lens.core.model import n_layers as model_n_layers
from value_lens.errors import AxisMismatchError, InputError
from value_lens.steering._resolve import POINTS, check_alpha, direction, hook_name, per_layer
from value_lens.steering.positions import Positions, PositionSpec, parse_positions, position_mask
from value_lens.steering.strength import Calibration, axis_calibration, to_raw

__all__ = ["MODES", "POINTS", "Steering", "raw_alpha", "steer", "steering_hook"]

MODES: tuple[str, ...] = ("add", "ablate", "clamp")
HookFn = Callable[..., torch.Tensor]


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


def _make_hook(v: torch.Tensor, alpha: float, mode: str, pos: Positions, stream: _Stream) -> HookFn:
    d = v.shape[0]
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
            u = cache[resid.device] = v.to(resid.device, torch.float32)
        m: torch.Tensor | None = None
        if not (pos.kind == "all" and not bool(pads.any())):
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


def raw_alpha(
    axis: Any,
    layer: int,
    alpha: float,
    *,
    mode: str = "add",
    unit: str = "raw",
    calibration: Calibration | None = None,
) -> float:
    """``alpha`` in raw residual units at ``layer`` (calibration merged with the axis's own).

    >>> raw_alpha(torch.ones(4), 0, 2.5)
    2.5
    """
    a = check_alpha(alpha)
    if mode == "ablate" or unit == "raw":
        return a
    cal = calibration
    if hasattr(axis, "resid_norm"):
        stored = axis_calibration(axis)
        cal = stored if cal is None else cal.merged(stored)
    return check_alpha(to_raw(a, layer, unit, cal), "the converted alpha")


def steering_hook(
    axis: Any,
    layer: int,
    alpha: float = 0.0,
    *,
    positions: PositionSpec = "all",
    mode: str = "add",
    unit: str = "raw",
    calibration: Calibration | None = None,
    point: str = "resid_post",
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
    if mode not in MODES:
        raise InputError(f"unknown steering mode {mode!r}; use one of {MODES}")
    if point not in POINTS:
        raise InputError(f"unknown hook point {point!r}; use one of {sorted(POINTS)}")
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputError(f"layer must be an int, got {layer!r}")
    if isinstance(axis, torch.Tensor):
        n: int | None = axis.shape[0] if axis.ndim == 2 else None
    else:
        n = getattr(axis, "n_layers", None)
    if n is not None:
        layer = resolve_layer(layer, n)
    elif layer < 0:
        raise InputError(
            "a negative layer needs a ValueAxis (or [n_layers, d] tensor) to resolve it"
        )
    a = raw_alpha(axis, layer, alpha, mode=mode, unit=unit, calibration=calibration)
    pos = parse_positions(positions)
    v = direction(axis, layer, normalize)
    stream = _Stream(
        None if prompt_lens is None else torch.as_tensor(prompt_lens),
        None if pads is None else torch.as_tensor(pads),
    )
    return hook_name(point, layer, n), _make_hook(v, a, mode, pos, stream)


class Steering:
    """A validated steering intervention on one model (build it with :func:`steer`).

    Use it as a context manager (``with steering: ...``) or pass it to
    ``value_lens.core.generate(..., steer=steering)``. Each ``with`` owns its own hook handles.
    """

    def __init__(
        self,
        model: Any,
        axis: Any,
        *,
        layers: int | Sequence[int],
        alpha: float | Sequence[float] | Mapping[int, float] = 0.0,
        positions: PositionSpec = "all",
        mode: str = "add",
        unit: str = "raw",
        calibration: Calibration | None = None,
        point: str = "resid_post",
        normalize: bool = True,
        check_model_id: bool = True,
    ) -> None:
        if isinstance(axis, torch.Tensor):
            if axis.shape[-1] != model_d_model(model):
                raise AxisMismatchError(
                    f"the direction has d_model {axis.shape[-1]} but the model has "
                    f"{model_d_model(model)}; use a direction from this model"
                )
        else:
            axis.check_compatible(model, check_model_id=check_model_id)
        if isinstance(layers, Mapping):
            raise InputError(
                "layers must be an int or a list of ints; put per-layer values in alpha"
            )
        self.model = model
        self.layers = resolve_layers(layers, model_n_layers(model))
        if isinstance(alpha, Mapping):
            alpha = {resolve_layer(k, model_n_layers(model)): v for k, v in alpha.items()}
        self.alphas = per_layer(alpha, self.layers)
        self.positions = parse_positions(positions)
        self.mode, self.unit, self.point = mode, unit, point
        self._kw = dict(
            positions=self.positions,
            mode=mode,
            unit=unit,
            calibration=calibration,
            point=point,
            normalize=normalize,
        )
        self.axis = axis
        # build once now so every bad input raises here, not inside a forward pass
        self.raw_alphas = [
            raw_alpha(axis, layer, a, mode=mode, unit=unit, calibration=calibration)
            for layer, a in zip(self.layers, self.alphas, strict=True)
        ]
        self.hooks()
        for layer in self.layers:  # a bare [d] vector does not know the number of layers
            hook_name(point, layer, model_n_layers(model))
        self._stack: list[list[tuple[Any, Any]]] = []

    def _pair(
        self, layer: int, alpha: float, lens: torch.Tensor | None, pads: torch.Tensor | None
    ) -> tuple[str, HookFn]:
        name, fn = steering_hook(self.axis, layer, alpha, prompt_lens=lens, pads=pads, **self._kw)  # type: ignore[arg-type]
        return name, fn

    def hooks(
        self, *, prompt_lens: torch.Tensor | None = None, pads: torch.Tensor | None = None
    ) -> list[tuple[str, HookFn]]:
        """Fresh ``(hook_name, fn)`` pairs (each with its own stream record)."""
        return [
            self._pair(layer, a, prompt_lens, pads)
            for layer, a in zip(self.layers, self.alphas, strict=True)
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
        per = ", ".join(
            f"{layer}: {a:g}" for layer, a in zip(self.layers, self.alphas, strict=True)
        )
        return (
            f"Steering(mode={self.mode!r}, alpha={{{per}}} {self.unit}, "
            f"positions={str(self.positions)!r}, point={self.point!r})"
        )


def _remove(installed: list[tuple[Any, Any]]) -> None:
    for hp, handle in reversed(installed):
        handle.hook.remove()
        hp.fwd_hooks[:] = [h for h in hp.fwd_hooks if h is not handle]


def steer(
    model: Any,
    axis: Any,
    *,
    layers: int | Sequence[int],
    alpha: float | Sequence[float] | Mapping[int, float] = 0.0,
    positions: PositionSpec = "all",
    mode: str = "add",
    unit: str = "raw",
    calibration: Calibration | None = None,
    point: str = "resid_post",
    normalize: bool = True,
    check_model_id: bool = True,
) -> Steering:
    """Build a :class:`Steering`: use it in ``with`` or pass it to ``generate(steer=...)``.

    Args:
        model: the TransformerBridge to steer.
        axis: a ValueAxis fitted on ``model`` (or a direction tensor).
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
    return Steering(
        model,
        axis,
        layers=layers,
        alpha=alpha,
        positions=positions,
        mode=mode,
        unit=unit,
        calibration=calibration,
        point=point,
        normalize=normalize,
        check_model_id=check_model_id,
    )
