import pytest
import torch

from tests._oracle import hidden_states
from value_lens import ValueAxis, mean_value, trace
from value_lens.analysis.readout import project
from value_lens.errors import InputError, LayerError


@pytest.fixture(scope="module")
def axis(tiny):
    gen = torch.Generator().manual_seed(0)
    return ValueAxis(torch.randn(2, 64, generator=gen), model_id=tiny.cfg.model_name)


def _check_trace_against_hf(model, hf, axis, text, layer, atol=1e-5):
    tr = trace(model, text, axis, layers=[layer])
    h = hidden_states(hf, tr.token_ids)[layer + 1][0]
    u = axis.direction(layer)
    torch.testing.assert_close(tr.projection[0], h @ u, atol=atol, rtol=1e-4)
    cos = torch.nn.functional.cosine_similarity(h, u[None], dim=-1)
    torch.testing.assert_close(tr.cosine[0], cos, atol=atol, rtol=1e-4)


def test_trace_matches_hf_oracle_untied():
    from value_lens import load_model
    from value_lens.testing import tiny_qwen3_hf

    hf, tok = tiny_qwen3_hf(n_layers=3, tied=False)
    model = load_model(hf, tokenizer=tok)
    ax = ValueAxis(
        torch.randn(3, 64, generator=torch.Generator().manual_seed(1)),
        model_id=model.cfg.model_name,
    )
    for layer in (0, 1):
        _check_trace_against_hf(model, hf, ax, "A colon: here; and there.", layer)


@pytest.mark.slow
def test_trace_matches_hf_oracle_smollm(smollm, smollm_hf):
    hf, _ = smollm_hf
    ax = ValueAxis(
        torch.randn(30, 576, generator=torch.Generator().manual_seed(2)),
        model_id=smollm.cfg.model_name,
    )
    chat = [
        {"role": "user", "content": "Paragraph 1:\n\nThe Nile is long."},
        {"role": "assistant", "content": "Sure."},
    ]
    for layer in (3, 20):
        _check_trace_against_hf(smollm, hf, ax, vl_format(smollm, chat), layer, atol=2e-4)


def vl_format(model, messages):
    from value_lens.core.chat import format_chat

    return format_chat(model.tokenizer, messages).text


def test_trace_matches_hf_oracle(tiny, tiny_hf, axis):
    hf, tok = tiny_hf
    text = "The fox jumps over the lazy dog."
    tr = trace(tiny, text, axis, layers=[0])
    ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"])
    assert torch.equal(tr.token_ids, ids)
    h = hidden_states(hf, ids)[1][0]
    u = axis.direction(0)
    torch.testing.assert_close(tr.projection[0], h @ u, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        tr.cosine[0],
        torch.nn.functional.cosine_similarity(h, u[None], dim=-1),
        atol=1e-5,
        rtol=1e-5,
    )
    assert "".join(tr.tokens) == text
    assert tr.mean(0) == pytest.approx(float(tr.cosine[0].mean()))
    assert mean_value(tiny, text, axis, 0, positions=slice(2, 5)) == pytest.approx(
        float(tr.cosine[0, 2:5].mean()), abs=1e-6
    )
    torch.testing.assert_close(project(h, axis, 0), tr.cosine[0], atol=1e-5, rtol=1e-5)


def test_trace_messages_and_char_spans(tiny, axis):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The river flows."}]
    tr = trace(tiny, msgs, axis)
    assert tr.layers == [0, 1] and tr.cosine.shape == (2, len(tr.tokens))
    start = tr.text.index("The river")
    mask = tr.char_span_mask(start, start + len("The river flows."))
    assert (
        "".join(t for t, m in zip(tr.tokens, mask.tolist(), strict=True) if m) == "The river flows."
    )
    df = tr.to_frame()
    assert len(df) == 2 * len(tr.tokens) and set(df.columns) >= {
        "layer",
        "position",
        "token",
        "cosine",
    }


