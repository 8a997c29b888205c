"""Reading the axis out: per-token cosine (paper Eq. 2) and projection, without a full cache.

The hooks reduce each layer's residual to two scalars per token on the fly, so a 10k-token trace
over 36 layers holds 2 x 36 x 10k floats instead of the whole residual stream.

Example:
    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> axis = ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
    >>> tr = trace(model, "The fox jumps.", axis)
    >>> tr.cosine.shape == (2, len(tr.tokens))
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from value_lens.core.chat import ChatText, format_chat
from value_lens.core.conventions import resolve_layers
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import encode, model_device, to_token_ids
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError, LayerError, NonFiniteActivationError
from value_lens.fitting.axis import ValueAxis

__all__ = ["ValueTrace", "mean_value", "project", "trace"]


@dataclass(frozen=True, eq=False)
class ValueTrace:
    """Per-token, per-layer readout of one text.

    Attributes:
        tokens: decoded token strings, one per position.
        token_ids: ``[n_tokens]``.
        layers: the value_lens layers of the rows below.
        cosine: ``[len(layers), n_tokens]`` cos(h_t, v) in fp32 (the paper's Eq. 2).
        projection: ``[len(layers), n_tokens]`` h_t . v / |v| in fp32 (residual units); for an
            axis with a readout transform, of the transformed residual on the readout direction.
        offsets: ``[n_tokens, 2]`` character span of each token in ``text`` (-1 if unknown).
        text: the text that was read (chat-formatted, if messages were given).
    """

    tokens: list[str]
    token_ids: Int[torch.Tensor, " T"]
    layers: list[int]
    cosine: Float[torch.Tensor, "L T"]
    projection: Float[torch.Tensor, "L T"]
    offsets: Int[torch.Tensor, "T 2"]
    text: str = ""
    model_id: str = ""

    def row(self, layer: int) -> int:
        if layer not in self.layers:
            raise LayerError(f"layer {layer} is not in this trace; it holds layers {self.layers}")
        return self.layers.index(layer)

    def mean(self, layer: int, positions: Any = None, *, metric: str = "cosine") -> float:
        """Mean of ``metric`` at ``layer`` over a token selection (slice, indices or bool mask)."""
        if metric not in {"cosine", "projection"}:
            raise InputError("metric must be 'cosine' or 'projection'")
        vals = getattr(self, metric)[self.row(layer)]
        sel = vals if positions is None else vals[_as_index(positions, vals.numel())]
        if sel.numel() == 0:
            raise InputError("the token selection is empty")
        return float(sel.mean())

    def slice(self, start: int | None = None, stop: int | None = None) -> ValueTrace:
        """The tokens ``start:stop`` (Python slice rules) of this trace, at every layer.

        ``text`` is kept whole, so ``offsets`` still index into it.

        Example:
            >>> tr = ValueTrace(["a", "b", "c"], torch.tensor([1, 2, 3]), [0],
            ...     torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[1.0, 2.0, 3.0]]),
            ...     torch.tensor([[0, 1], [1, 2], [2, 3]]), "abc")
            >>> part = tr.slice(1, 3)
            >>> part.tokens, part.projection.tolist(), part.offsets[0].tolist(), part.text
            (['b', 'c'], [[2.0, 3.0]], [1, 2], 'abc')
        """
        return dataclasses.replace(
            self,
            tokens=self.tokens[start:stop],
            token_ids=self.token_ids[start:stop],
            cosine=self.cosine[:, start:stop],
            projection=self.projection[:, start:stop],
            offsets=self.offsets[start:stop],
        )

    def char_span_mask(self, start: int, end: int) -> torch.Tensor:
        """Bool mask of tokens overlapping the character span ``text[start:end]``."""
        o = self.offsets
        return (o[:, 0] < end) & (o[:, 1] > start)

    def to_frame(self) -> Any:
        """Tidy pandas DataFrame: one row per (layer, position)."""
        import pandas as pd

        rows = [
            {
                "layer": layer,
                "position": t,
                "token": self.tokens[t],
                "cosine": float(self.cosine[r, t]),
                "projection": float(self.projection[r, t]),
            }
            for r, layer in enumerate(self.layers)
            for t in range(len(self.tokens))
        ]
        return pd.DataFrame(rows)


def _as_index(positions: Any, n: int) -> Any:
    if isinstance(positions, slice):
        return positions
    t = torch.as_tensor(positions)
    if t.dtype == torch.bool:
        if t.numel() != n:
            raise InputError(f"the position mask has {t.numel()} entries for {n} tokens")
        return t
    t = t.long()
    if t.numel() and (int(t.max()) >= n or int(t.min()) < -n):
        raise InputError(f"positions must lie in [-{n}, {n}); got {t.tolist()[:5]}...")
    return t


def _prepare(
    model: HookedModel, text_or_tokens: Any, *, truncate: bool, enable_thinking: bool | None
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(text, ids, offsets) for a string, a ChatText, chat messages or token ids."""
    if (
        isinstance(text_or_tokens, Sequence)
        and not isinstance(text_or_tokens, str)
        and text_or_tokens
        and isinstance(text_or_tokens[0], Mapping)
    ):
        text_or_tokens = format_chat(
            model.tokenizer, text_or_tokens, enable_thinking=enable_thinking
        )
    if isinstance(text_or_tokens, ChatText):
        text_or_tokens = text_or_tokens.text
    if isinstance(text_or_tokens, str):
        ids, offsets = encode(model, text_or_tokens, truncate=truncate)
        return text_or_tokens, ids, offsets
    ids = to_token_ids(model, text_or_tokens, truncate=truncate)
    return "", ids, torch.full((ids.numel(), 2), -1, dtype=torch.long)


