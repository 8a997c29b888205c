"""The Jupyter live view of the value monitor (value_lens.viz.live) on the tiny Qwen3.

Oracles: the monitor's own trace and an independent no-cache ``vl.trace`` of prompt + generated
ids for the span values; a fake display handle for the in-place updates; a headless-Chromium
screenshot whose coloured pixels are counted per row against the planted span counts and signs.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest
import torch

import value_lens as vl
from tests._offline import external_urls, png_pixels, screenshot
from value_lens.analysis.monitor import MonitorEvent, monitor
from value_lens.errors import InputError
from value_lens.viz.live import LiveHeatmap, Throttle, TokenStream

PROMPTS = ["the value of a", "a much longer prompt about code and tests here", "x"]


class _Spans(HTMLParser):
    """The token spans of a live view: (row, step, value, tooltip, text) in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and "data-value" in a:
            self._open = {**a, "text": ""}
            self.spans.append(self._open)

    def handle_endtag(self, tag):
        if tag == "span":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def spans(html: str) -> list[dict]:
    p = _Spans()
    p.feed(html)
    return p.spans


class FakeHandle:
    """Stands in for IPython's DisplayHandle: records the HTML of the display and each update."""

    def __init__(self, obj) -> None:
        self.shown = [obj._repr_html_()]

    def update(self, obj) -> None:
        self.shown.append(obj._repr_html_())


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(0)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


def test_live_heatmap_fills_in_place_with_one_span_per_token_at_the_monitor_values(tiny, axis):
    handles: list[FakeHandle] = []

    def display(obj):
        handles.append(FakeHandle(obj))
        return handles[-1]

    live = LiveHeatmap(1, labels=PROMPTS, throttle=Throttle(every=3, seconds=None), display=display)
    mon = monitor(axis, [0, 1], score_layer=1, on_token=live)
    gens = vl.generate(tiny, PROMPTS, monitor=mon, max_new_tokens=7, temperature=1.0, seed=3)
    final = live.finish()

    assert len(handles) == 1  # one output, updated in place
    shown = handles[0].shown
    counts = [h.count('class="vl-tok"') for h in shown]
    total = sum(g.n_tokens for g in gens)
    assert total > 0 and counts[-1] == total and shown[-1] == final
    assert counts[0] == 1 and counts == sorted(counts) and len(set(counts)) >= 3  # it fills
    assert "generating" in shown[0] and "done" in final

    got = spans(final)
    assert len(got) == total
    for row, g in enumerate(gens):
        mine = [s for s in got if s["data-row"] == str(row)]
        assert [int(s["data-step"]) for s in mine] == list(range(g.n_tokens))
        vals = torch.tensor([float(s["data-value"]) for s in mine])
        n_prompt = g.prompt_ids.numel()
        same_pass = g.trace.cosine[g.trace.row(1), n_prompt:]
        assert vals.tolist() == same_pass.tolist()  # the exact values the monitor read
        oracle = vl.trace(tiny, torch.cat([g.prompt_ids, g.output_ids]), axis, [1]).cosine[0]
        torch.testing.assert_close(vals, oracle[n_prompt:], atol=1e-5, rtol=0)
        texts = [tiny.tokenizer.decode([t]) for t in g.output_ids.tolist()]
        assert [s["title"].split(" | ")[1] for s in mine] == [repr(t) for t in texts]
        assert "ema" in mine[-1]["title"]


def test_live_html_is_offline_escaped_and_self_contained():
    live = LiveHeatmap(display=False, title="<t>")
    live(MonitorEvent(0, 0, 1, "<b>&x", {3: 0.5}, {"ema": 0.5}))
    live(MonitorEvent(0, 1, 2, "\n", {3: -0.25}, {"ema": 0.4}))
    doc = live.to_html()
    assert external_urls(doc) == [] and "<script" not in doc and "http" not in doc
    assert "&lt;b&gt;&amp;x" in doc and "<b>" not in doc and "&lt;t&gt;" in doc
    assert "<t>" not in doc  # the page's heading too, not only its <title>
    labelled = LiveHeatmap(display=False, labels=["<u>"])
    labelled(MonitorEvent(0, 0, 1, "a", {3: 0.5}, {}))
    assert "<u>" not in labelled.html() and "&lt;u&gt;" in labelled.html()
    assert [s["text"] for s in spans(doc)] == ["<b>&x", "\u21b5"]
    assert live.html() == live._repr_html_()


def test_live_heatmap_outside_a_notebook_only_accumulates():
    live = LiveHeatmap()  # display=True, but no kernel is running under pytest
    for k in range(3):
        live(MonitorEvent(0, k, k, f"t{k}", {0: 0.1 * k}, {}))
    assert live._handle is None and live.updates >= 1
    assert [float(s["data-value"]) for s in spans(live.html())] == [0.0, 0.1, 0.2]


def test_throttle_redraws_by_count_and_by_clock():
    now = [0.0]
    handles: list[FakeHandle] = []
    show = lambda obj: handles.append(FakeHandle(obj)) or handles[-1]  # noqa: E731
    live = LiveHeatmap(throttle=Throttle(every=4, seconds=1.0, clock=lambda: now[0]), display=show)
    for k, t in enumerate([0.0, 0.1, 0.2, 0.3, 0.4, 1.5, 1.6]):
        now[0] = t
        live(MonitorEvent(0, k, k, "a", {0: 0.0}, {}))
    # first token shows; token 4 (four pending) redraws; token 5 arrives 1.1 s after that
    assert [h.count("vl-tok") for h in handles[0].shown] == [1, 5, 6]
    live.finish()
    assert handles[0].shown[-1].count("vl-tok") == 7
    with pytest.raises(InputError, match="every"):
        Throttle(every=0)


