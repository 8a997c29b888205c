"""Result figures: what they draw equals the tables they are given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests._offline import external_urls
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.viz import (
    backtracking_band_figure,
    code_scatter_figure,
    confidence_prefill_figure,
    dose_response_figure,
    event_locked_figure,
    layer_cosine_figure,
    png_available,
    save_figure,
    slope_heatmap_figure,
    sweep_figure,
)
from value_lens.viz.controls import ci_columns, control_panel_figure, control_table


@pytest.fixture
def sweep_df():
    rng = np.random.default_rng(0)
    n = 6
    return pd.DataFrame(
        {
            "layer": np.arange(n)[::-1],  # unsorted on purpose
            "token_auroc_mean": rng.uniform(0.5, 1, n),
            "token_auroc_sd": rng.uniform(0, 0.05, n),
            "random_auroc_mean": rng.uniform(0.45, 0.55, n),
            "random_auroc_sd": rng.uniform(0, 0.02, n),
            "position_auroc": rng.uniform(0.4, 0.7, n),
        }
    )


def _by_name(fig, name):
    return [t for t in fig.data if t.name == name]


def test_sweep_figure_draws_table(sweep_df):
    fig = sweep_figure(sweep_df)
    s = sweep_df.sort_values("layer")
    main = fig.data[-1]
    assert list(main.x) == s["layer"].tolist()
    assert list(main.y) == s["token_auroc_mean"].tolist()
    band = fig.data[-2]
    n = len(s)
    np.testing.assert_allclose(band.y[:n], s["token_auroc_mean"] + s["token_auroc_sd"])
    np.testing.assert_allclose(band.y[n:], (s["token_auroc_mean"] - s["token_auroc_sd"])[::-1])
    (rand,) = [t for t in _by_name(fig, "sign-aligned random direction") if t.mode]
    assert list(rand.y) == s["random_auroc_mean"].tolist()
    (rband,) = _by_name(fig, "sign-aligned random direction ± sd")  # older tables: ± its sd
    np.testing.assert_allclose(rband.y[:n], s["random_auroc_mean"] + s["random_auroc_sd"])
    (pos,) = _by_name(fig, "token index")
    assert list(pos.y) == s["position_auroc"].tolist()
    assert not _by_name(fig, "closeness to turn end")  # absent column: not drawn
    # no CI columns: the band is +-sd, and every label says what that sd is
    assert "overlapping splits" in fig.layout.title.text
    assert "overlapping splits" in band.name and "overlapping splits" in main.hovertemplate
    np.testing.assert_allclose(np.asarray(main.customdata)[:, 0], s["token_auroc_sd"])


def test_sweep_figure_band_is_the_cluster_ci_when_present(sweep_df):
    df = sweep_df.assign(
        token_auroc_ci_lo=sweep_df["token_auroc_mean"] - 0.1,
        token_auroc_ci_hi=sweep_df["token_auroc_mean"] + 0.03,  # asymmetric, unlike +-sd
    )
    s = df.sort_values("layer")
    fig = sweep_figure(df, ci_settings={"cluster": "conversation_id", "level": 0.9})
    main, band = fig.data[-1], fig.data[-2]
    n = len(s)
    np.testing.assert_allclose(band.y[:n], s["token_auroc_ci_hi"])
    np.testing.assert_allclose(band.y[n:], s["token_auroc_ci_lo"][::-1])
    assert "90% CI, jackknife over conversation_id" in band.name
    assert "90% CI" in fig.layout.title.text and "90% CI" in main.hovertemplate
    custom = np.asarray(main.customdata)
    np.testing.assert_allclose(
        custom, s[["token_auroc_sd", "token_auroc_ci_lo", "token_auroc_ci_hi"]].to_numpy()
    )
    # the sd is still in the hover, labelled as an sd over overlapping splits
    assert "sd over overlapping splits" in main.hovertemplate
    # ci=None (or all-NaN CI columns, as from layer_sweep(ci=None)) falls back to +-sd
    for f in (sweep_figure(df, ci=None), sweep_figure(df.assign(token_auroc_ci_lo=np.nan))):
        np.testing.assert_allclose(f.data[-2].y[:n], s["token_auroc_mean"] + s["token_auroc_sd"])
    # the function-level score's band is its sd over splits, and its label says so
    fn = df.assign(
        function_score_mean=0.7, function_score_sd_splits=0.2, function_score_sd_all_scores=0.45
    )
    fig = sweep_figure(fn)
    (line,) = [t for t in fig.data if t.name.startswith("function") and t.mode]
    assert "sd over splits" in line.name
    fband = [t for t in fig.data if t.name == line.name + " ± sd"]
    np.testing.assert_allclose(fband[0].y[:n], np.full(n, 0.9))


#: every control column of the new layer_sweep, with its CI columns (random: p95 instead)
CONTROL_COLUMNS = {
    "did_auroc_mean": "DiD axis (criterion minus placebo contrast)",
    "matched_auroc": "axis, matched on place and turn length",
    "did_matched_auroc": "DiD axis, matched on place and turn length",
    "placebo_auroc": "axis on placebo turns",
    "did_placebo_auroc": "DiD axis on placebo turns",
    "end_proximity_auroc": "closeness to turn end",
    "turn_position_auroc": "position within the turn",
    "relative_position_auroc": "relative position in the turn",
}


@pytest.fixture
def controls_df():
    """A sweep table with every control and asymmetric CIs; layer 3 is the best."""
    rng = np.random.default_rng(1)
    layers = np.array([2, 0, 3, 1])  # unsorted on purpose
    df = pd.DataFrame({"layer": layers, "token_auroc_mean": [0.7, 0.6, 0.9, 0.8]})
    df["token_auroc_ci_lo"], df["token_auroc_ci_hi"] = (
        df.token_auroc_mean - 0.1,
        df.token_auroc_mean + 0.02,
    )
    for col in CONTROL_COLUMNS:
        base = col.removesuffix("_mean")
        df[col] = rng.uniform(0.4, 0.9, len(df))
        df[f"{base}_ci_lo"] = df[col] - rng.uniform(0.01, 0.1, len(df))
        df[f"{base}_ci_hi"] = df[col] + rng.uniform(0.01, 0.1, len(df))
    df["random_auroc_mean"] = rng.uniform(0.45, 0.55, len(df))
    df["random_auroc_p95"] = df["random_auroc_mean"] + 0.05
    df["shuffled_auroc_mean"] = rng.uniform(0.48, 0.52, len(df))
    return df


CI95 = {"cluster": "conversation_id", "level": 0.95}


def test_sweep_figure_draws_every_control_with_its_ci(controls_df):
    fig = sweep_figure(controls_df, ci_settings=CI95)
    s = controls_df.sort_values("layer")
    n = len(s)
    for col, label in CONTROL_COLUMNS.items():
        lines = [t for t in _by_name(fig, label) if t.mode]
        assert len(lines) == 1, label
        assert list(lines[0].x) == s["layer"].tolist()
        assert list(lines[0].y) == s[col].tolist()
        lo, hi = (s[c].to_numpy() for c in ci_columns(col))
        (band,) = [
            t for t in fig.data if t.name == f"{label} 95% CI, jackknife over conversation_id"
        ]
        np.testing.assert_allclose(band.y[:n], hi)
        np.testing.assert_allclose(band.y[n:], lo[::-1])
        hidden = col in {"did_matched_auroc", "did_placebo_auroc", "relative_position_auroc"}
        assert (lines[0].visible == "legendonly") == hidden and band.visible == lines[0].visible
    (rand,) = _by_name(fig, "sign-aligned random direction")
    (p95,) = _by_name(fig, "sign-aligned random direction, 95th percentile")
    (null,) = _by_name(fig, "shuffled-label null")
    assert list(rand.y) == s["random_auroc_mean"].tolist()
    assert list(p95.y) == s["random_auroc_p95"].tolist()
    assert list(null.y) == s["shuffled_auroc_mean"].tolist()
    assert list(fig.data[-1].y) == s["token_auroc_mean"].tolist()
    # data labelled without placebo turns: the DiD and placebo columns are NaN and not drawn
    nan = {c: np.nan for c in controls_df if c.startswith(("did_", "placebo_"))}
    names = {t.name for t in sweep_figure(controls_df.assign(**nan)).data}
    assert not any(n.startswith(("DiD", "axis on placebo")) for n in names)
    assert "axis, matched on place and turn length" in names


def test_control_table_and_panel_at_the_best_layer(controls_df):
    t = control_table(controls_df)
    row = controls_df[controls_df["layer"] == 3].iloc[0]
    assert (t["layer"] == 3).all() and t["control"].iloc[0] == "value axis"
    assert len(t) == 3 + len(CONTROL_COLUMNS)  # axis, 8 controls, random, shuffled
    for _, r in t.iterrows():
        assert r["auroc"] == row[r["column"]]
        if r["column"] == "random_auroc_mean":
            assert np.isnan(r["lo"]) and r["hi"] == row["random_auroc_p95"]
        elif r["column"] == "shuffled_auroc_mean":
            assert np.isnan(r["lo"]) and np.isnan(r["hi"])
        else:
            lo, hi = ci_columns(r["column"])
            assert (r["lo"], r["hi"]) == (row[lo], row[hi])
    fig = control_panel_figure(controls_df, ci_label="95% CI")
    (pts,) = fig.data
    assert list(pts.y) == t["control"].tolist() and list(pts.x) == t["auroc"].tolist()
    np.testing.assert_allclose(pts.error_x.array, np.nan_to_num(t["hi"] - t["auroc"]))
    np.testing.assert_allclose(pts.error_x.arrayminus, np.nan_to_num(t["auroc"] - t["lo"]))
    assert "layer 3" in fig.layout.title.text and "95% CI" in fig.layout.title.text
    # an explicit layer reads that row
    t0 = control_table(controls_df, layer=0)
    r0 = controls_df[controls_df["layer"] == 0].iloc[0]
    assert t0.set_index("column")["auroc"].to_dict() == {c: r0[c] for c in t0["column"]}
    with pytest.raises(InputError, match="not in the sweep table"):
        control_table(controls_df, layer=9)


def test_sweep_figure_custom_columns_and_errors(sweep_df):
    df = sweep_df.rename(columns={"token_auroc_mean": "fn_mean"})
    fig = sweep_figure(df, mean="fn_mean", sd=None, baselines={"pos": "position_auroc"})
    assert [t.name for t in fig.data] == ["pos", "value axis (held-out token AUROC)"]
    with pytest.raises(InputError, match="lacks column"):
        sweep_figure(df)
    with pytest.raises(InputError, match="lacks column"):
        sweep_figure(sweep_df, baselines={"x": "nope"})
    # InputError, or the run-time type check (TypeError) when the suite enables it
    with pytest.raises((InputError, TypeError), match="DataFrame"):
        sweep_figure([1, 2])


def test_layer_cosine_figure_from_axis_array_and_frame():
    g = torch.Generator().manual_seed(0)
    axis = ValueAxis(torch.randn(4, 8, generator=g), layers=(1, 2, 3))
    fig = layer_cosine_figure(axis)
    np.testing.assert_allclose(
        np.asarray(fig.data[0].z), axis.layer_cosine_matrix().numpy(), rtol=1e-6
    )
    assert list(fig.data[0].x) == ["1", "2", "3"]
    m = np.array([[1.0, 0.2], [0.2, 1.0]])
    frame = pd.DataFrame(m, index=[5, 9], columns=[5, 9])
    fig2 = layer_cosine_figure(frame)
    assert list(fig2.data[0].y) == ["5", "9"]
    np.testing.assert_array_equal(np.asarray(fig2.data[0].z), m)
    with pytest.raises(InputError, match="square"):
        layer_cosine_figure(np.zeros((2, 3)))
    with pytest.raises(InputError, match="labels"):
        layer_cosine_figure(m, layers=[1, 2, 3])


def test_code_scatter_one_panel_per_corruption():
    df = pd.DataFrame(
        {
            "kind": ["syntax"] * 3 + ["shuffle"] * 2,
            "correct_whole": [0.1, 0.2, 0.3, 0.4, 0.5],
            "corrupted_whole": [0.0, 0.3, 0.1, 0.2, 0.1],
        }
    )
    fig = code_scatter_figure(df)
    points = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in points] == ["syntax", "shuffle"]
    assert list(points[0].x) == [0.1, 0.2, 0.3] and list(points[0].y) == [0.0, 0.3, 0.1]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["syntax: correct > corrupted 67%", "shuffle: correct > corrupted 100%"]
    assert points[1].xaxis == "x2"  # its own panel


def test_backtracking_and_event_locked_figures():
    bands = pd.DataFrame(
        {
            "band_end": [1000, 500, 500, 1000],
            "backtracking": [True, True, False, False],
            "mean": [-0.05, -0.08, -0.081, -0.046],
            "ci_lo": [-0.06, -0.09, -0.09, -0.05],
            "ci_hi": [-0.04, -0.07, -0.07, -0.04],
            "n": [10, 12, 20, 18],
        }
    )
    fig = backtracking_band_figure(bands)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["backtracking=True", "backtracking=False"]
    assert list(lines[0].x) == [500, 1000] and list(lines[0].y) == [-0.08, -0.05]
    assert list(lines[0].customdata) == [12, 10]
    ev = pd.DataFrame({"offset": [1, -1, 0], "mean": [-0.05, -0.01, -0.04]})
    fig2 = event_locked_figure(ev)
    assert list(fig2.data[-1].x) == [-1, 0, 1] and list(fig2.data[-1].y) == [-0.01, -0.04, -0.05]


def test_dose_response_averages_per_layer_and_strength():
    df = pd.DataFrame(
        {
            "layer": [20] * 4 + [21] * 3,
            "alpha": [-5.0, -5.0, 5.0, 5.0, -5.0, 5.0, 5.0],
            "unit": "percent",
            "degenerate": [False] * 6 + [True],
            "n_tokens": [10, 20, 30, 50, 7, 9, 1000],
            "backtracking": [1, 0, 0, 0, 1, 1, 1],
        }
    )
    fig = dose_response_figure(df, ["n_tokens", "backtracking"])
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    l20 = [t for t in lines if t.name == "layer 20"]
    assert list(l20[0].x) == [-5.0, 5.0] and list(l20[0].y) == [15.0, 40.0]
    assert list(l20[1].y) == [0.5, 0.0]
    sem = np.std([10, 20], ddof=1) / np.sqrt(2)
    band = fig.data[fig.data.index(l20[0]) - 1]
    assert band.y[0] == pytest.approx(15 + sem)
    (l21,) = [t for t in lines if t.name == "layer 21" and t.xaxis == "x"]
    assert list(l21.y) == [7.0, 9.0]  # the degenerate row is left out
    assert "% of residual norm" in fig.layout.xaxis.title.text
    with pytest.raises(InputError):
        dose_response_figure(df, [])


def test_slope_heatmap_normalises_per_column_and_prints_raw():
    long = pd.DataFrame(
        {
            "layer": [20, 21, 20, 21],
            "metric": ["lines", "lines", "confidence", "confidence"],
            "slope": [-0.647, -0.3, 0.01, 0.065],
        }
    )
    fig = slope_heatmap_figure(long)
    hm = fig.data[0]
    assert list(hm.x) == ["lines", "confidence"] and list(hm.y) == ["20", "21"]
    np.testing.assert_allclose(np.asarray(hm.z), [[-1, 0.01 / 0.065], [-0.3 / 0.647, 1]])
    assert hm.text[0][0] == "-0.647" and hm.text[1][1] == "+0.065"
    wide = pd.DataFrame({"layer": [3], "a": [2.0], "b": [np.nan]})
    hm2 = slope_heatmap_figure(wide).data[0]
    assert hm2.text[0][1] == "" and np.asarray(hm2.z)[0, 0] == 1.0


def test_save_figure_html_offline_and_png_needs_kaleido(tmp_path, sweep_df):
    fig = sweep_figure(sweep_df)
    p = save_figure(fig, tmp_path / "s.html")
    assert external_urls(p.read_text()) == []
    with pytest.raises(InputError, match="suffix|use .html"):
        save_figure(fig, tmp_path / "s.txt")
    if not png_available():
        with pytest.raises(InputError, match="kaleido"):
            save_figure(fig, tmp_path / "s.png")
        assert not (tmp_path / "s.png").exists()


def test_sweep_and_cosine_figures_on_a_real_layer_sweep(tiny):
    from value_lens.analysis.sweep import cosine_matrix, layer_sweep
    from value_lens.data.tokens import LabelledTokens

    data = LabelledTokens.from_lists(
        [[1, 5, 6, 7, 40, 41, 42], [2, 9, 8, 7, 30, 31, 32]] * 3,
        [[-1, 0, 0, 0, 1, 1, 1]] * 6,
        list("abcdef"),
    )
    sw = layer_sweep(tiny, data, n_splits=2, n_train=4, n_random=4, progress=False)
    fig = sweep_figure(sw)
    s = sw.table.sort_values("layer")
    assert list(fig.data[-1].y) == s["token_auroc_mean"].tolist()
    np.testing.assert_allclose(fig.data[-2].y[: len(s)], s["token_auroc_ci_hi"])
    assert "95% CI, jackknife over group" in fig.layout.title.text
    names = {t.name for t in fig.data}
    assert {"sign-aligned random direction", "closeness to turn end"} <= names
    # a bare table knows nothing of the bootstrap: the label stays generic unless told
    assert "over sequence" not in sweep_figure(sw.table).layout.title.text
    told = sweep_figure(sw.table, ci_settings=sw.ci).layout.title.text
    assert told == fig.layout.title.text
    cm = cosine_matrix(sw)
    np.testing.assert_array_equal(np.asarray(layer_cosine_figure(cm).data[0].z), cm.to_numpy())


def test_confidence_prefill_figure_groups_by_answer_and_framing():
    df = pd.DataFrame(
        {
            "problem_id": [0, 0, 0, 0, 1, 1, 1, 1],
            "framing": ["correct", "correct", "incorrect", "incorrect"] * 2,
            "prefill": ["Yes", "No"] * 4,
            "value": [0.3, -0.1, -0.2, 0.25, 0.4, 0.0, -0.3, 0.1],
        }
    )
    fig = confidence_prefill_figure(df)
    assert [t.name for t in fig.data] == ["No", "Yes"] and fig.layout.boxmode == "group"
    yes = fig.data[1]
    assert list(yes.x) == ["correct", "incorrect"] * 2 and list(yes.y) == [0.3, -0.2, 0.4, -0.3]
