"""value_lens.viz.notebook: plotly figures keep Jupyter's mimetype and gain an offline HTML copy
(plotly.js inlined in the first figure only), which headless Chromium draws with the network off."""

from __future__ import annotations

import re
import subprocess

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from tests._offline import external_urls, require_chromium
from value_lens.viz.notebook import RENDERER, OfflineFigureRenderer, offline_figures

PLOTLY = "application/vnd.plotly.v1+json"


def _figs() -> tuple[go.Figure, go.Figure]:
    a = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]), layout={"title": {"text": "first"}})
    b = go.Figure(go.Scatter(y=[1, 3, 2], mode="lines"), layout={"height": 300})
    return a, b


def test_the_bundle_keeps_the_plotly_mimetype_and_adds_html():
    a, b = _figs()
    r = OfflineFigureRenderer()
    one, two = r.to_mimebundle(a.to_dict()), r.to_mimebundle(b.to_dict())
    for bundle, fig in ((one, a), (two, b)):
        assert set(bundle) == {PLOTLY, "text/html"}
        assert bundle[PLOTLY]["data"] == fig.to_plotly_json()["data"]
        assert "Plotly.newPlot" in bundle["text/html"] and "vl-plotly-note" in bundle["text/html"]
        assert not external_urls(bundle["text/html"])
    assert one["text/html"].count("plotly.js v") == 1  # the bundle, embedded once
    assert "plotly.js v" not in two["text/html"]
    assert "height:300px" in two["text/html"].replace(" ", "")  # the figure's own height kept
    assert "height:480px" in one["text/html"].replace(" ", "")  # a fixed height, never 100%


def test_offline_figures_becomes_the_default_renderer():
    before = pio.renderers.default
    try:
        r = offline_figures()
        assert pio.renderers.default == RENDERER and pio.renderers[RENDERER] is r
        a, _ = _figs()
        first, second = a._repr_mimebundle_(), a._repr_mimebundle_()
        assert PLOTLY in first and "Plotly.newPlot" in second["text/html"]
        assert r.plotlyjs_sent  # plotly draws with copies of the renderer; they share the state
        assert first["text/html"].count("plotly.js v") == 1
        assert "plotly.js v" not in second["text/html"]
    finally:
        pio.renderers.default = before


def test_chromium_draws_both_figures_offline_and_hides_the_note(tmp_path):
    r = OfflineFigureRenderer()
    parts = [r.to_mimebundle(f.to_dict())["text/html"] for f in _figs()]
    page = tmp_path / "page.html"
    page.write_text("<html><body>" + "".join(parts) + "</body></html>", encoding="utf-8")
    cmd = [
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=8000",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert len(re.findall(r'class="[^"]*js-plotly-plot', dom)) == 2  # plotly drew both divs
    assert dom.count('class="main-svg"') >= 2 and "heatmaplayer" in dom and "scatterlayer" in dom
    notes = re.findall(r'<div class="vl-plotly-note" style="([^"]*)"', dom)
    assert len(notes) == 2 and all("display: none" in n for n in notes)  # hidden once drawn


def test_without_scripts_the_note_is_what_shows():
    html = OfflineFigureRenderer().to_mimebundle(_figs()[1].to_dict())["text/html"]
    visible = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    assert "Interactive plotly figure" in visible


@pytest.mark.parametrize("n", [3])
def test_plotlyjs_is_sent_once_per_renderer(n):
    r = OfflineFigureRenderer()
    htmls = [r.to_mimebundle(_figs()[0].to_dict())["text/html"] for _ in range(n)]
    assert [h.count("plotly.js v") for h in htmls] == [1, 0, 0]
    assert (
        OfflineFigureRenderer()
        .to_mimebundle(_figs()[0].to_dict())["text/html"]
        .count("plotly.js v")
        == 1
    )  # a new renderer (a new kernel) embeds it again
