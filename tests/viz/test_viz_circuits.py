"""The CircuitsVis tokens x layers view: the trace's values, inlined JS, renders with no network."""

from __future__ import annotations

import html
import inspect
import json
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import torch

from tests._offline import external_urls, require_chromium
from value_lens.analysis.readout import ValueTrace, trace
from value_lens.errors import InputError, LayerError
from value_lens.fitting.axis import ValueAxis
from value_lens.viz.circuits import FALLBACK, circuits_token_view

_RENDER = re.compile(r"CircuitsVis\.render\(\"([\w-]+)\", CircuitsVis\.ColoredTokensMulti, (.*)\);")
_SPAN = re.compile(r"background-color: rgb\((\d+), (\d+), (\d+)\);[^>]*>(.*?)</span>")


def _planted() -> ValueTrace:
    # layer 4: +bound, 0, -bound/2, -bound ; layer 9: another scale
    cos = torch.tensor([[0.5, 0.0, -0.25, -0.5], [0.02, 0.04, -0.01, 0.0]])
    toks = ["<think>", " <b>bold", " plain\n", "ZZEND"]
    return ValueTrace(toks, torch.arange(4), [4, 9], cos, cos * 10, torch.full((4, 2), -1))


def _embedded_props(page: str) -> list[tuple[str, dict]]:
    """(element id, props) of every CircuitsVis.render call, read back from the HTML text."""
    return [(m.group(1), json.loads(m.group(2))) for m in _RENDER.finditer(page)]


def _render_offline(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """DOM after running the page's scripts with every network lookup failing, and the URLs the
    page itself asked for (Chromium's own background requests are not the page's)."""
    netlog = tmp / f"{page.stem}-net.json"
    cmd = [
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=8000",
        f"--user-data-dir={tmp / (page.stem + '-profile')}",
        f"--log-net-log={netlog}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    log, _ = json.JSONDecoder().raw_decode(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    asked = [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start_job
        and str(e["params"].get("network_isolation_key", "")).startswith("file://")
        and not e["params"]["url"].startswith("file:")
    ]
    return re.sub(r"<script.*?</script>", "", dom, flags=re.S), asked


@pytest.fixture(scope="module")
def real_trace(tiny):
    axis = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(3)), model_id=tiny.cfg.model_name
    )
    return trace(tiny, "The fox <b>jumps</b> & rests.\nWait: </script> 12%", axis)


def test_embedded_values_are_the_traces_cosines_and_projections(real_trace):
    lo, hi = 2, len(real_trace.tokens) - 1
    for metric in ("cosine", "projection"):
        view = circuits_token_view(real_trace, [1, 0], metric=metric, start=lo, stop=-1)
        ((_, props),) = _embedded_props(view.to_html())
        grid = getattr(real_trace, metric)
        expected = [
            [float(grid[real_trace.row(layer), t]) for layer in (1, 0)] for t in range(lo, hi)
        ]
        assert props["values"] == expected  # exact: fp32 -> JSON -> float round-trips
        assert props["labels"] == ["layer 1", "layer 0"]
        bounds = [
            max(abs(float(grid[real_trace.row(layer), t])) for t in range(lo, hi))
            for layer in (1, 0)
        ]
        assert props["positiveBounds"] == bounds
        assert props["negativeBounds"] == [-b for b in bounds]
        # tokens reach the component HTML-escaped (it writes them with innerHTML)
        assert props["tokens"] == [html.escape(t, quote=False) for t in real_trace.tokens[lo:hi]]
        assert "&lt;" in props["tokens"] and "&amp;" in props["tokens"]
        assert view.tokens == real_trace.tokens[lo:hi]
        assert view.positions == list(range(lo, hi))
    fixed = circuits_token_view(real_trace, vmax=0.3)
    assert _embedded_props(fixed.html)[0][1]["positiveBounds"] == [0.3, 0.3]