def test_stream_rejects_out_of_order_events_and_unmonitored_layers():
    s = TokenStream(2)
    with pytest.raises(InputError, match="layer 2 is not monitored"):
        s.add(MonitorEvent(0, 0, 1, "a", {5: 0.1}, {}))
    s = TokenStream()
    s.add(MonitorEvent(0, 0, 1, "a", {5: 0.1}, {}))
    with pytest.raises(InputError, match="clear"):
        s.add(MonitorEvent(0, 0, 1, "a", {5: 0.1}, {}))
    with pytest.raises(InputError, match="vmax"):
        LiveHeatmap(vmax=0.0)


def test_symmetric_scale_and_fixed_vmax():
    live = LiveHeatmap(display=False)
    live(MonitorEvent(0, 0, 1, "a", {0: 0.2}, {}))
    live(MonitorEvent(0, 1, 2, "b", {0: -0.4}, {}))
    html = live.html()
    assert "background:#b2182b" in html  # -0.4 is the largest |value|: full red
    assert "+0.4" in html and "-0.4" in html  # the legend's limits
    fixed = LiveHeatmap(display=False, vmax=0.2)
    fixed(MonitorEvent(0, 0, 1, "a", {0: 0.2}, {}))
    assert "background:#2166ac" in fixed.html()  # 0.2 at vmax 0.2: full blue


def _coloured(px: tuple[int, int, int]) -> str | None:
    r, g, b = px
    if max(px) - min(px) < 60:
        return None  # white, grey or black
    return "red" if r > b else "blue"


def test_live_heatmap_screenshot_has_coloured_spans_in_proportion(tmp_path):
    """Rows of 6, 12 and 18 planted tokens (blue, red, blue) draw 1:2:3 coloured areas."""
    plan = [(0, 6, 1.0), (1, 12, -1.0), (2, 18, 1.0)]
    live = LiveHeatmap(display=False, vmax=1.0, labels=["six", "twelve", "eighteen"])
    for row, n, v in plan:
        for k in range(n):
            live(MonitorEvent(row, k, k, "word ", {0: v}, {}))
    page = live.save(tmp_path / "live.html")
    assert len(spans(page.read_text())) == 36
    w, h, px = png_pixels(screenshot(page, tmp_path / "live.png", width=900, height=500))
    assert w == 900 and h == 500
    bands: list[dict[str, int]] = []  # runs of pixel rows holding coloured pixels
    inside = False
    for y in range(h):
        kinds = [_coloured(px[y * w + x]) for x in range(w)]
        n = {"red": kinds.count("red"), "blue": kinds.count("blue")}
        if n["red"] + n["blue"] > 0:
            if not inside:
                bands.append({"red": 0, "blue": 0})
            bands[-1]["red"] += n["red"]
            bands[-1]["blue"] += n["blue"]
        inside = n["red"] + n["blue"] > 0
    assert len(bands) >= 3, bands  # three token rows (then the legend)
    rows = bands[:3]
    assert rows[0]["blue"] > 20 * max(1, rows[0]["red"])
    assert rows[1]["red"] > 20 * max(1, rows[1]["blue"])
    assert rows[2]["blue"] > 20 * max(1, rows[2]["red"])
    area = [sum(b.values()) for b in rows]
    per_span = [a / n for a, (_, n, _) in zip(area, plan, strict=True)]
    assert per_span[0] > 100  # a token cell is a real coloured block, not an outline
    assert max(per_span) / min(per_span) < 1.15, per_span
    assert math.isclose(area[1] / area[0], 2.0, rel_tol=0.15)
    assert math.isclose(area[2] / area[0], 3.0, rel_tol=0.15)


@pytest.mark.slow  # starts a kernel that imports value_lens (about 15 s)
def test_in_a_jupyter_kernel_the_view_is_one_output_updated_in_place(tmp_path):
    """A real kernel (nbclient + ipykernel): the cell keeps one display whose final HTML holds
    every generated token and is marked done; the intermediate draws replaced it in place."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    code = (
        "import torch, value_lens as vl\n"
        "torch.set_num_threads(1)\n"
        "from value_lens.testing import tiny_qwen3\n"
        "from value_lens.viz.live import LiveHeatmap, Throttle\n"
        "model = tiny_qwen3()\n"
        "axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)\n"
        "with LiveHeatmap(1, throttle=Throttle(every=2, seconds=None)) as live:\n"
        "    gens = vl.generate(model, ['hi', 'yo'], monitor=vl.monitor(axis, 1, on_token=live),\n"
        "                       max_new_tokens=6, temperature=1.0)\n"
        "print('tokens', sum(g.n_tokens for g in gens), 'updates', live.updates)\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(tmp_path))
    outs = nb.cells[0].outputs
    shown = [o for o in outs if o.output_type == "display_data"]
    assert len(shown) == 1, outs
    html = shown[0].data["text/html"]
    printed = "".join(o.text for o in outs if o.output_type == "stream" and o.name == "stdout")
    n, updates = (int(x) for x in printed.split()[1::2])
    assert updates >= 3  # it was redrawn several times...
    assert html.count('class="vl-tok"') == n > 0 and "done" in html  # ...in the one output
    assert "<script" not in html
