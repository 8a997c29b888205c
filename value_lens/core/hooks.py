"""Running a model with residual-stream hooks: the ``fn(tensor, *, hook)`` contract.

:func:`run_resid_hooks` installs one read-only hook per requested layer on
``blocks.{layer}.hook_resid_post`` through the model's own ``hooks()`` context (so they are
removed even when a hook raises), runs one forward pass, and stops it right after the deepest
requested block, so neither later blocks nor the unembedding are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from value_lens.core.conventions import hook_name
from value_lens.core.protocols import HookedModel

__all__ = ["ResidReader", "run_resid_hooks"]

ResidReader = Callable[[int, torch.Tensor], None]
"""Called as ``reader(layer, resid)`` with ``resid`` of shape ``[batch, pos, d_model]``."""


class _StopForward(Exception):
    """Raised inside the deepest hook to end the forward pass early."""


def run_resid_hooks(
    model: HookedModel,
    tokens: torch.Tensor,
    readers: Mapping[int, ResidReader],
    *,
    stop_early: bool = True,
) -> None:
    """One forward pass over ``tokens`` ``[B, T]`` calling ``readers[layer](layer, resid)``."""
    deepest = max(readers)

    def make_hook(layer: int, reader: ResidReader) -> Callable[..., None]:
        # a factory, so each closure binds its own layer and reader
        def hook_fn(resid: torch.Tensor, *, hook: Any) -> None:  # noqa: ARG001 - TL contract
            reader(layer, resid)
            if stop_early and layer == deepest:
                raise _StopForward

        return hook_fn

    fwd_hooks = [(hook_name(layer), make_hook(layer, r)) for layer, r in sorted(readers.items())]
    with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
        try:
            model(tokens)
        except _StopForward:
            pass
