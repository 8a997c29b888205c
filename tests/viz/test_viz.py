"""Token heatmaps, tokens x layers heatmaps and steered-vs-baseline differences."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from tests._offline import external_urls
from value_lens.analysis.readout import ValueTrace, trace
from value_lens.errors import InputError, LayerError
from value_lens.fitting.axis import ValueAxis
from value_lens.viz import layer_token_heatmap, token_heatmap, trace_difference
from value_lens.viz._style import rgb_for
from value_lens.viz.layer_heatmap import downsample


def _trace(n_tokens: int = 6, layers=(0, 1), seed: int = 0) -> ValueTrace:
    g = torch.Generator().manual_seed(seed)
    n = len(layers)
    return ValueTrace(
        [f"t{i}" for i in range(n_tokens)],
        torch.arange(n_tokens),
        list(layers),
        torch.randn(n, n_tokens, generator=g) * 0.1,
        torch.randn(n, n_tokens, generator=g),
        torch.full((n_tokens, 2), -1),
    )


@pytest.fixture(scope="module")
def real_trace(tiny):
    axis = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(1)), model_id=tiny.cfg.model_name
    )
    return trace(tiny, "The fox <b>jumps</b> & rests.\nWait: 12%", axis)


def test_token_heatmap_values_equal_trace_row(real_trace):
    for layer in real_trace.layers:
        hm = token_heatmap(real_trace, layer)
        row = real_trace.cosine[real_trace.row(layer)].tolist()
        assert hm.rows[0].values == pytest.approx(row, abs=0)
        assert hm.rows[0].tokens == real_trace.tokens
        assert hm.vmax == pytest.approx(max(abs(v) for v in row))
    proj = token_heatmap(real_trace, 1, metric="projection")
    assert proj.rows[0].values == pytest.approx(real_trace.projection[1].tolist(), abs=0)


def test_token_heatmap_html_is_offline_escaped_and_hoverable(real_trace):
    hm = token_heatmap(real_trace, 0)
    html = hm.html
    assert hm._repr_html_() == html
    assert external_urls(hm.to_html()) == []
    assert "<script" not in html and "<b>" not in html  # token text is escaped
    assert html.count('<span style="background:#') == len(real_trace.tokens)
    v3 = real_trace.cosine[0, 3].item()
    import html as html_mod

    assert html_mod.escape(f"pos 3 | {real_trace.tokens[3]!r}", quote=True) in html
    assert f"cosine {v3:+.4f}" in html


def test_colour_scale_is_signed_and_zero_centred():
    assert rgb_for(0.0, 2.0) == (247, 247, 247)
    pos, neg = rgb_for(1.0, 2.0), rgb_for(-1.0, 2.0)
    assert pos[2] > pos[0] and neg[0] > neg[2]  # blue above zero, red below
    assert rgb_for(5.0, 2.0) == rgb_for(2.0, 2.0)  # clipped
    # the same |value| is equally far from white on either side
    white = np.array(rgb_for(0.0, 1.0))
    d_pos = np.abs(np.array(rgb_for(0.5, 1.0)) - white).sum()
    d_neg = np.abs(np.array(rgb_for(-0.5, 1.0)) - white).sum()
    assert d_pos > 0 and d_neg > 0


def test_token_heatmap_rows_share_one_scale_and_window():
    a, b = _trace(seed=0), _trace(seed=1)
    hm = token_heatmap({"baseline": a, "steered": b}, 1, start=2, stop=5)
    assert [r.label for r in hm.rows] == ["baseline", "steered"]
    assert hm.rows[1].positions == [2, 3, 4]
    assert hm.rows[1].values == pytest.approx(b.cosine[1, 2:5].tolist(), abs=0)
    both = a.cosine[1, 2:5].abs().tolist() + b.cosine[1, 2:5].abs().tolist()
    assert hm.vmax == pytest.approx(max(both))
    assert token_heatmap(a, 0, vmax=3.0).vmax == 3.0


def test_token_heatmap_errors():
    tr = _trace()
    with pytest.raises(LayerError, match="pass layer="):
        token_heatmap(tr)
    with pytest.raises(LayerError):
        token_heatmap(tr, 5)
    with pytest.raises(InputError, match="metric"):
        token_heatmap(tr, 0, metric="logit")
    with pytest.raises(InputError, match="window"):
        token_heatmap(tr, 0, start=6)
    with pytest.raises(InputError, match="vmax"):
        token_heatmap(tr, 0, vmax=-1)
    with pytest.raises(InputError, match="ValueTrace"):  # untyped callers (notebooks) get this
        inspect.unwrap(token_heatmap)("text", 0)


def test_token_heatmap_saves_standalone_html(tmp_path):
    p = token_heatmap(_trace(), 0, title="demo <x>").save(tmp_path / "h.html")
    text = p.read_text()
    assert text.startswith("<!DOCTYPE html>") and "demo &lt;x&gt;" in text


def test_trace_difference_on_same_text(tiny, real_trace):
    other = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(2)), model_id=tiny.cfg.model_name
    )
    tr2 = trace(tiny, real_trace.text, other)
    diff = trace_difference(tr2, real_trace)
    assert diff.tokens == real_trace.tokens
    torch.testing.assert_close(diff.cosine, tr2.cosine - real_trace.cosine, rtol=0, atol=0)
    torch.testing.assert_close(diff.projection, tr2.projection - real_trace.projection)
    hm = token_heatmap(diff, 0)
    assert hm.rows[0].values == pytest.approx((tr2.cosine[0] - real_trace.cosine[0]).tolist())


def test_trace_difference_uses_common_prefix_and_layers():
    a = _trace(6, (0, 1))
    b = ValueTrace(
        a.tokens[:4] + ["x"],
        torch.tensor([0, 1, 2, 3, 99]),
        [1],
        a.cosine[1:, :5] * 0,
        a.projection[1:, :5] * 0,
        torch.full((5, 2), -1),
    )
    d = trace_difference(a, b)
    assert d.layers == [1] and d.tokens == a.tokens[:4]
    torch.testing.assert_close(d.cosine, a.cosine[1:, :4])
    c = ValueTrace(
        ["z"], torch.tensor([7]), [0], torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 2), -1)
    )
    with pytest.raises(InputError, match="first token"):
        trace_difference(a, c)
    with pytest.raises(LayerError, match="share no layer"):
        trace_difference(b, _trace(5, (0,)))


def test_layer_token_heatmap_data_equal_trace(real_trace):
    fig = layer_token_heatmap(real_trace)
    hm = fig.data[0]
    np.testing.assert_array_equal(np.asarray(hm.z), real_trace.cosine.numpy())
    assert list(hm.y) == [str(x) for x in real_trace.layers]
    assert fig.layout.meta["positions"] == list(range(len(real_trace.tokens)))
    assert hm.zmid == 0 and hm.zmin == -hm.zmax
    assert hm.x[2].startswith("pos 2: '") and real_trace.tokens[2].strip() in hm.x[2]
    for part in ("%{x}", "layer %{y}", "%{z"):
        assert part in hm.hovertemplate
    assert external_urls(fig.to_html(include_plotlyjs=True)) == []


def test_layer_token_heatmap_window_and_downsampling():
    tr = _trace(100, (0, 1, 2))
    fig = layer_token_heatmap(tr, start=10, stop=60, max_columns=8)
    z = np.asarray(fig.data[0].z)
    size = 7  # ceil(50 / 8)
    starts = fig.layout.meta["positions"]
    assert starts == list(range(10, 60, size))
    expect = [tr.cosine[:, a : min(a + size, 60)].mean(1).numpy() for a in starts]
    np.testing.assert_allclose(z, np.stack(expect, 1), rtol=1e-5, atol=1e-7)
    assert fig.data[0].x[0].startswith("pos 10-16:")


def test_downsample_ignores_nan_and_keeps_short_rows():
    v = np.array([[1.0, np.nan, 3.0, 5.0, 7.0]])
    z, s = downsample(v, 2)
    assert z.tolist() == [[2.0, 6.0]] and s.tolist() == [0, 3]
    z, s = downsample(v[:, :2], 5)
    assert s.tolist() == [0, 1]
    with pytest.raises(InputError):
        downsample(v, 0)


def test_layer_heatmap_html_size_is_bounded_for_long_traces():
    sizes = []
    for n in (10_000, 40_000):
        fig = layer_token_heatmap(_trace(n, tuple(range(36))), max_columns=1000)
        assert np.asarray(fig.data[0].z).shape == (36, 1000)
        sizes.append(len(fig.to_html(include_plotlyjs=False, full_html=False)))
    assert max(sizes) < 400_000
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[0]


def test_steered_minus_baseline_view(tiny):
    from value_lens.steering.steer import steer

    axis = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), model_id=tiny.cfg.model_name
    )
    base = trace(tiny, "The fox jumps over", axis)
    with steer(tiny, axis, layers=0, alpha=5.0):
        steered = trace(tiny, "The fox jumps over", axis)
    diff = trace_difference(steered, base)
    # adding 5 * v_hat at layer 0 moves the projection there by exactly 5 at every token
    torch.testing.assert_close(diff.projection[0], torch.full((len(base.tokens),), 5.0))
    assert diff.projection[1].abs().min() > 0  # and changes the next layer
    hm = token_heatmap({"baseline": base, "steered": steered, "difference": diff}, 1)
    assert [r.label for r in hm.rows] == ["baseline", "steered", "difference"]
    fig = layer_token_heatmap(diff, metric="projection")
    np.testing.assert_allclose(np.asarray(fig.data[0].z), diff.projection.numpy())


def test_viz_exports_the_circuits_view_and_the_control_panel():
    import value_lens.viz as viz
    from value_lens.viz.circuits import circuits_token_view
    from value_lens.viz.controls import control_panel_figure, control_table

    assert viz.circuits_token_view is circuits_token_view
    assert viz.control_table is control_table and viz.control_panel_figure is control_panel_figure
    assert {"circuits_token_view", "control_table", "control_panel_figure"} <= set(viz.__all__)
