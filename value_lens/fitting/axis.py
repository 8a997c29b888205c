"""The :class:`ValueAxis`: one direction per layer plus what it is, where it came from and how
strong the residual stream is there.

Directions are stored unnormalised in the value_lens layer convention (block outputs, see
:mod:`value_lens.core.conventions`). Rows of layers that were not fitted are zero and listed as
missing in ``layers``; asking for them raises a :class:`~value_lens.errors.LayerError`.

Example:
    >>> import torch
    >>> axis = ValueAxis(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), layers=(0, 1))
    >>> axis.unit().directions[0].tolist()
    [0.6000000238418579, 0.800000011920929]
    >>> (2 * axis - axis).cosine(axis).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float

from value_lens._version import __version__
from value_lens.core.conventions import CONVENTION, HOOK_TEMPLATE, resolve_layer
from value_lens.core.io import load_artifact, save_artifact
from value_lens.core.model import d_model as model_d_model
from value_lens.core.model import model_id as model_model_id
from value_lens.core.model import n_layers as model_n_layers
from value_lens.core.protocols import HookedModel
from value_lens.errors import ArtifactError, AxisMismatchError, InputError, LayerError
from value_lens.fitting.fit_fields import fitted_fields, restricted_fields
from value_lens.fitting.methods import FitFn, Fitter
from value_lens.fitting.official import official_fields
from value_lens.fitting.stats import ActivationStats
from value_lens.fitting.transforms import Readout, readout_from_artifact

__all__ = ["ValueAxis"]

_META_FIELDS = (
    "model_id",
    "revision",
    "method",
    "hook",
    "convention",
    "dataset",
    "dataset_hash",
    "fit_info",
    "library_version",
)


@dataclass(frozen=True, eq=False)
class ValueAxis:
    """A value direction for every layer of a model.

    Attributes:
        directions: ``[n_layers, d_model]`` float32; zero rows for layers not fitted.
        layers: the fitted layers (value_lens convention: output of block ``i``).
        model_id / revision: the model the axis belongs to.
        method / fit_info: how it was fitted.
        dataset / dataset_hash: what it was fitted on.
        resid_norm: ``[n_layers]`` mean residual L2 norm on the fitting data (NaN if unknown);
            the unit of percent-of-norm steering strengths.
        proj_std: ``[n_layers]`` sd of the projection on the unit direction (NaN if unknown).
        readout: a transform residuals go through before they are projected (the LEACE eraser
            of ``method="erased"``, the standardiser of ``"standardized"``; see
            :mod:`value_lens.fitting.transforms`), or ``None``. Steering never uses it: it adds
            the unit ``directions`` row in residual space, in the usual units.
    """

    directions: Float[torch.Tensor, "L D"]
    layers: tuple[int, ...] = ()
    model_id: str = ""
    revision: str | None = None
    method: str = "manual"
    hook: str = HOOK_TEMPLATE
    convention: str = CONVENTION
    dataset: str = ""
    dataset_hash: str = ""
    fit_info: dict[str, Any] = field(default_factory=dict)
    resid_norm: torch.Tensor | None = None
    proj_std: torch.Tensor | None = None
    library_version: str = __version__
    readout: Readout | None = None

    def __post_init__(self) -> None:
        d = torch.as_tensor(self.directions).detach().to(torch.float32).cpu()
        if d.ndim != 2:
            raise InputError(f"directions must be [n_layers, d_model], got shape {tuple(d.shape)}")
        object.__setattr__(self, "directions", d)
        layers = (
            tuple(range(d.shape[0]))
            if not self.layers
            else tuple(sorted(int(x) for x in self.layers))
        )
        for layer in layers:
            resolve_layer(layer, d.shape[0])
        object.__setattr__(self, "layers", layers)
        if not bool(torch.isfinite(d).all()):
            raise InputError("directions contain NaN or Inf; refit or check the source data")
        for name in ("resid_norm", "proj_std"):
            v = getattr(self, name)
            v = (
                torch.full((d.shape[0],), float("nan"))
                if v is None
                else torch.as_tensor(v, dtype=torch.float32).reshape(-1)
            )
            if v.shape[0] != d.shape[0]:
                raise InputError(f"{name} needs one value per layer ({d.shape[0]})")
            object.__setattr__(self, name, v)
        if self.readout is not None and any(
            t.shape[:2] != (d.shape[0], d.shape[1]) for t in self.readout.tensors().values()
        ):
            raise InputError(
                f"the readout transform needs [n_layers, d_model, ...] = [{d.shape[0]}, "
                f"{d.shape[1]}, ...] tensors; it belongs to another axis or model"
            )

    # ------------------------------------------------------------------ facts
    @property
    def n_layers(self) -> int:
        return int(self.directions.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.directions.shape[1])

    def __repr__(self) -> str:
        ls = self.layers
        span = f"{ls[0]}..{ls[-1]}" if len(ls) > 2 else ",".join(map(str, ls))
        return (
            f"ValueAxis(model_id={self.model_id!r}, method={self.method!r}, layers={span} of "
            f"{self.n_layers}, d_model={self.d_model})"
        )

    def direction(self, layer: int, *, unit: bool = True) -> Float[torch.Tensor, " D"]:
        """The direction at one layer (unit length by default)."""
        layer = resolve_layer(layer, self.n_layers)
        if layer not in self.layers:
            raise LayerError(
                f"layer {layer} has no fitted direction; fitted layers: {list(self.layers)}"
            )
        v = self.directions[layer]
        if unit:
            n = v.norm()
            if float(n) == 0:
                raise LayerError(f"the direction at layer {layer} is zero; it cannot be normalised")
            v = v / n
        return v

    def replace(self, **changes: Any) -> ValueAxis:
        return dataclasses.replace(self, **changes)

    def restrict(self, layers: int | Sequence[int]) -> ValueAxis:
        """This axis with only ``layers`` fitted (a :class:`LayerError` for one it lacks): other
        rows of the directions and of the readout transform zeroed, their scales NaN.

        Example:
            >>> axis = ValueAxis(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
            >>> one = axis.replace(resid_norm=torch.tensor([5.0, 2.0])).restrict(-1)
            >>> one.layers, one.directions.tolist(), one.resid_norm.tolist()
            ((1,), [[0.0, 0.0], [0.0, 2.0]], [nan, 2.0])
        """
        return self.replace(**restricted_fields(self, layers))

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        stats: ActivationStats,
        method: str | Fitter | FitFn = "mean_diff",
        *,
        n_layers: int | None = None,
        **kwargs: Any,
    ) -> ValueAxis:
        """Fit a direction for every layer in ``stats`` with a registered method
        (:data:`value_lens.fitting.methods.FITTERS`), a :class:`Fitter` or a fit function.

        ``kwargs`` go to the method. ``n_layers`` defaults to the model's layer count recorded
        by :func:`collect_stats`. ``proj_std`` is measured on the second moments when the stats
        hold them (pooled or per-group class moments), else left NaN.
        """
        return cls(**fitted_fields(stats, method, n_layers, kwargs))

    def read(
        self, resid: Float[torch.Tensor, "... D"], layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(projection, cosine)`` of residuals on the axis at ``layer``, through the readout
        transform when the axis has one (fp32, on ``resid``'s device).

        Example:
            >>> axis = ValueAxis(torch.tensor([[0.0, 2.0]]))
            >>> [t.tolist() for t in axis.read(torch.tensor([[3.0, 4.0]]), 0)]
            [[4.0], [0.800000011920929]]
        """
        v = self.direction(layer, unit=False).to(resid.device, torch.float64)
        h = resid.double()
        if self.readout is not None:
            h = self.readout.apply(h, layer)
            v = self.readout.read_direction(v, layer)
        n = v.norm()
        if float(n) == 0:
            raise LayerError(f"the readout direction at layer {layer} is zero")
        p = h @ (v / n)
        return p.float(), (p / h.norm(dim=-1).clamp_min(1e-12)).float()

    # ------------------------------------------------------------------ algebra
    def unit(self) -> ValueAxis:
        """Each fitted direction scaled to length 1."""
        n = self.directions.norm(dim=-1, keepdim=True)
        return self.replace(
            directions=torch.where(n > 0, self.directions / n.clamp_min(1e-30), 0.0)
        )

    def _check_same_space(self, other: ValueAxis) -> None:
        if (self.n_layers, self.d_model) != (other.n_layers, other.d_model):
            raise AxisMismatchError(
                f"axes have shapes {self.n_layers}x{self.d_model} and {other.n_layers}x{other.d_model}; "
                "they belong to different models"
            )

    def _combine(self, other: ValueAxis, sign: float) -> ValueAxis:
        self._check_same_space(other)
        if (self.readout is not None or other.readout is not None) and (
            self.readout is not other.readout
        ):
            raise AxisMismatchError(
                "cannot add or subtract axes read through different transforms (an erased or "
                "standardized axis); drop the transform first with axis.replace(readout=None)"
            )
        layers = tuple(sorted(set(self.layers) & set(other.layers)))
        if not layers:
            raise LayerError("the two axes share no fitted layer")
        mask = torch.zeros(self.n_layers, 1)
        mask[list(layers)] = 1
        return self.replace(
            directions=(self.directions + sign * other.directions) * mask,
            layers=layers,
            method="combined",
        )

    def __add__(self, other: ValueAxis) -> ValueAxis:
        return self._combine(other, 1.0)

    def __sub__(self, other: ValueAxis) -> ValueAxis:
        return self._combine(other, -1.0)

    def __neg__(self) -> ValueAxis:
        return self.replace(directions=-self.directions)

    def __mul__(self, k: float) -> ValueAxis:
        return self.replace(directions=self.directions * float(k))

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> ValueAxis:
        return self.replace(directions=self.directions / float(k))

    def cosine(self, other: ValueAxis) -> Float[torch.Tensor, " L"]:
        """Per-layer cosine similarity with ``other`` (NaN where either is not fitted)."""
        self._check_same_space(other)
        a, b = self.directions.double(), other.directions.double()
        cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)
        both = torch.zeros(self.n_layers, dtype=torch.bool)
        both[list(set(self.layers) & set(other.layers))] = True
        return torch.where(both, cos, float("nan")).float()

    def layer_cosine_matrix(self) -> Float[torch.Tensor, "K K"]:
        """Cosine between the directions of every pair of fitted layers (in ``self.layers`` order)."""
        u = self.unit().directions[list(self.layers)].double()
        return (u @ u.T).float()

    # ------------------------------------------------------------------ model checks
    def check_compatible(self, model: HookedModel, *, check_model_id: bool = True) -> None:
        """Raise :class:`AxisMismatchError` unless this axis fits ``model``."""
        n, d, mid = model_n_layers(model), model_d_model(model), model_model_id(model)
        if d != self.d_model:
            raise AxisMismatchError(
                f"the axis has d_model {self.d_model} but the model has {d}; it was fitted on "
                f"{self.model_id or 'another model'}: refit it on this model"
            )
        if n != self.n_layers:
            raise AxisMismatchError(
                f"the axis has {self.n_layers} layers but the model has {n}; refit it on this model"
            )
        if check_model_id and self.model_id and mid and mid != self.model_id:
            raise AxisMismatchError(
                f"the axis was fitted on {self.model_id!r} but the model is {mid!r}; refit, or pass "
                "check_model_id=False if they really share weights (e.g. a local copy)"
            )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically write one safetensors file with the metadata as JSON in its header."""
        meta = {k: getattr(self, k) for k in _META_FIELDS}
        meta["layers"] = list(self.layers)
        assert self.resid_norm is not None and self.proj_std is not None  # set in __post_init__
        tensors = {
            "directions": self.directions,
            "resid_norm": self.resid_norm,
            "proj_std": self.proj_std,
        }
        if self.readout is not None:
            meta["readout"] = {"kind": self.readout.kind, "info": self.readout.info()}
            tensors.update({f"readout.{k}": v for k, v in self.readout.tensors().items()})
        return save_artifact(path, tensors, kind="ValueAxis", meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ValueAxis:
        """Load an axis saved by :meth:`save` (or, for a ``.npy`` path, see :meth:`from_official`)."""
        if str(path).endswith(".npy"):
            raise ArtifactError(
                f"{path} is a bare .npy array; use ValueAxis.from_official(path, model)"
            )
        t, meta = load_artifact(path, kind="ValueAxis")
        kwargs = {k: meta[k] for k in _META_FIELDS if k in meta}
        readout = None
        if meta.get("readout"):
            parts = {k.split(".", 1)[1]: v for k, v in t.items() if k.startswith("readout.")}
            readout = readout_from_artifact(meta["readout"]["kind"], parts, meta["readout"]["info"])
        return cls(
            t["directions"],
            layers=tuple(meta["layers"]),
            resid_norm=t["resid_norm"],
            proj_std=t["proj_std"],
            readout=readout,
            **kwargs,
        )

    def to_gguf(
        self,
        path: str | os.PathLike[str],
        *,
        layers: int | Sequence[int] | None = None,
        alpha: float | Mapping[int, float] = 1.0,
        unit: str = "raw",
    ) -> Path:
        """Write a llama.cpp control vector (``--control-vector FILE``): per layer, ``alpha`` in
        ``unit`` times the unit direction, the residual change ``steer`` adds at that strength.

        Layer ``i`` (output of block ``i``) is llama.cpp's ``direction.i``; layer 0 cannot be
        exported. ``layers`` defaults to every fitted layer but 0. See
        :mod:`value_lens.fitting.gguf`.
        """
        from value_lens.fitting.gguf import write_control_vector

        chosen = [x for x in self.layers if x > 0] if layers is None else layers
        chosen = [chosen] if isinstance(chosen, int) else chosen
        picked = [resolve_layer(x, self.n_layers) for x in chosen]
        return write_control_vector(self, path, layers=picked, alpha=alpha, unit=unit)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str], model: HookedModel | None = None) -> ValueAxis:
        """Read a llama.cpp control-vector GGUF (``direction.<n>`` -> layer ``n``); the vectors
        are kept as written (their length is the strength). With ``model`` the axis gets its
        depth and id, and its width is checked; without, its depth is the highest layer + 1."""
        from value_lens.fitting.gguf import axis_fields

        return cls(**axis_fields(path, model))

    @classmethod
    def from_official(
        cls,
        npy_path: str | os.PathLike[str],
        model: HookedModel | None = None,
        *,
        n_layers: int | None = None,
        d_model: int | None = None,
        model_id: str = "Qwen/Qwen3-8B",
        last_row: str = "drop",
    ) -> ValueAxis:
        """Import the paper's released ``value_axis.npy`` (rows in HF ``hidden_states`` order).

        Row 0 (embeddings) is dropped; row ``k`` for ``1 <= k < n_layers`` becomes layer ``k-1``.
        The last row is post-final-norm, which no block output equals: ``last_row="drop"`` leaves
        the last layer unfitted; ``"keep"`` uses it anyway (recorded in ``fit_info``).
        """
        if model is not None:
            n_layers, d_model = model_n_layers(model), model_d_model(model)
            model_id = model_model_id(model) or model_id
        fields = official_fields(npy_path, n_layers=n_layers, d_model=d_model, last_row=last_row)
        return cls(**fields, model_id=model_id)
