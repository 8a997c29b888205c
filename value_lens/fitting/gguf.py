"""llama.cpp control vectors: a :class:`~value_lens.fitting.axis.ValueAxis` as a GGUF file that
``llama-cli``/``llama-server --control-vector FILE`` apply, and such a file read back.

The layout is the one llama.cpp's own ``cvector-generator`` writes and its loader
(``common_control_vector_load``) reads:

* key ``general.architecture`` = ``"controlvector"``; ``controlvector.model_hint`` (a string
  naming the model) and ``controlvector.layer_count`` (int32, the number of direction tensors);
* one 1-D float32 tensor ``direction.<n>`` per steered layer, ``n >= 1``.

**Layer numbering.** llama.cpp adds ``direction.<n>`` to the output of block ``n`` (0-based;
its graph calls ``build_cvec(cur, il)`` after block ``il``'s feed-forward residual add), at every
position. That is value_lens layer ``n`` (the output of block ``n``,
``blocks.n.hook_resid_post``): the numbers are the same. llama.cpp never steers block 0 (its
loader rejects ``direction.0``), so layer 0 cannot be exported.

**Units.** Each tensor is the residual change itself: ``alpha`` (converted to raw units) times
the layer's unit direction, what :func:`value_lens.steer` adds at the same strength with
``mode="add"``. ``unit="percent"`` / ``"sd"`` use the scales the axis stored when it was fitted
(``resid_norm`` / ``proj_std``), as ``steer`` does without a ``calibration``.

Example:
    >>> import tempfile, torch
    >>> from value_lens.fitting.axis import ValueAxis
    >>> axis = ValueAxis(torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0]]))
    >>> path = write_control_vector(axis, tempfile.mkdtemp() + "/v.gguf", layers=[1, 2], alpha=10)
    >>> cv = read_control_vector(path)
    >>> cv.model_hint, sorted(cv.directions), cv.directions[1].tolist()
    ('', [1, 2], [6.0, 8.0])
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from value_lens.errors import (
    ArtifactError,
    AxisMismatchError,
    CalibrationError,
    InputError,
    LayerError,
)

__all__ = [
    "ARCH",
    "GGUF_UNITS",
    "ControlVector",
    "axis_fields",
    "control_vector_arrays",
    "read_control_vector",
    "write_control_vector",
]

#: the ``general.architecture`` of a llama.cpp control-vector file
ARCH = "controlvector"
#: the strength units :func:`write_control_vector` takes (as :data:`value_lens.steering.UNITS`)
GGUF_UNITS = ("raw", "percent", "sd")
_PREFIX = "direction."


@dataclass(frozen=True)
class ControlVector:
    """A control-vector file read back.

    Attributes:
        directions: value_lens layer (= llama.cpp block index) -> float32 vector ``[d_model]``.
        model_hint: the file's ``controlvector.model_hint`` ("" when absent).
        layer_count: the file's ``controlvector.layer_count`` (None when absent).
    """

    directions: dict[int, np.ndarray]
    model_hint: str = ""
    layer_count: int | None = None

    @property
    def d_model(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])


def _raw_alpha(axis: Any, layer: int, alpha: float, unit: str) -> float:
    if unit == "raw":
        return float(alpha)
    table = axis.resid_norm if unit == "percent" else axis.proj_std
    scale = float(table[layer])
    if not math.isfinite(scale) or scale <= 0:
        what = "mean residual norm" if unit == "percent" else "projection sd"
        raise CalibrationError(
            f"the axis stores no {what} for layer {layer}, so a {unit!r} strength cannot be "
            "converted; give alpha in unit='raw', or refit the axis with value_lens "
            "(value-lens build --unit sd also stores projection sds)"
        )
    return float(alpha) * (scale / 100.0 if unit == "percent" else scale)


def control_vector_arrays(
    axis: Any,
    layers: Iterable[int],
    alpha: float | Mapping[int, float] = 1.0,
    unit: str = "raw",
) -> dict[int, np.ndarray]:
    """``{layer: alpha_raw * unit direction}`` for each of ``layers`` (the tensors of the file).

    ``alpha`` is one strength or ``{layer: strength}``, in ``unit`` (see the module docstring).
    """
    if unit not in GGUF_UNITS:
        raise InputError(f"unknown strength unit {unit!r}; use one of {GGUF_UNITS}")
    chosen = sorted({int(x) for x in layers})
    if not chosen:
        raise InputError("no layers to export; pass layers=[...] (value_lens layer numbers)")
    out: dict[int, np.ndarray] = {}
    for layer in chosen:
        if layer == 0:
            raise LayerError(
                "llama.cpp never applies a control vector to block 0 (it rejects direction.0); "
                "export layers 1 and up"
            )
        a = alpha.get(layer) if isinstance(alpha, Mapping) else alpha
        if a is None:
            raise InputError(f"alpha has no strength for layer {layer}; give one per layer")
        vec = axis.direction(layer, unit=True).double() * _raw_alpha(axis, layer, a, unit)
        out[layer] = vec.numpy().astype(np.float32)
    return out


def write_control_vector(
    axis: Any,
    path: str | os.PathLike[str],
    *,
    layers: Iterable[int],
    alpha: float | Mapping[int, float] = 1.0,
    unit: str = "raw",
    model_hint: str | None = None,
) -> Path:
    """Write ``axis`` at ``layers`` as a llama.cpp control vector (atomically); returns the path.

    ``model_hint`` defaults to the axis's ``model_id``.
    """
    import gguf

    arrays = control_vector_arrays(axis, layers, alpha, unit)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch=ARCH)
        writer.add_string(f"{ARCH}.model_hint", axis.model_id if model_hint is None else model_hint)
        writer.add_int32(f"{ARCH}.layer_count", len(arrays))
        for layer, vec in arrays.items():
            writer.add_tensor(f"{_PREFIX}{layer}", vec)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _field_value(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def read_control_vector(path: str | os.PathLike[str]) -> ControlVector:
    """Read a llama.cpp control-vector GGUF, checked the way llama.cpp's loader checks it
    (``direction.<n>`` names with ``n >= 1``, 1-D float32 tensors of one length)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path} as a GGUF file: {exc}") from None
    arch = _field_value(reader, "general.architecture")
    if arch not in (None, ARCH):
        raise ArtifactError(
            f"{path} is a {arch!r} GGUF (a model?), not a control vector ({ARCH!r})"
        )
    directions: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        head, _, num = t.name.partition(".")
        if head + "." != _PREFIX or not num.isdigit() or int(num) == 0:
            raise ArtifactError(f"{path}: tensor {t.name!r} is not direction.<n> with n >= 1")
        vec = np.asarray(t.data)
        if t.tensor_type != gguf.GGMLQuantizationType.F32 or vec.ndim != 1:
            raise ArtifactError(f"{path}: {t.name} must be a 1-D float32 tensor")
        directions[int(num)] = directions.get(int(num), 0) + vec.astype(np.float32)
    if not directions:
        raise ArtifactError(f"{path} holds no direction.<n> tensors")
    if len({v.shape[0] for v in directions.values()}) > 1:
        raise ArtifactError(f"{path}: the direction tensors differ in length")
    count = _field_value(reader, f"{ARCH}.layer_count")
    return ControlVector(
        dict(sorted(directions.items())),
        str(_field_value(reader, f"{ARCH}.model_hint") or ""),
        None if count is None else int(count),
    )