def test_html_inlines_the_installed_bundle_and_references_no_url(real_trace, tmp_path):
    view = circuits_token_view(real_trace)
    page = view.save(tmp_path / "v.html").read_text()
    assert external_urls(page) == []
    assert "unpkg" not in page and "esm.js" not in page and "google.com" not in page
    bundle = resources.files("circuitsvis").joinpath("dist", "cdn", "iife.js").read_text()
    assert len(bundle) > 500_000
    # the bundle is there whole, with its one "</script>" string literal escaped
    inlined = bundle.replace("</script>", "<\\/script>")
    assert page.count(inlined) == 1
    assert page.lower().count("</script") == 1
    assert re.findall(r"<script[^>]*>", page.replace(inlined, "")) == ['<script type="module">']
    # each rendering gets its own element id, so one page may hold the same view twice
    assert _embedded_props(view.html)[0][0] != _embedded_props(view.html)[0][0]


def test_view_renders_in_headless_chromium_with_the_network_off(tmp_path):
    view = circuits_token_view(_planted())
    page = tmp_path / "view.html"
    page.write_text(f"<!DOCTYPE html><html><body>{view.html}{view.html}</body></html>")
    dom, asked = _render_offline(page, tmp_path)
    assert asked == []
    assert FALLBACK not in dom  # React replaced the placeholder ...
    assert dom.count('class="colored-tokens"') == 2  # ... in both copies
    spans = [(tuple(map(int, m.groups()[:3])), m.group(4)) for m in _SPAN.finditer(dom)]
    assert [text for _, text in spans[:4]] == [
        "&lt;think&gt;",
        "&nbsp;&lt;b&gt;bold",
        "&nbsp;plain&nbsp;",
        "ZZEND",
    ]
    assert "<b>" not in dom and "<think>" not in dom  # tokens are text, not markup
    # layer 4 is selected first: +0.5 is the bound (pure blue), 0 white, -0.5 pure red, and
    # -0.25 only half red because the bounds are symmetric (CircuitsVis' default would be min)
    colours = [rgb for rgb, _ in spans[:4]]
    assert colours[0] == (0, 0, 255) and colours[1] == (255, 255, 255) and colours[3] == (255, 0, 0)
    r, g, b = colours[2]
    assert r == 255 and 0 < b < g < 255  # red mixed with white (CircuitsVis mixes in Lab)
    assert 'value="0.5"' in dom and 'value="-0.5"' in dom  # the bound boxes of layer 4
    assert dom.count(">layer 4<") == 2 and dom.count(">layer 9<") == 2


def test_the_cdn_rendering_is_caught_by_the_same_offline_check(tmp_path):
    # control: CircuitsVis' default HTML imports from unpkg; offline it asks the network, and draws nothing
    from circuitsvis.tokens import colored_tokens_multi

    page = tmp_path / "cdn.html"
    page.write_text(colored_tokens_multi(["ZZA", "ZZB"], torch.tensor([[1.0], [2.0]])).cdn_src)
    dom, asked = _render_offline(page, tmp_path)
    assert any("unpkg.com/circuitsvis" in url for url in asked)
    assert "colored-tokens" not in dom and "ZZA" not in dom


def test_bad_input_names_the_fix():
    tr = _planted()
    with pytest.raises(LayerError, match="holds layers"):
        circuits_token_view(tr, [5])
    with pytest.raises(InputError, match="metric"):
        circuits_token_view(tr, metric="logit")
    with pytest.raises(InputError, match="holds no token"):
        circuits_token_view(tr, start=4)
    bad = ValueTrace(
        tr.tokens, tr.token_ids, tr.layers, tr.cosine.clone(), tr.projection, tr.offsets
    )
    bad.cosine[1, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        circuits_token_view(bad)
    assert circuits_token_view(bad, [4]).values[2] == [-0.25]  # other layers still draw
    with pytest.raises(InputError, match="ValueTrace"):
        inspect.unwrap(circuits_token_view)({"a": tr})  # type: ignore[arg-type]
