"""Steering operators: what a steering hook does to the residual, one object per mode.

An operator is a frozen dataclass whose fields are the mode's parameters. Called on the residual
``h`` ``[B, T, d]`` (float32) and the unit direction ``u`` ``[d]`` it returns the steered residual;
the hook then keeps the result only at the selected positions and rounds it to the model's dtype
once. Fields declared with :func:`strength` hold strengths: one number, one per layer, or
``{layer: x}``. :func:`resolve_operator` turns them, once and at the door, into one operator per
layer whose strengths are plain numbers in raw residual units (a ``unit=False`` strength, such as
an angle, is only checked). The first strength field is the *primary* one: the one ``alpha=``, a
:class:`~value_lens.steering.dose.DoseGrid` and the CLI's ``--alpha`` set.

A registered mode is one file defining an ``Operator`` subclass plus one line in
:mod:`value_lens.steering.modes` (``MODES.register(MyMode)``). ``steer(mode=...)`` also takes an
operator object, or a plain callable ``fn(h, u) -> h_new`` (which holds its own strength in raw
units), as steering-vectors takes patch operators.

Example:
    >>> import torch
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Scale(Operator):
    ...     name = "scale"
    ...     alpha: float = strength_field(1.0, unit=False)
    ...
    ...     def __call__(self, h, u):
    ...         return h * self.alpha
    >>> (op,) = resolve_operator(Scale(alpha={3: 2.0}), [3], scale=lambda layer, x: x)
    >>> op.alpha, op(torch.ones(1, 1, 2), torch.ones(2)).tolist()
    (2.0, [[[2.0, 2.0]]])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int

from value_lens.errors import InputError
from value_lens.steering._resolve import check_alpha, per_layer, resolve_alpha_keys

__all__ = [
    "Custom",
    "ModeRegistry",
    "ModeSpec",
    "Operator",
    "StepContext",
    "StrengthSpec",
    "num",
    "resolve_operator",
    "strength_field",
]

StrengthSpec = float | Sequence[float] | Mapping[int, float]
"""One strength for every layer, one per layer (in the layers' order), or ``{layer: x}``."""


def strength_field(default: Any = None, *, unit: bool = True) -> Any:
    """A dataclass field holding a strength (converted by the steering's ``unit`` when ``unit``)."""
    return field(default=default, metadata={"strength": "unit" if unit else "fixed"})


def num(x: Any) -> float:
    """A resolved strength as a float (an operator's strengths are plain numbers once
    :func:`resolve_operator` has run; a per-layer spec here means it has not)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise InputError(
            f"this operator still holds the strength {x!r}; build it through steer(...), which "
            "resolves per-layer strengths, or give one number"
        )
    return float(x)


@dataclass(frozen=True)
class StepContext:
    """Where one forward pass sits in the token stream, for operators that need it.

    Attributes:
        layer: the value_lens layer the hook steers.
        offset: stream positions processed by earlier passes (the KV-cache length).
        prompt_lens, pads: per row, real prompt tokens and left-padding slots (CPU).
    """

    layer: int
    offset: int
    prompt_lens: Int[torch.Tensor, " B"]
    pads: Int[torch.Tensor, " B"]

    def real(self, seq_len: int) -> Int[torch.Tensor, "B T"]:
        """Real-token index of every hook position (negative: a padding slot)."""
        steps = torch.arange(self.offset, self.offset + seq_len)
        return steps[None, :] - self.pads[:, None]

    def generated(self, seq_len: int) -> Int[torch.Tensor, "B T"]:
        """Index of every hook position among its row's generated tokens (negative: prompt)."""
        return self.real(seq_len) - self.prompt_lens[:, None]


@dataclass(frozen=True)
class Operator:
    """Base class of the steering modes (see the module docstring).

    Class attributes:
        name: the registry name (``mode="..."``).
        neutral: the primary strength at which the operator is the identity (``None``: none
            is); a dose grid runs that strength once, unsteered, and shares it across layers.
    """

    name: ClassVar[str] = ""
    neutral: ClassVar[float | None] = None

    @classmethod
    def strength_fields(cls) -> tuple[str, ...]:
        """The fields that hold strengths, in declaration order."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("strength"))

    @classmethod
    def takes_units(cls) -> bool:
        """Whether a strength unit applies (some strength is converted by ``unit``)."""
        return any(f.metadata.get("strength") == "unit" for f in fields(cls))

    @property
    def primary(self) -> str | None:
        """The strength ``alpha=`` and a dose grid set (``None``: the mode takes none)."""
        names = self.strength_fields()
        return names[0] if names else None

    def with_strength(self, value: StrengthSpec) -> Operator:
        """A copy with the primary strength set to ``value`` (unchanged if it has none)."""
        return self if self.primary is None else replace(self, **{self.primary: value})

    def check(self) -> None:
        """Raise an :class:`~value_lens.errors.InputError` if the resolved parameters cannot run."""

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        """The steered residual at every position (float32 in, float32 out)."""
        raise NotImplementedError(f"{type(self).__name__} must define __call__(h, u)")

    def apply(
        self,
        h: Float[torch.Tensor, "B T D"],
        u: Float[torch.Tensor, " D"],
        ctx: StepContext,  # noqa: ARG002 - for operators that need the stream position
    ) -> Float[torch.Tensor, "B T D"]:
        """The hook's entry point; operators that need the stream position override it."""
        return self(h, u)

    def describe(self) -> str:
        """``name(field=value, ...)`` of the strengths, for reprs and logs."""
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.strength_fields())
        return f"{self.name or type(self).__name__}({args})"


