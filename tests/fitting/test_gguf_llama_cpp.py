"""An exported control vector run in llama.cpp itself (llama-cpp-python, the dev extra), on the
embedded SmolLM2-135M-Instruct GGUF, against value_lens's own steering of the same model.

llama.cpp's command-line tools read a control-vector file with ``common_control_vector_load``
(common/common.cpp, not exported by the Python bindings) and hand the buffer to
``llama_set_adapter_cvec(ctx, data, len, n_embd, 1, n_layer)``. :func:`_apply` does the same: the
file is read with the ``gguf`` package and ``direction.<n>`` goes to buffer offset
``(n - 1) * n_embd``, as that loader puts it ("layer 1 at [0]"); which block each slot steers is
llama.cpp's own business, and is what this test checks.
"""

from __future__ import annotations

import ctypes
import os

import gguf
import numpy as np
import pytest
import torch

from value_lens.core.model import default_model_path
from value_lens.fitting.axis import ValueAxis

LAYER = 15  # the middle of SmolLM2's 30 blocks
PROMPTS = (
    "Is the sky green? Answer yes or no.",
    "Name one colour.",
    "What is 2 + 2?",
)
TOP = 12  # answer tokens compared per prompt: the unsteered model's most likely next tokens


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        msg = (
            "llama-cpp-python is not installed (the dev extra builds it from source: "
            "bash scripts/install.sh)"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return llama_cpp


@pytest.fixture(scope="module")
def llm():
    llama_cpp = _llama_cpp()
    return llama_cpp.Llama(
        model_path=str(default_model_path()),
        n_ctx=256,
        n_threads=1,
        logits_all=True,
        verbose=False,
        seed=0,
    )


def _apply(llm, path) -> None:
    """Load ``path`` into ``llm`` as llama.cpp's common_control_vector_load + set_adapter do."""
    import llama_cpp

    reader = gguf.GGUFReader(str(path))
    tensors = {int(t.name.split(".")[1]): np.asarray(t.data, np.float32) for t in reader.tensors}
    n_embd = llm.n_embd()
    data = np.zeros(n_embd * max(tensors), np.float32)
    for n, vec in tensors.items():
        data[(n - 1) * n_embd : n * n_embd] += vec
    ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    n_layer = llama_cpp.llama_model_n_layer(llm.model)
    err = llama_cpp.llama_set_adapter_cvec(llm.ctx, ptr, data.size, n_embd, 1, n_layer)
    assert err == 0


def _clear(llm) -> None:
    import llama_cpp

    assert llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, llm.n_embd(), -1, -1) == 0


def _cpp_logprobs(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    logits = np.asarray(llm.scores[len(ids) - 1], np.float64)
    return logits - np.logaddexp.reduce(logits)


def _vl_logprobs(model, ids: list[int], axis=None, layer=LAYER, alpha=0.0) -> np.ndarray:
    from value_lens.steering.steer import steer

    x = torch.tensor([ids])
    with torch.no_grad():
        if axis is None:
            logits = model(x)[0, -1]
        else:
            with steer(model, axis, layers=layer, alpha=alpha, unit="percent"):
                logits = model(x)[0, -1]
    return torch.log_softmax(logits.double(), -1).numpy()


@pytest.fixture(scope="module")
def setup(smollm):
    """A seeded random axis on SmolLM2 with the layer's measured residual norm (for percent)."""
    from value_lens.steering.strength import calibrate

    n, d = smollm.cfg.n_layers, smollm.cfg.d_model
    dirs = torch.randn(n, d, generator=torch.Generator().manual_seed(3))
    cal = calibrate(smollm, texts=list(PROMPTS) * 2, layers=[LAYER - 1, LAYER, LAYER + 1])
    norms = torch.full((n,), float("nan"))
    for layer, v in cal.resid_norm.items():
        norms[layer] = v
    axis = ValueAxis(dirs, resid_norm=norms)
    ids = [
        smollm.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True
        )
        for p in PROMPTS
    ]
    return axis, [list(map(int, getattr(x, "input_ids", x))) for x in ids]


@pytest.mark.slow
def test_llama_cpp_steered_by_the_exported_file_moves_like_value_lens(llm, smollm, setup, tmp_path):
    axis, prompts = setup
    alpha = 25.0  # percent of the layer's mean residual norm
    path = axis.to_gguf(tmp_path / "axis.gguf", layers=[LAYER], alpha=alpha, unit="percent")
    vl_shift, cpp_shift, neighbours, base_gap = [], [], {-1: [], 1: []}, []
    for ids in prompts:
        vl0 = _vl_logprobs(smollm, ids)
        top = np.argsort(vl0)[::-1][:TOP]
        _clear(llm)
        cpp0 = _cpp_logprobs(llm, ids)
        _apply(llm, path)
        cpp1 = _cpp_logprobs(llm, ids)
        vl1 = _vl_logprobs(smollm, ids, axis, LAYER, alpha)
        base_gap.append(np.abs(cpp0[top] - vl0[top]).max())
        vl_shift.append(vl1[top] - vl0[top])
        cpp_shift.append(cpp1[top] - cpp0[top])
        for k in neighbours:
            other = _vl_logprobs(smollm, ids, axis, LAYER + k, alpha)
            neighbours[k].append(other[top] - vl0[top])
    _clear(llm)
    vl_s, cpp_s = np.concatenate(vl_shift), np.concatenate(cpp_shift)
    # the same model in both runtimes (Q4_1 weights; llama.cpp also quantises activations)
    assert max(base_gap) < 0.5, base_gap  # measured 0.30
    assert np.abs(vl_s).max() > 0.5  # the steering does something
    big = np.abs(vl_s) > 0.1
    assert big.sum() >= 6
    np.testing.assert_array_equal(np.sign(cpp_s[big]), np.sign(vl_s[big]))
    assert np.corrcoef(vl_s, cpp_s)[0, 1] > 0.95
    # the mapping: llama.cpp's change is value_lens's at LAYER, not at a neighbouring layer
    err = np.abs(cpp_s - vl_s).mean()
    for k, shifts in neighbours.items():
        assert err < 0.5 * np.abs(cpp_s - np.concatenate(shifts)).mean(), (k, err)
