"""ValueAxis.restrict: an axis cut down to some of its fitted layers (the pipeline's ``fit``
step uses it when the statistics hold more layers than asked for)."""

import math

import pytest
import torch

from value_lens import ValueAxis
from value_lens.errors import LayerError
from value_lens.fitting.transforms import LeaceEraser, Standardizer

N, D = 3, 4


def _axis(readout=None, layers=()) -> ValueAxis:
    gen = torch.Generator().manual_seed(0)
    return ValueAxis(
        torch.randn(N, D, generator=gen),
        layers=layers,
        model_id="m",
        method="mean_diff",
        dataset_hash="h",
        fit_info={"k": 1},
        resid_norm=torch.tensor([1.0, 2.0, 3.0]),
        proj_std=torch.tensor([0.1, 0.2, 0.3]),
        readout=readout,
    )


def _standardizer() -> Standardizer:
    gen = torch.Generator().manual_seed(1)
    scale = torch.rand(N, D, generator=gen, dtype=torch.float64) + 0.5
    scale[1, 2] = 0.0  # a sink dimension
    return Standardizer(torch.randn(N, D, generator=gen, dtype=torch.float64), scale)


def _eraser() -> LeaceEraser:
    gen = torch.Generator().manual_seed(2)
    t = [torch.randn(N, D, *f, generator=gen, dtype=torch.float64) for f in ((), (1,), (1,))]
    return LeaceEraser(*t, features=("pos",))


def test_restrict_keeps_the_layers_and_their_scales():
    axis = _axis()
    part = axis.restrict([2, 0])
    assert part.layers == (0, 2)
    assert torch.equal(part.directions[[0, 2]], axis.directions[[0, 2]])
    assert torch.equal(part.directions[1], torch.zeros(D))
    assert part.resid_norm is not None and part.proj_std is not None
    assert part.resid_norm[[0, 2]].tolist() == [1.0, 3.0] and math.isnan(part.resid_norm[1])
    assert torch.allclose(part.proj_std[[0, 2]], torch.tensor([0.1, 0.3]))
    assert math.isnan(part.proj_std[1])
    for name in ("model_id", "method", "dataset_hash", "fit_info", "hook", "convention"):
        assert getattr(part, name) == getattr(axis, name)
    with pytest.raises(LayerError, match="no fitted direction"):
        part.direction(1)
    assert axis.layers == (0, 1, 2)  # the original is left as it was


def test_restrict_takes_an_int_and_negative_layers():
    axis = _axis()
    assert axis.restrict(-1).layers == (2,)
    assert axis.restrict([0, -3, 1]).layers == (0, 1)
    assert axis.restrict([0, 1, 2]).layers == (0, 1, 2)


@pytest.mark.parametrize("make", [_standardizer, _eraser], ids=["standardize", "leace"])
def test_restrict_cuts_the_readout_transform_to_the_same_layers(make, tmp_path):
    axis = _axis(make())
    part = axis.restrict([0, 2])
    assert type(part.readout) is type(axis.readout)
    assert part.readout is not None and axis.readout is not None
    assert part.readout.info() == axis.readout.info()
    for name, t in part.readout.tensors().items():
        full = axis.readout.tensors()[name]
        assert t.shape == full.shape
        assert torch.equal(t[[0, 2]], full[[0, 2]].double())
        assert torch.count_nonzero(t[1]) == 0  # no transform where there is no direction
    h = torch.randn(5, D, generator=torch.Generator().manual_seed(3))
    for layer in (0, 2):
        for got, want in zip(part.read(h, layer), axis.read(h, layer), strict=True):
            torch.testing.assert_close(got, want)
    with pytest.raises(LayerError):
        part.read(h, 1)
    back = ValueAxis.load(part.save(tmp_path / "part.safetensors"))
    assert back.layers == (0, 2) and back.readout is not None
    for name, t in back.readout.tensors().items():
        torch.testing.assert_close(t.double(), part.readout.tensors()[name])


def test_restrict_names_a_layer_the_axis_lacks():
    axis = _axis(layers=(0, 2))
    with pytest.raises(LayerError, match=r"layers \[1\] have no fitted direction.*\[0, 2\]"):
        axis.restrict([0, 1])
    with pytest.raises(LayerError, match="out of range"):
        axis.restrict([5])
    with pytest.raises(LayerError, match="no layers"):
        axis.restrict([])
