"""llama.cpp control-vector export and import (value_lens.fitting.gguf, ValueAxis.to_gguf/from_gguf).

Files are read back with the ``gguf`` package's own reader (not value_lens's), and the residual
change a file encodes is checked against value_lens's ``steer`` through an independent oracle:
an HF forward hook that adds ``direction.<n>`` to the output of decoder layer ``n``, which is
where llama.cpp's graph adds it (``build_cvec(cur, il)`` after block ``il``).
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from value_lens.errors import (
    ArtifactError,
    AxisMismatchError,
    CalibrationError,
    InputError,
    LayerError,
)
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.gguf import ARCH, GGUF_UNITS, read_control_vector

N_LAYERS, D = 4, 64


def _axis(**kw) -> ValueAxis:
    gen = torch.Generator().manual_seed(7)
    dirs = torch.randn(N_LAYERS, D, generator=gen) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    fields = {
        "model_id": "value_lens/tiny-qwen3-L4-d64",
        "resid_norm": torch.tensor([10.0, 20.0, 40.0, 80.0]),
        "proj_std": torch.tensor([1.0, 1.5, 2.5, float("nan")]),
    }
    return ValueAxis(dirs, **{**fields, **kw})


def _fields(path) -> tuple[dict, dict]:
    r = gguf.GGUFReader(str(path))
    keys = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: t for t in r.tensors}
    return keys, tensors


def test_every_key_and_tensor_as_llama_cpp_reads_them(tmp_path):
    axis = _axis()
    path = axis.to_gguf(tmp_path / "v.gguf", layers=[1, 3], alpha=2.5, unit="raw")
    keys, tensors = _fields(path)
    assert keys == {
        "general.architecture": "controlvector",
        "controlvector.model_hint": "value_lens/tiny-qwen3-L4-d64",
        "controlvector.layer_count": 2,
    }
    assert sorted(tensors) == ["direction.1", "direction.3"]
    for layer in (1, 3):
        t = tensors[f"direction.{layer}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert list(t.shape) == [D]
        d = axis.directions[layer].double().numpy()
        np.testing.assert_allclose(np.asarray(t.data), 2.5 * d / np.linalg.norm(d), rtol=1e-6)


@pytest.mark.parametrize(
    ("unit", "scale"),
    [("raw", lambda _a, _i: 1.0), ("percent", lambda a, i: a.resid_norm[i] / 100), ("sd", None)],
)
def test_units_are_those_of_steer(tmp_path, unit, scale):
    axis = _axis()
    layers = [1, 2]
    path = axis.to_gguf(tmp_path / "v.gguf", layers=layers, alpha=8.0, unit=unit)
    cv = read_control_vector(path)
    for i in layers:
        s = float(axis.proj_std[i]) if scale is None else float(scale(axis, i))
        u = axis.directions[i].double() / axis.directions[i].double().norm()
        np.testing.assert_allclose(cv.directions[i], (8.0 * s * u).numpy(), rtol=1e-6)


def test_unit_names_match_steering():
    from value_lens.steering.strength import UNITS

    assert tuple(GGUF_UNITS) == tuple(UNITS)


def test_a_missing_scale_is_a_calibration_error(tmp_path):
    with pytest.raises(CalibrationError, match="projection sd for layer 3"):
        _axis().to_gguf(tmp_path / "v.gguf", layers=[3], alpha=1.0, unit="sd")
    with pytest.raises(InputError, match="unknown strength unit"):
        _axis().to_gguf(tmp_path / "v.gguf", layers=[3], unit="sigma")
    assert not (tmp_path / "v.gguf").exists()


def test_layer_zero_and_unfitted_layers_are_refused(tmp_path):
    with pytest.raises(LayerError, match="block 0"):
        _axis().to_gguf(tmp_path / "v.gguf", layers=[0, 1])
    partial = _axis(layers=(1, 2))
    with pytest.raises(LayerError, match="no fitted direction"):
        partial.to_gguf(tmp_path / "v.gguf", layers=[3])
    # the default: every fitted layer but 0, in the file as direction.<layer>
    _, tensors = _fields(_axis(layers=(0, 2, 3)).to_gguf(tmp_path / "d.gguf"))
    assert sorted(tensors) == ["direction.2", "direction.3"]
    _, tensors = _fields(_axis().to_gguf(tmp_path / "n.gguf", layers=-1))
    assert sorted(tensors) == ["direction.3"]


def test_from_gguf_round_trip(tmp_path):
    from value_lens.testing import tiny_qwen3

    model = tiny_qwen3(n_layers=N_LAYERS, d_model=D)
    axis = _axis()
    path = axis.to_gguf(tmp_path / "v.gguf", layers=[1, 2, 3], alpha=3.0)
    back = ValueAxis.from_gguf(path, model)
    assert back.layers == (1, 2, 3) and back.n_layers == N_LAYERS and back.d_model == D
    assert back.method == "gguf_import" and back.fit_info["layer_count"] == 3
    assert back.fit_info["model_hint"] == axis.model_id
    np.testing.assert_allclose(back.directions[1:].norm(dim=-1).numpy(), [3.0, 3.0, 3.0], 1e-6)
    assert float(back.directions[0].abs().sum()) == 0.0
    torch.testing.assert_close(back.cosine(axis)[1:], torch.ones(3))
    bare = ValueAxis.from_gguf(path)  # no model: depth = highest layer + 1
    assert bare.n_layers == 4 and bare.model_id == ""
    with pytest.raises(AxisMismatchError, match="another model"):
        ValueAxis.from_gguf(path, tiny_qwen3(n_layers=3, d_model=D))


def _write(path, tensors: dict, arch: str = ARCH):
    w = gguf.GGUFWriter(str(path), arch=arch)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        ({"direction.0": np.ones(4, np.float32)}, "n >= 1"),
        ({"dir.1": np.ones(4, np.float32)}, "n >= 1"),
        ({"direction.1": np.ones(4, np.float16)}, "float32"),
        ({"direction.1": np.ones((2, 4), np.float32)}, "1-D"),
        ({"direction.1": np.ones(4, np.float32), "direction.2": np.ones(5, np.float32)}, "length"),
        ({}, "no direction"),
    ],
)
def test_files_llama_cpp_would_reject_are_refused(tmp_path, tensors, match):
    with pytest.raises(ArtifactError, match=match):
        read_control_vector(_write(tmp_path / "bad.gguf", tensors))


def test_a_model_gguf_is_not_a_control_vector(tmp_path):
    from value_lens.core.model import default_model_path

    with pytest.raises(ArtifactError, match="'llama' GGUF"):
        read_control_vector(default_model_path())
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ArtifactError, match="cannot read"):
        read_control_vector(tmp_path / "junk.gguf")


def test_one_file_sums_repeated_layers_like_llama_cpp(tmp_path):
    """llama.cpp adds every tensor of one layer ("multiple directions for same layer")."""
    a, b = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    w = gguf.GGUFWriter(str(tmp_path / "two.gguf"), arch=ARCH)
    w.add_tensor("direction.2", a)
    w.add_tensor("direction.02", b)  # the same layer, as llama.cpp's stoi reads it
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    np.testing.assert_array_equal(read_control_vector(tmp_path / "two.gguf").directions[2], a + b)


def _hf_logits_with_file(path, ids, *, shift: int = 0) -> torch.Tensor:
    """Apply the file the way llama.cpp does, on a plain HF model: direction.<n> is added to the
    output of decoder layer n (``shift`` moves it, to show a wrong mapping is caught)."""
    from value_lens.testing import tiny_qwen3_hf

    hf, _ = tiny_qwen3_hf(n_layers=N_LAYERS, d_model=D)
    handles = []
    for layer, vec in read_control_vector(path).directions.items():
        v = torch.from_numpy(vec)

        def add(_mod, _inp, out, v=v):
            if isinstance(out, tuple):
                return (out[0] + v, *out[1:])
            return out + v

        handles.append(hf.model.layers[layer + shift].register_forward_hook(add))
    try:
        with torch.no_grad():
            return hf(ids).logits
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize(("layers", "unit"), [([1], "percent"), ([2, 3], "raw"), ([2], "sd")])
def test_the_file_makes_the_residual_change_steer_makes(tmp_path, layers, unit):
    from value_lens.steering.steer import steer
    from value_lens.testing import tiny_qwen3

    model = tiny_qwen3(n_layers=N_LAYERS, d_model=D)
    axis = _axis(model_id="")  # same weights as the oracle's HF model, another id
    ids = torch.tensor([[3, 17, 9, 42, 5, 11]])
    path = axis.to_gguf(tmp_path / "v.gguf", layers=layers, alpha=6.0, unit=unit)
    with torch.no_grad(), steer(model, axis, layers=layers, alpha=6.0, unit=unit):
        steered = model(ids)
    with torch.no_grad():
        plain = model(ids)
    by_file = _hf_logits_with_file(path, ids)
    assert float((steered - plain).abs().max()) > 1e-2  # the steering does something
    torch.testing.assert_close(by_file, steered, rtol=1e-4, atol=1e-4)
    if layers == [1]:  # an off-by-one mapping gives other logits
        off = _hf_logits_with_file(path, ids, shift=1)
        assert float((off - steered).abs().max()) > 1e-2