def test_slice_keeps_a_token_range_at_every_layer(tiny, axis):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The river flows."}]
    tr = trace(tiny, msgs, axis)
    start = tr.text.index("The river")
    pos = torch.nonzero(tr.char_span_mask(start, start + len("The river flows."))).flatten()
    lo, hi = int(pos[0]), int(pos[-1]) + 1
    part = tr.slice(lo, hi)
    assert "".join(part.tokens) == "The river flows."
    assert part.tokens == tr.tokens[lo:hi] and torch.equal(part.token_ids, tr.token_ids[lo:hi])
    assert torch.equal(part.cosine, tr.cosine[:, lo:hi])
    assert torch.equal(part.projection, tr.projection[:, lo:hi])
    assert torch.equal(part.offsets, tr.offsets[lo:hi])
    # the text, layers and model stay whole: the offsets still index into the text
    assert (part.text, part.layers, part.model_id) == (tr.text, tr.layers, tr.model_id)
    o = part.offsets
    assert part.text[int(o[0, 0]) : int(o[-1, 1])].strip() == "The river flows."
    assert part.mean(1) == pytest.approx(float(tr.cosine[1, lo:hi].mean()))
    # Python slice rules: open ends and negative indices; the original is left as it was
    assert tr.slice().tokens == tr.tokens and tr.slice(-2).tokens == tr.tokens[-2:]
    assert tr.slice(None, 1).cosine.shape == (2, 1) and tr.slice(3, 3).cosine.shape == (2, 0)
    assert len(tr.tokens) == tr.cosine.shape[1] > hi - lo


def test_trace_errors(tiny, axis):
    with pytest.raises(InputError, match="empty"):
        trace(tiny, "", axis)
    with pytest.raises(LayerError, match="out of range"):
        trace(tiny, "hello", axis, layers=[5])
    with pytest.raises(InputError, match="context"):
        trace(tiny, torch.ones(5000, dtype=torch.long), axis)
    partial = ValueAxis(
        axis.directions * torch.tensor([[1.0], [0.0]]), layers=(0,), model_id=axis.model_id
    )
    with pytest.raises(LayerError, match="no fitted direction"):
        trace(tiny, "hello", partial, layers=[1])
    tr = trace(tiny, "hello", partial)
    assert tr.layers == [0]
    with pytest.raises(LayerError, match="not in this trace"):
        tr.mean(1)
    with pytest.raises(InputError, match="empty"):
        tr.mean(0, positions=slice(0, 0))


def _transform_axis(tiny, method):
    """A fitted erased or standardized axis on the tiny model (turns with meta bounds)."""
    from tests.fitting.test_class_moments import turn_data
    from value_lens import collect_stats
    from value_lens.fitting.methods import needs

    data = turn_data(9, seed=4)
    stats = collect_stats(tiny, data, plan=needs(method), batch_size=3, progress=False)
    return ValueAxis.fit(stats, method)


@pytest.mark.parametrize("method", ["erased", "standardized"])
def test_trace_and_project_read_through_the_saved_transform(tiny, tiny_hf, method, tmp_path):
    """The oracle applies the transform by hand to HF hidden states: the LEACE eraser
    x - A B'(x - mean), or z-scores (x - center) / scale with zero-scale dimensions zeroed."""
    hf, _ = tiny_hf
    axis = _transform_axis(tiny, method)
    axis.save(tmp_path / "a.safetensors")
    axis = ValueAxis.load(tmp_path / "a.safetensors")
    # the tiny model's last HF hidden state is post-final-norm: the oracle covers layer 0
    tr = trace(tiny, "A colon: here; and there.", axis, layers=[0])
    ro = axis.readout
    for r, layer in enumerate(tr.layers):
        h = hidden_states(hf, tr.token_ids)[layer + 1][0].double()
        v = axis.directions[layer].double()
        if method == "erased":
            t = h - ((h - ro.mean[layer]) @ ro.b[layer]) @ ro.a[layer].T
            u = v
        else:
            s = ro.scale[layer]
            inv = torch.where(s > 0, 1 / s.clamp_min(1e-30), torch.zeros_like(s))
            t, u = (h - ro.center[layer]) * inv, v * inv
        u = u / u.norm()
        torch.testing.assert_close(tr.projection[r].double(), t @ u, atol=1e-4, rtol=1e-4)
        cos = (t @ u) / t.norm(dim=-1)
        torch.testing.assert_close(tr.cosine[r].double(), cos, atol=1e-5, rtol=1e-4)
        # the plain projection on the direction differs: the transform is really applied
        assert not torch.allclose(
            tr.cosine[r].double(),
            torch.nn.functional.cosine_similarity(h, v[None], dim=-1),
            atol=1e-3,
        )
        torch.testing.assert_close(
            project(h.float(), axis, layer).double(), cos, atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(
            project(h.float(), axis, layer, cosine=False).double(), t @ u, atol=1e-4, rtol=1e-4
        )