@dataclass(frozen=True)
class Custom(Operator):
    """A plain callable ``fn(h, u) -> h_new`` used as an operator (its strength is its own)."""

    name: ClassVar[str] = "custom"
    fn: Callable[..., torch.Tensor]

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        out = self.fn(h, u)
        if not isinstance(out, torch.Tensor) or out.shape != h.shape:
            raise InputError(
                "a steering callable must return a tensor of the residual's shape "
                f"{tuple(h.shape)}; got {getattr(out, 'shape', type(out).__name__)}"
            )
        return out.float()


ModeSpec = str | Operator | Callable[..., torch.Tensor]
"""A registered mode's name, an :class:`Operator`, or a callable ``fn(h, u) -> h_new``."""


def resolve_operator(
    op: Operator,
    layers: Sequence[int],
    *,
    scale: Callable[[int, float], float],
    n_layers: int | None = None,
) -> list[Operator]:
    """One operator per layer with every strength a checked number; ``scale(layer, x)`` converts
    a unit-converted strength to raw units (fixed ones such as angles are only checked), and
    negative ``{layer: x}`` keys count back from ``n_layers``."""
    per: dict[str, list[float | None]] = {}
    for f in fields(op):
        kind, value = f.metadata.get("strength"), getattr(op, f.name)
        if kind is None or value is None:
            continue
        try:
            vals = per_layer(resolve_alpha_keys(value, n_layers), list(layers))
        except InputError as e:
            raise InputError(f"{op.name} {f.name}: {e}") from None
        per[f.name] = [
            scale(layer, x) if kind == "unit" else check_alpha(x, f.name)
            for layer, x in zip(layers, vals, strict=True)
        ]
    out = [replace(op, **{k: v[i] for k, v in per.items()}) for i in range(len(layers))]
    for o in out:
        o.check()
    return out


class ModeRegistry(Mapping[str, type[Operator]]):
    """The registered steering modes: ``name -> Operator subclass`` (see the module docstring)."""

    def __init__(self) -> None:
        self._modes: dict[str, type[Operator]] = {}

    def register(self, cls: type[Operator]) -> type[Operator]:
        """Add a mode (usable as a decorator); its ``name`` must be new and non-empty."""
        if not (isinstance(cls, type) and issubclass(cls, Operator)):
            raise InputError(f"register an Operator subclass, got {cls!r}")
        if not cls.name or cls.name in self._modes:
            raise InputError(f"a mode needs a new, non-empty name; got {cls.name!r}")
        self._modes[cls.name] = cls
        return cls

    def __getitem__(self, name: str) -> type[Operator]:
        try:
            return self._modes[name]
        except KeyError:
            raise InputError(f"unknown steering mode {name!r}; use one of {tuple(self)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._modes

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._modes.get(name, default)

    def unregister(self, name: str) -> type[Operator]:
        """Remove a mode (e.g. a user mode registered for one experiment); returns its class."""
        if name not in self._modes:
            raise InputError(f"no steering mode named {name!r} is registered")
        return self._modes.pop(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modes)

    def __len__(self) -> int:
        return len(self._modes)

    def build(
        self, mode: ModeSpec, alpha: Any = None, params: Mapping[str, Any] | None = None
    ) -> Operator:
        """The operator for ``mode``: ``alpha`` sets a named mode's primary strength (ignored by
        a mode that takes none), ``params`` its other fields."""
        params = dict(params or {})
        if isinstance(mode, Operator) or (callable(mode) and not isinstance(mode, str)):
            if params or alpha is not None:
                raise InputError(
                    "an operator object carries its own strengths; pass no alpha or mode "
                    "parameters with it"
                )
            return mode if isinstance(mode, Operator) else Custom(mode)
        if not isinstance(mode, str):
            raise InputError(f"mode must be a name, an Operator or a callable, got {mode!r}")
        cls = self[mode]
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise InputError(f"mode {mode!r} takes {names or 'no parameters'}, not {unknown}")
        op = cls(**params)
        if alpha is not None and op.primary is not None:
            if op.primary in params:
                raise InputError(f"give {mode!r} its {op.primary} once: alpha= or {op.primary}=")
            op = op.with_strength(alpha)
        return op