def axis_fields(path: str | os.PathLike[str], model: Any = None) -> dict[str, Any]:
    """The :class:`~value_lens.fitting.axis.ValueAxis` fields of a control-vector file (what
    ``ValueAxis.from_gguf`` builds): directions ``[n_layers, d_model]`` with the file's vectors
    at their layers, n_layers from ``model`` (checked) or the highest layer + 1."""
    import torch

    from value_lens.core.model import d_model, model_id, n_layers

    cv = read_control_vector(path)
    n, mid, top = max(cv.directions) + 1, "", max(cv.directions)
    if model is not None:
        n, mid = n_layers(model), model_id(model)
        if cv.d_model != d_model(model) or top >= n:
            raise AxisMismatchError(
                f"{path} has {cv.d_model}-wide vectors up to layer {top}, but the model has "
                f"d_model {d_model(model)} and {n} blocks; is the file for another model?"
            )
    dirs = torch.zeros(n, cv.d_model)
    for layer, vec in cv.directions.items():
        dirs[layer] = torch.from_numpy(vec)
    return {
        "directions": dirs,
        "layers": tuple(cv.directions),
        "model_id": mid,
        "method": "gguf_import",
        "dataset": f"imported from {Path(path).name}",
        "fit_info": {"model_hint": cv.model_hint, "layer_count": cv.layer_count},
    }
