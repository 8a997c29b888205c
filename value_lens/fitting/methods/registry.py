"""The fitting-method registry: one :class:`Fitter` record per method.

A :class:`Fitter` carries everything the rest of the library needs to know about a method:

* ``fit``: ``stats -> (directions [L, D], info)`` (or ``(directions, info, readout)`` for a
  method whose axis is read through a transform, see :mod:`value_lens.fitting.transforms`);
* ``needs``: what :func:`~value_lens.fitting.collect.collect_stats` must keep for it
  (a :class:`~value_lens.fitting.plan.CollectPlan`), and ``split_needs``, what a refit on a
  subset of groups needs when that differs (ridge's pooled moments cannot be restricted);
* ``sweep_weights``: for a direction in the span of the per-group differences
  ``d_g = mean(AFTER_g) - mean(BEFORE_g)``, its weights over the ``d_g``
  (``(gram [G, G], train indices) -> w [G]``), so a sweep refits it from a few small matrix
  products; ``None`` for a method outside that span, which the sweep refits with
  :meth:`Fitter.refit` (``fit(stats.select_groups(train))``) instead;
* ``summary``: one line for the command-line help.

:func:`value_lens.pipeline.options.collect_requirements`, the CLI's ``--method`` help and
:meth:`ValueAxis.fit <value_lens.fitting.axis.ValueAxis.fit>` all read :data:`FITTERS`.
:func:`register_fitter` adds a user method; :func:`get_fitter` also wraps a plain callable.
The registry is the one piece of module state, written at import and by explicit
registrations only.

Example:
    >>> import numpy as np
    >>> def equal_weights(gram, train):
    ...     w = np.zeros(gram.shape[0]); w[train] = 1 / len(train); return w
    >>> f = Fitter("mine", lambda stats: (stats.sum[:, 0, 0], {}), sweep_weights=equal_weights)
    >>> f.sweep_weights(np.eye(3), np.array([0, 2])).tolist()
    [0.5, 0.0, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from value_lens.errors import InputError
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = [
    "FITTERS",
    "FitFn",
    "Fitter",
    "SweepWeights",
    "get_fitter",
    "register_fitter",
    "unregister_fitter",
]

FitFn = Callable[..., Any]
"""``fit(stats, **kwargs) -> (directions [L, D], info)`` or ``(directions, info, readout)``."""
SweepWeights = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(gram [G, G] = d d', train group indices) -> weights [G]`` over the group differences."""


@dataclass(frozen=True)
class Fitter:
    """One fitting method (see the module docs)."""

    name: str
    fit: FitFn
    needs: CollectPlan = field(default_factory=CollectPlan)
    split_needs: CollectPlan | None = None
    sweep_weights: SweepWeights | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InputError(f"a fitter needs a non-empty name, got {self.name!r}")
        if not callable(self.fit):
            raise InputError(f"fitter {self.name!r}: fit must be callable, got {self.fit!r}")

    def __call__(self, stats: ActivationStats, **kwargs: Any) -> Any:
        return self.fit(stats, **kwargs)

    @property
    def per_split_needs(self) -> CollectPlan:
        """What a refit on a subset of groups (:meth:`refit`) needs collected."""
        return self.needs if self.split_needs is None else self.needs | self.split_needs

    def refit(self, stats: ActivationStats, train: Iterable[str], **kwargs: Any) -> Any:
        """The method fitted on the groups ``train`` only: ``fit(stats.select_groups(train))``."""
        return self.fit(stats.select_groups(list(train)), **kwargs)


_REGISTRY: dict[str, Fitter] = {}

FITTERS: Mapping[str, Fitter] = MappingProxyType(_REGISTRY)
"""Every registered method by name (read-only; add with :func:`register_fitter`)."""


def register_fitter(
    fitter: Fitter | FitFn,
    *,
    name: str | None = None,
    needs: CollectPlan | None = None,
    summary: str = "",
    replace: bool = False,
) -> Fitter:
    """Register a method: a :class:`Fitter`, or a fit function with its ``name`` and ``needs``.

    Raises:
        InputError: when the name is taken (pass ``replace=True`` to overwrite it).

    Example:
        >>> f = register_fitter(lambda s: (s.sum[:, 0, 0], {}), name="_doc_first_sum")
        >>> f.name in FITTERS
        True
        >>> unregister_fitter("_doc_first_sum").name in FITTERS
        False
    """
    if not isinstance(fitter, Fitter):
        label = str(name or getattr(fitter, "__name__", ""))
        fitter = Fitter(label, fitter, needs or CollectPlan(), summary=summary)
    elif name is not None or needs is not None:
        raise InputError("name= and needs= apply to a plain fit function, not to a Fitter")
    if fitter.name in _REGISTRY and not replace:
        raise InputError(
            f"a fitting method named {fitter.name!r} is already registered; pick another name "
            "or pass replace=True"
        )
    _REGISTRY[fitter.name] = fitter
    return fitter


def unregister_fitter(name: str) -> Fitter:
    """Remove a registered method (e.g. a user method registered for one experiment)."""
    if name not in _REGISTRY:
        raise InputError(f"no fitting method named {name!r} is registered")
    return _REGISTRY.pop(name)


def get_fitter(method: str | Fitter | FitFn) -> Fitter:
    """The :class:`Fitter` for a registered name, a Fitter, or a plain fit function."""
    if isinstance(method, Fitter):
        return method
    if isinstance(method, str):
        if method not in _REGISTRY:
            raise InputError(f"unknown fit method {method!r}; choose one of {sorted(_REGISTRY)}")
        return _REGISTRY[method]
    if callable(method):
        return Fitter(getattr(method, "__name__", "custom") or "custom", method)
    raise InputError(f"method must be a name, a Fitter or a callable, got {type(method)}")


def as_directions(out: Any, name: str) -> tuple[torch.Tensor, dict[str, Any], Any]:
    """``(directions, info, readout)`` from what a fit function returned (checked)."""
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise InputError(
            f"fitting method {name!r} must return (directions, info) or (directions, info, "
            f"readout), got {type(out).__name__}"
        )
    dirs, info = out[0], out[1]
    if not isinstance(dirs, torch.Tensor) or dirs.ndim != 2 or not isinstance(info, dict):
        raise InputError(
            f"fitting method {name!r} must return directions as a [layers, d_model] tensor and "
            "info as a dict"
        )
    return dirs, info, out[2] if len(out) == 3 else None
