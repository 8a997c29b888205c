"""The model contract: what value_lens uses of the TransformerLens hook API, as Protocols.

value_lens works on any model with TransformerLens hook points, not only on the 4.x
``TransformerBridge``: a 3.x ``HookedTransformer`` or any ``HookedRootModule`` with the same hook
names (``blocks.{i}.hook_resid_post``) fits. These Protocols say what that means, so a type
checker can tell a model from a tokenizer and a reader can see the whole contract in one place.

* :class:`HookedModel`: collection, readout and steering. ``cfg`` (``n_layers``, ``d_model``,
  ``n_ctx``; ``model_name``, ``device`` and ``default_prepend_bos`` are read when present), the
  HF ``tokenizer``, ``hook_dict`` and ``hooks(fwd_hooks=...)`` for hook points, ``run_with_cache``,
  a forward call on ``[batch, pos]`` token ids, and torch's ``parameters()``/``modules()``.
* :class:`GenerativeModel`: a :class:`HookedModel` that can also ``to_tokens`` and ``generate``
  (the bridge and ``HookedTransformer``); seeded generation and the steering evaluations need it.

Both are ``runtime_checkable``: ``isinstance`` checks only that the members exist (the test
suite's beartype checks do that for every annotated ``model`` parameter). Members are typed
loosely on purpose: the implementations differ in signature detail but agree in use.

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> isinstance(model, HookedModel), isinstance(model, GenerativeModel)
    (True, True)
    >>> isinstance(model.tokenizer, HookedModel)
    False
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "GenerationMonitor",
    "GenerativeModel",
    "HookedModel",
    "ModelConfig",
    "SteerActivation",
]


@runtime_checkable
class ModelConfig(Protocol):
    """The config fields value_lens reads (``model.cfg``); ``n_ctx`` may be raised in place."""

    n_layers: int
    d_model: int
    n_ctx: int


@runtime_checkable
class HookedModel(Protocol):
    """A model with TransformerLens hook points (see the module docstring).

    Properties (not plain attributes) keep the members covariant, so a model whose ``cfg`` is a
    subclass, or whose ``hook_dict`` is a ``dict[str, HookPoint]``, still conforms.
    """

    @property
    def cfg(self) -> ModelConfig: ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def hook_dict(self) -> Mapping[str, Any]: ...

    def hooks(self, *args: Any, **kwargs: Any) -> AbstractContextManager[Any]: ...

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def modules(self) -> Iterator[torch.nn.Module]: ...


@runtime_checkable
class GenerativeModel(HookedModel, Protocol):
    """A :class:`HookedModel` that tokenizes and generates (``TransformerBridge``, 3.x
    ``HookedTransformer``)."""

    def to_tokens(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class SteerActivation(Protocol):
    """What ``generate(steer=...)`` needs: hooks installed for one batch with known geometry."""

    def activate(
        self, *, prompt_lens: torch.Tensor, pads: torch.Tensor
    ) -> AbstractContextManager[Any]: ...


@runtime_checkable
class GenerationMonitor(Protocol):
    """What ``generate(monitor=...)`` needs: read-only hooks installed for one batch.

    It yields a run with ``criterion`` (a ``StoppingCriteria`` or ``None``), ``stopped()``
    (per row: tokens kept if a stop rule ended it, else ``None``) and ``traces(token_ids)``.
    """

    def activate(
        self,
        model: Any,
        *,
        prompt_lens: torch.Tensor,
        pads: torch.Tensor,
        rows: Sequence[int],
        max_new_tokens: int,
        stop_ids: Sequence[int],
        stop_when: Any,
    ) -> AbstractContextManager[Any]: ...
