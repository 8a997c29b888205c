"""The fast decoding path: HF ``generate`` on the modules a ``TransformerBridge`` wraps.

The bridge's own decoding loop (``TransformerBridge.generate``) costs about 1.25x a plain HF
``generate`` on the same weights (issue 13). The cost is the loop and the wrapper modules, not
the hooks. :func:`hf_decoding` removes both for the duration of one call:

* every bridge component in the HF model is swapped back for the HF module it wraps
  (``_original_component``), so the forward pass is HF's own, with its KV cache and its
  attention-mask handling; the swap is undone on the way out, on errors too;
* eager attention, which the bridge boots so that its attention hooks see the pattern, becomes
  PyTorch's fused SDPA attention (no hook reads the pattern on this path);
* the model's own ``generation_config`` (sampling defaults such as ``top_k`` or a repetition
  penalty, which the bridge's loop never reads) is set aside, so only the settings value_lens
  passes apply;
* the hook points value_lens uses, ``blocks.{i}.hook_resid_pre`` (the block's input) and
  ``blocks.{i}.hook_resid_post`` (its output), are called from torch hooks on decoder layer
  ``i`` whenever hooks are installed on them, so steering (:mod:`value_lens.steering.steer`)
  and the monitor (:mod:`value_lens.analysis.monitor`) run unchanged: their
  ``fn(tensor, *, hook)`` functions see the same tensors as on the bridge's path.

:func:`fast_path_blocker` says why the fast path cannot run on a model as it stands (``None``
when it can): not a bridge, the bridge's compatibility mode (processed weights live in the
bridge, not in the HF modules), or hooks on any other hook point. ``generate`` then decodes
with the bridge's loop. ``tests/core/test_fastpath.py`` proves the two paths equal: the same tokens
under greedy decoding and logits within 1e-5, with and without steering and the monitor, with
the KV cache and left padding.

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> fast_path_blocker(model) is None
    True
    >>> with hf_decoding(model) as hf:
    ...     type(hf.model.layers[0]).__name__
    'Qwen3DecoderLayer'
    >>> type(model.original_model.model.layers[0]).__name__
    'BlockBridge'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from value_lens.core.protocols import HookedModel

__all__ = ["fast_path_blocker", "hf_decoding"]


def _hooked_points(model: HookedModel) -> dict[str, Any]:
    """``{name: hook point}`` of every hook point that has forward hooks installed now."""
    return {
        name: hp
        for name, hp in model.hook_dict.items()
        if len(getattr(hp, "_forward_hooks", {})) > 0
    }


def fast_path_blocker(model: HookedModel) -> str | None:
    """Why :func:`hf_decoding` cannot stand in for the bridge's loop now; ``None`` if it can."""
    hf = getattr(model, "original_model", None)
    blocks = getattr(model, "blocks", None)
    if hf is None or blocks is None or not hasattr(hf, "generate"):
        return "the model is not a TransformerBridge over an HF causal LM"
    if getattr(model, "compatibility_mode", False):
        return (
            "the bridge is in compatibility mode (its processed weights live in the bridge, "
            "not in the HF modules)"
        )
    routed = {id(hp) for b in blocks for hp in (b.hook_in, b.hook_out)}
    for name, hp in _hooked_points(model).items():
        if id(hp) not in routed:
            return f"hooks are installed on {name}, which only the bridge's own loop runs"
    return None


def _unwrap(module: torch.nn.Module, swapped: list[tuple[torch.nn.Module, str, Any]]) -> None:
    for name, child in list(module._modules.items()):
        original = getattr(child, "_original_component", None)
        if isinstance(original, torch.nn.Module):
            module._modules[name] = original
            swapped.append((module, name, child))
            child = original
        if child is not None:
            _unwrap(child, swapped)


def _routes(model: Any) -> list[tuple[int, str, Any]]:
    """``(layer, "pre"|"post", hook point)`` for the resid hook points that carry hooks."""
    hooked = set(map(id, _hooked_points(model).values()))
    out = []
    for i, block in enumerate(model.blocks):
        for side, hp in (("pre", block.hook_in), ("post", block.hook_out)):
            if id(hp) in hooked:
                out.append((i, side, hp))
    return out


def _route(routes: list[tuple[int, str, Any]], layers: Any) -> list[Any]:
    """Torch hooks on the HF decoder layers that call the bridge's resid hook points."""
    return [
        layers[i].register_forward_pre_hook(_pre(hp), with_kwargs=True)
        if side == "pre"
        else layers[i].register_forward_hook(_post(hp))
        for i, side, hp in routes
    ]


def _pre(hp: Any) -> Any:
    def pre(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            return (hp(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hp(kwargs["hidden_states"])}

    return pre


def _post(hp: Any) -> Any:
    def post(_mod: Any, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (hp(output[0]), *output[1:])
        return hp(output)

    return post


def _fast_attention(hf: Any) -> str | None:
    """Switch eager attention (which the bridge boots for its attention hooks) to SDPA; returns
    the implementation to restore, or None when nothing changed."""
    config = getattr(hf, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current != "eager" or not getattr(hf, "_supports_sdpa", False):
        return None
    hf.set_attn_implementation("sdpa")
    return current


@contextlib.contextmanager
def hf_decoding(model: HookedModel) -> Iterator[Any]:
    """Inside: the bridge's HF model with its own modules back in place (yielded), the resid
    hook points that carry hooks called from its decoder layers. Undone on the way out."""
    blocker = fast_path_blocker(model)
    if blocker is not None:
        from value_lens.errors import InputError

        raise InputError(f"the fast decoding path cannot run: {blocker}; use backend='bridge'")
    bridge: Any = model
    hf = bridge.original_model
    swapped: list[tuple[torch.nn.Module, str, Any]] = []
    handles: list[Any] = []
    routes = _routes(model)  # read before the swap: model.blocks is the HF layer list
    own_config = getattr(hf, "generation_config", None)
    attn: str | None = None
    try:
        if own_config is not None:  # HF fills unset settings from it (top_k, penalties, EOS)
            from transformers import GenerationConfig

            hf.generation_config = GenerationConfig()
        _unwrap(hf, swapped)
        attn = _fast_attention(hf)
        layers = hf.get_decoder().layers if hasattr(hf, "get_decoder") else hf.model.layers
        handles = _route(routes, layers)
        yield hf
    finally:
        if own_config is not None:
            hf.generation_config = own_config
        if attn is not None:
            hf.set_attn_implementation(attn)
        for h in handles:
            h.remove()
        for parent, name, child in reversed(swapped):
            parent._modules[name] = child
