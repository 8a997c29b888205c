"""The offline HTML report: self-contained, no external URL, renders in headless Chromium."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from tests._offline import external_urls, png_pixels, screenshot
from value_lens._version import __version__
from value_lens.analysis.readout import ValueTrace
from value_lens.errors import InputError
from value_lens.pipeline.report import report_from_dir
from value_lens.pipeline.rundir import RESULT_FILES, load_trace, save_trace, update_meta
from value_lens.viz import layer_token_heatmap, token_heatmap, write_report


def _trace(n=40, layers=(0, 1, 2)) -> ValueTrace:
    g = torch.Generator().manual_seed(0)
    return ValueTrace(
        [f" w{i}" for i in range(n)],
        torch.arange(n),
        list(layers),
        torch.randn(len(layers), n, generator=g) * 0.2,
        torch.randn(len(layers), n, generator=g),
        torch.full((n, 2), -1),
    )


def _sections():
    tr = _trace()
    table = pd.DataFrame({"layer": [0, 1, 2], "token_auroc_mean": [0.61, 0.82, 0.74]})
    return [
        ("A plotly heatmap", layer_token_heatmap(tr)),
        ("Tokens", token_heatmap(tr, 1)),
        ("A table", table),
        ("Notes", "First paragraph.\n\nSecond <b>paragraph</b>."),
    ]


def test_report_is_one_offline_file_with_plotly_inlined_once(tmp_path):
    p = write_report(
        tmp_path / "r.html",
        _sections(),
        metadata={"model": "tiny", "layers": [0, 1, 2], "seeds": [0, 1]},
    )
    html = p.read_text()
    assert external_urls(html) == []
    assert "cdn.plot.ly/plotly" not in html.split("<body>")[1]
    assert html.count("Plotly.newPlot") == 1  # the one figure
    from plotly.offline import get_plotlyjs

    assert html.count(get_plotlyjs()[:2000]) == 1  # plotly.js inlined exactly once
    for fact in ("model", "tiny", "0, 1, 2", f"value_lens {__version__}", "torch"):
        assert fact in html
    assert "Second &lt;b&gt;paragraph&lt;/b&gt;." in html
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.html"]


def test_report_directory_mode_uses_one_local_plotly(tmp_path):
    p = write_report(tmp_path / "r.html", _sections(), plotlyjs="directory")
    html = p.read_text()
    assert '<script type="text/javascript" src="plotly.min.js">' in html
    assert external_urls(html) == [] and len(html) < 500_000
    assert (tmp_path / "plotly.min.js").stat().st_size > 3_000_000
    with pytest.raises(InputError, match="no CDN"):
        write_report(tmp_path / "x.html", _sections(), plotlyjs="cdn")


def test_report_rejects_unknown_items(tmp_path):
    with pytest.raises(InputError, match="report item"):
        write_report(tmp_path / "r.html", [("bad", object())])


def test_report_renders_offline_in_headless_chromium(tmp_path):
    fig = go.Figure(go.Heatmap(z=[[1.0, -1.0], [0.5, -0.5]], colorscale="RdBu"))
    fig.update_layout(height=500)
    p = write_report(tmp_path / "r.html", [("Only a plotly figure", fig)])
    w, h, px = png_pixels(screenshot(p, tmp_path / "shot.png", width=900, height=900))
    assert (w, h) == (900, 900)
    non_white = sum(1 for q in px if min(q) < 235) / len(px)
    # saturated red/blue pixels only exist if plotly.js ran (the text and tables are grey)
    coloured = sum(1 for r, g, b in px if max(r, g, b) - min(r, g, b) > 80) / len(px)
    assert non_white > 0.05, f"screenshot is blank ({non_white:.1%} non-white)"
    assert coloured > 0.05, f"the plotly figure did not render ({coloured:.1%} coloured)"


def test_token_heatmap_renders_in_chromium(tmp_path):
    p = token_heatmap(_trace(200), 1).save(tmp_path / "t.html")
    _, _, px = png_pixels(screenshot(p, tmp_path / "t.png", width=600, height=400))
    coloured = sum(1 for r, g, b in px if max(r, g, b) - min(r, g, b) > 40) / len(px)
    assert coloured > 0.05


def test_report_from_results_dir(tmp_path):
    update_meta(tmp_path, model="tiny", layers=[0, 1, 2], seed=3, heatmap_layer=1)
    pd.DataFrame(
        {
            "layer": [0, 1, 2],
            "token_auroc_mean": [0.6, 0.9, 0.8],
            "token_auroc_sd": [0.1] * 3,
            "position_auroc": [0.5, 0.5, 0.6],
        }
    ).to_csv(tmp_path / RESULT_FILES["sweep"], index=False)
    pd.DataFrame(
        {"layer": [20, 20, 21, 21], "alpha": [-5, 5, -5, 5], "n_tokens": [10, 5, 8, 6]}
    ).to_csv(tmp_path / RESULT_FILES["dose"], index=False)
    tr = _trace()
    save_trace(tr, tmp_path / "trace-success.json", title="a successful conversation")
    back, title = load_trace(tmp_path / "trace-success.json")
    assert title == "a successful conversation" and back.tokens == tr.tokens
    torch.testing.assert_close(back.cosine, tr.cosine)
    html = report_from_dir(tmp_path).read_text()
    assert external_urls(html) == []
    for head in ("Held-out layer sweep", "a successful conversation", "Steering dose-response"):
        assert head in html
    assert html.count("Plotly.newPlot") == 4  # control panel, sweep, layer heatmap, dose-response
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no results"):
        report_from_dir(empty)


def test_report_labels_the_sweep_ci_and_the_sds(tmp_path):
    update_meta(
        tmp_path,
        sweep={"n_splits": 10, "ci": {"cluster": "conversation_id", "level": 0.9, "n_boot": 1000}},
    )
    pd.DataFrame(
        {
            "layer": [0, 1],
            "token_auroc_mean": [0.6, 0.9],
            "token_auroc_sd": [0.1, 0.1],
            "token_auroc_ci_lo": [0.5, 0.8],
            "token_auroc_ci_hi": [0.7, 0.95],
        }
    ).to_csv(tmp_path / RESULT_FILES["sweep"], index=False)
    html = report_from_dir(tmp_path).read_text()
    # the CSV lost the DataFrame's attrs; run.json's sweep.ci names the bootstrap's clusters
    assert "90% CI, cluster bootstrap over conversation_id" in html
    assert "not standard errors" in html and "function_score_sd_all_scores" in html


def test_report_shows_the_method_table_with_intervals(tmp_path):
    pd.DataFrame(
        {
            "method": ["mean_diff", "erased"],
            "layer": [3, 5],
            "token_auroc_mean": [0.81, 0.74],
            "token_auroc_ci_lo": [0.7, 0.6],
            "token_auroc_ci_hi": [0.9, 0.88],
            "rd_value": [0.2, float("nan")],
            "n_tokens_slope": [-1.25, 0.5],
            "n_tokens_slope_lo": [-2.0, -0.5],
            "n_tokens_slope_hi": [-0.5, 1.5],
        }
    ).to_csv(tmp_path / RESULT_FILES["methods"], index=False)
    html = report_from_dir(tmp_path).read_text()
    assert "Which direction detects and which steers" in html
    assert "0.81 [0.70, 0.90]" in html and "-1.25 [-2.00, -0.50]" in html and "n/a" in html


def test_missing_chromium_fails_in_ci_and_skips_locally(monkeypatch):
    import tests._offline as off

    monkeypatch.setattr(off.shutil, "which", lambda _name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        off.require_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        off.require_chromium()


def _controls_sweep(value, lo, hi, placebo=0.55):
    """A sweep table whose best layer (1) has the given rd_value and interval."""
    return pd.DataFrame(
        {
            "layer": [0, 1, 2],
            "token_auroc_mean": [0.6, 0.9, 0.7],
            "token_auroc_ci_lo": [0.5, 0.85, 0.6],
            "token_auroc_ci_hi": [0.7, 0.95, 0.8],
            "token_auroc_between": [0.6, 0.88, 0.7],
            "token_auroc_within": [0.6, 0.97, 0.7],
            "matched_auroc": [0.5, np.nan, 0.55],
            "matched_n_pairs": [3.0, 3.0, 3.0],
            "placebo_auroc": [0.6, placebo, 0.6],
            "placebo_auroc_ci_lo": [0.5, placebo - 0.05, 0.5],
            "placebo_auroc_ci_hi": [0.7, placebo + 0.05, 0.7],
            "end_proximity_auroc": [0.8, 0.8, 0.8],
            "placebo_end_proximity_auroc": [0.79, 0.79, 0.79],
            "random_auroc_mean": [0.5, 0.51, 0.5],
            "random_auroc_p95": [0.56, 0.57, 0.56],
            "rd_jump": [0.1, value + 0.3, 0.2],
            "rd_jump_ci_lo": [0.0, value + 0.1, 0.1],
            "rd_jump_ci_hi": [0.2, value + 0.5, 0.3],
            "rd_placebo_jump": [0.1, 0.3, 0.1],
            "rd_value": [0.0, value, 0.1],
            "rd_value_ci_lo": [-0.1, lo, 0.0],
            "rd_value_ci_hi": [0.1, hi, 0.2],
            "few_clusters": [True, True, True],
        }
    )


@pytest.mark.parametrize(
    ("value", "lo", "hi", "verdict"),
    [
        (0.4, 0.12, 0.68, "carries value information beyond position"),
        (0.01, -0.06, 0.08, "shows no value information beyond position"),
        (0.2, -0.2, 0.6, "cannot be told apart from position"),
    ],
)
def test_report_first_section_answers_from_the_numbers(tmp_path, value, lo, hi, verdict):
    update_meta(
        tmp_path,
        sweep={"ci": {"cluster": "group", "level": 0.95}, "smallest_effect": 0.1},
        code_suite={
            "layer": 1,
            "d": 0.42,
            "d_ci_lo": 0.11,
            "d_ci_hi": 0.77,
            "level": 0.95,
            "n_problems": 12,
            "n_pairs": 48,
            "pct_correct_higher": 68.75,
        },
    )
    _controls_sweep(value, lo, hi).to_csv(tmp_path / RESULT_FILES["sweep"], index=False)
    html = report_from_dir(tmp_path, intro="Intro text.").read_text()
    first = html.index("<h2>About this run</h2>")
    end = html.index("<h2>", first + 5)
    section = html[first:end]
    assert html.index("<h2>") == first and "Intro text." in section  # the first section
    # the verdict quotes the best layer's rd_value and interval (hand-written above)
    assert f"At layer 1 the axis {verdict}" in section
    assert f"{value:.2f} [{lo:.2f}, {hi:.2f}] within-turn sd" in section
    assert "not enough matched pairs" in section and "Fewer than 10 held-out clusters" in section
    assert "0.88 between turns, 0.97 within turns" in section
    # the discontinuity panel, then the AUROC control panel with the interval's name
    assert "Value beyond position at layer 1" in section
    assert section.index("Value beyond position at layer 1") < section.index(
        "Value axis and controls at layer 1"
    )
    assert "95% CI, jackknife over group" in section and "axis on placebo turns" in section
    # the code suite's sentence, from run.json's numbers
    assert "Cohen&#x27;s d = 0.42 (95% CI [0.11, 0.77], over 12 problems, 48 pairs" in section
    assert "position is the same" not in section  # not true of rename and syntax corruptions
    assert "the interval excludes 0" in section and "69% of pairs" in section


def test_report_without_the_matched_control_has_no_sentence(tmp_path):
    """Older sweep tables (no discontinuity) keep the sweep section and no sentence."""
    pd.DataFrame({"layer": [0, 1], "token_auroc_mean": [0.6, 0.9]}).to_csv(
        tmp_path / RESULT_FILES["sweep"], index=False
    )
    html = report_from_dir(tmp_path).read_text()
    assert "the axis carries" not in html and "Held-out layer sweep" in html
    assert "Value axis and controls at layer 1" in html  # the panel still shows the axis


@pytest.mark.parametrize(("depth", "shown"), [(36, 20), (30, 15)])
def test_report_heatmap_layer_defaults_to_the_papers_on_its_depth(tmp_path, depth, shown):
    """Without a recorded heatmap layer, a trace of every layer is shown at default_layer of
    run.json's n_layers: the paper's 20 on a 36-block model (not the middle 18), else the middle."""
    update_meta(tmp_path, n_layers=depth)
    save_trace(_trace(n=12, layers=range(depth)), tmp_path / "trace-all.json", title="all")
    html = report_from_dir(tmp_path).read_text()
    assert f"value (cosine) at layer {shown}" in html
    assert "value (cosine) at layer 18" not in html or shown == 18


def test_report_shows_steering_reliability_per_prompt(tmp_path):
    rel = pd.DataFrame(
        {
            "layer": [3],
            "metric": ["n_tokens"],
            "n_prompts": [8],
            "mean_slope": [-0.41],
            "anti_frac": [0.125],
            "anti_lo": [0.02],
            "anti_hi": [0.47],
            "spearman_mean": [-0.6],
        }
    )
    rel.to_csv(tmp_path / RESULT_FILES["reliability"], index=False)
    html = report_from_dir(tmp_path).read_text()
    assert "<h2>Steering reliability per prompt</h2>" in html
    assert "anti-steerable" in html and "-0.41" in html and "0.125" in html
