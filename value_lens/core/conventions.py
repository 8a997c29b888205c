"""The one home of value_lens's layer-index convention.

value_lens layer ``i`` is the **output of transformer block i**, the TransformerLens hook
``blocks.{i}.hook_resid_post`` (equivalently ``blocks.{i+1}.hook_resid_pre``).

Other conventions, and how they map:

=========================================  ===========================================
convention                                 value_lens layer
=========================================  ===========================================
HF ``output_hidden_states[k]``, 1<=k<n     ``k - 1``
HF ``output_hidden_states[0]``             embeddings: no value_lens layer
HF ``output_hidden_states[n]`` (last)      post-final-norm: **not** ``n - 1`` (pre-norm)
the paper's "layer 21" (= hidden_states)   block 20
=========================================  ===========================================

Every conversion in the library goes through the functions below, and every hook name through
:func:`hook_name` (at ``resid_post``, or at ``resid_pre`` of the next block for steering).

Example:
    >>> from value_lens.core.conventions import hook_name, from_hidden_states_index
    >>> hook_name(20)
    'blocks.20.hook_resid_post'
    >>> from_hidden_states_index(21)  # the paper's layer 21
    20
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, SupportsIndex

from value_lens.errors import InputError, LayerError

__all__ = [
    "CONVENTION",
    "HOOK_TEMPLATE",
    "PAPER_LAYER",
    "PAPER_N_LAYERS",
    "POINTS",
    "Point",
    "default_layer",
    "from_hidden_states_index",
    "hook_name",
    "resolve_layer",
    "resolve_layers",
    "to_hidden_states_index",
]

HOOK_TEMPLATE = "blocks.{layer}.hook_resid_post"
CONVENTION = "block_output"  # stored in every artifact's metadata

Point = Literal["resid_post", "resid_pre"]
#: where value_lens layer ``layer`` can be hooked: the output of block ``layer``, or the same
#: residual stream at the input of block ``layer + 1`` (``next``)
POINTS: dict[Point, str] = {
    "resid_post": HOOK_TEMPLATE,
    "resid_pre": "blocks.{next}.hook_resid_pre",
}

#: the paper's main layer, its "layer 21" (HF ``hidden_states[21]``), as a value_lens layer
PAPER_LAYER = 20
#: blocks of the paper's model (Qwen3-8B); only a model this deep gets :data:`PAPER_LAYER`
PAPER_N_LAYERS = 36


def hook_name(layer: int, point: Point = "resid_post", n_layers: int | None = None) -> str:
    """TransformerLens hook name carrying value_lens layer ``layer`` (block ``layer``'s output)
    at ``point`` (:data:`POINTS`).

    ``resid_pre`` is the next block's input, so the last layer has none. With ``n_layers`` the
    layer is checked (:func:`resolve_layer`: negative ones count from the end) and so is that.

    >>> hook_name(3), hook_name(3, "resid_pre"), hook_name(-1, n_layers=8)
    ('blocks.3.hook_resid_post', 'blocks.4.hook_resid_pre', 'blocks.7.hook_resid_post')
    """
    if point not in POINTS:
        raise InputError(f"unknown hook point {point!r}; use one of {tuple(POINTS)}")
    layer = int(layer) if n_layers is None else resolve_layer(layer, n_layers)
    if point == "resid_pre" and n_layers is not None and layer + 1 >= n_layers:
        raise LayerError(
            f"point='resid_pre' at layer {layer} hooks the input of block {layer + 1}, but the "
            f"model has {n_layers} blocks; use point='resid_post' (the same residual stream)"
        )
    return POINTS[point].format(layer=layer, next=layer + 1)


def to_hidden_states_index(layer: int) -> int:
    """HF ``output_hidden_states`` index holding value_lens layer ``layer`` (``layer + 1``).

    For the last layer HF returns the post-final-norm state instead, so only
    ``layer < n_layers - 1`` compares equal.
    """
    return int(layer) + 1


def from_hidden_states_index(index: int) -> int:
    """value_lens layer of HF ``output_hidden_states[index]`` (the paper's layer numbers)."""
    if index < 1:
        raise LayerError(
            f"hidden_states[{index}] is the embedding output, which is no block output; "
            "use an index of at least 1"
        )
    return int(index) - 1


def resolve_layer(layer: SupportsIndex | str, n_layers: int) -> int:
    """Validate one layer index; negative indices count from the end like Python lists.

    numpy / torch integer scalars and integer strings (e.g. from a command line) are converted;
    anything else raises :class:`LayerError`.
    """
    if isinstance(layer, bool) or not isinstance(layer, int):
        try:
            layer = int(layer)  # numpy / torch integer scalars
        except (TypeError, ValueError):
            raise LayerError(f"layer must be an integer, got {layer!r}") from None
    resolved = layer + n_layers if layer < 0 else layer
    if not 0 <= resolved < n_layers:
        raise LayerError(
            f"layer {layer} is out of range: this model has {n_layers} blocks, "
            f"so use 0..{n_layers - 1} (or -{n_layers}..-1)"
        )
    return resolved


def resolve_layers(layers: int | Iterable[int] | None, n_layers: int) -> list[int]:
    """Validate layers (``None`` means all), sorted and without duplicates."""
    if layers is None:
        return list(range(n_layers))
    if isinstance(layers, int):
        layers = [layers]
    out = sorted({resolve_layer(layer, n_layers) for layer in layers})
    if not out:
        raise LayerError("no layers were given; pass None for all layers")
    return out


def default_layer(n_layers: int, available: Iterable[int] | None = None) -> int:
    """The layer to read or steer when none is given.

    The paper's layer (value_lens 20, its "layer 21") for a model of the paper's depth (36
    blocks), else the middle block ``n_layers // 2``. With ``available`` (e.g. the layers an
    axis was fitted on), the available layer closest to that (the lower one on a tie).

    >>> default_layer(36), default_layer(30), default_layer(2)
    (20, 15, 1)
    >>> default_layer(36, available=[4, 8, 24])
    24
    """
    n = int(n_layers)
    if n < 1:
        raise LayerError(f"a model needs at least one block, got n_layers={n_layers!r}")
    target = PAPER_LAYER if n == PAPER_N_LAYERS else n // 2
    if available is None:
        return target
    pool = resolve_layers(list(available), n)
    return min(pool, key=lambda layer: (abs(layer - target), layer))