def trace(
    model: HookedModel,
    text_or_tokens: Any,
    axis: ValueAxis,
    layers: int | Iterable[int] | None = None,
    *,
    truncate: bool = False,
    enable_thinking: bool | None = False,
    check_model_id: bool = True,
) -> ValueTrace:
    """Per-token cosine and projection on ``axis`` at ``layers`` (default: every fitted layer).

    ``text_or_tokens`` is a string, chat messages (formatted with the model's template), a
    :class:`ChatText`, or token ids. One forward pass, stopped after the deepest layer. An axis
    with a readout transform (the LEACE eraser of ``method="erased"``, the standardiser of
    ``"standardized"``) reads every residual through it before projecting.
    """
    axis.check_compatible(model, check_model_id=check_model_id)
    sel = list(axis.layers) if layers is None else resolve_layers(layers, axis.n_layers)
    for layer in sel:
        axis.direction(layer)  # raises for unfitted layers
    text, ids, offsets = _prepare(
        model, text_or_tokens, truncate=truncate, enable_thinking=enable_thinking
    )
    cos = torch.zeros(len(sel), ids.numel())
    proj = torch.zeros(len(sel), ids.numel())
    dev = model_device(model)

    def read(layer: int, resid: torch.Tensor) -> None:
        h = resid[0].float()
        if not bool(torch.isfinite(h).all()):
            raise NonFiniteActivationError(f"NaN/Inf activations at layer {layer} while tracing")
        p, c = axis.read(h, layer)
        r = sel.index(layer)
        proj[r], cos[r] = p.cpu(), c.cpu()

    run_resid_hooks(model, ids[None].to(dev), {layer: read for layer in sel})
    tok = model.tokenizer
    tokens = [tok.decode([i]) for i in ids.tolist()]
    return ValueTrace(tokens, ids, sel, cos, proj, offsets, text, str(axis.model_id))


def mean_value(
    model: HookedModel,
    text_or_tokens: Any,
    axis: ValueAxis,
    layer: int,
    *,
    positions: Any = None,
    metric: str = "cosine",
    **kwargs: Any,
) -> float:
    """Mean cosine (or projection) at one layer over a token selection (default: all tokens)."""
    return trace(model, text_or_tokens, axis, [layer], **kwargs).mean(
        layer, positions, metric=metric
    )


def project(
    resid: Float[torch.Tensor, "... D"], axis: ValueAxis, layer: int, *, cosine: bool = True
) -> torch.Tensor:
    """Cosine (default) or projection of residual vectors on the axis at ``layer``.

    An axis with a readout transform (``method="erased"`` or ``"standardized"``) transforms
    the residuals first: see :meth:`ValueAxis.read <value_lens.fitting.axis.ValueAxis.read>`.
    """
    p, c = axis.read(resid, layer)
    return c if cosine else p
