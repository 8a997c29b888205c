"""The terminal view of the value monitor (value_lens.viz.terminal) on the tiny Qwen3.

Oracles: the colour scale's end points for the rich segments, independent ``vl.generate`` /
``vl.trace`` calls for what ``watch`` and ``chat`` stream, and a stop rule every row must meet.
"""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console

import value_lens as vl
from value_lens.analysis.monitor import MonitorEvent
from value_lens.core.generate import GenerationConfig
from value_lens.pipeline.live_steps import WatchConfig, chat, watch
from value_lens.viz.terminal import TerminalView, token_text

GEN = GenerationConfig(max_new_tokens=6, temperature=1.0, seed=5)


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(1)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


def _console(colour: bool = False) -> Console:
    """A console on a string buffer; colour=True renders truecolor segments (for _cells)."""
    system = "truecolor" if colour else None
    return Console(file=io.StringIO(), width=120, color_system=system, force_terminal=False)


def _cells(renderable) -> list[tuple[str, tuple[int, int, int] | None]]:
    """(text, background rgb) of every drawn segment."""
    con = _console(colour=True)
    out = []
    for seg in con.render(renderable):
        if seg.text.strip("\n") and seg.style is not None:
            bg = seg.style.bgcolor
            out.append((seg.text, None if bg is None else tuple(bg.get_truecolor())))
    return out


def test_segment_colours_follow_the_values():
    values = [-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 3.0]
    cells = _cells(token_text([f"t{i}" for i in range(len(values))], values, 1.0))
    assert [c[0] for c in cells] == [f"t{i}" for i in range(len(values))]
    rgb = [c[1] for c in cells]
    for v, (r, _, b) in zip(values, rgb, strict=True):
        if v < 0:
            assert r > b  # red below zero
        elif v > 0:
            assert b > r  # blue above
    assert rgb[3] == (247, 247, 247)  # white at zero
    white = (247, 247, 247)

    def dist(c):
        return sum(abs(x - y) for x, y in zip(c, white, strict=True))

    assert dist(rgb[0]) > dist(rgb[1]) > dist(rgb[2]) > 0  # stronger the further from zero
    assert dist(rgb[6]) > dist(rgb[5]) > dist(rgb[4]) > 0
    assert rgb[0] == (178, 24, 43) and rgb[6] == rgb[7] == (33, 102, 172)  # clipped at vmax


def test_control_characters_never_reach_the_terminal():
    text = token_text(["a\x1b[31m", "\n", ""], [0.1, 0.2, 0.3], 1.0)
    assert "\x1b" not in text.plain and text.plain == "a\u241b[31m\u21b5\n\u2205"
    rest = token_text(["\x7f", "\r\x00", "\t"], [0.0, 0.0, 0.0], 1.0).plain
    assert rest == "\u2421\u240d\u2400\t"  # DEL, CR and NUL as pictures; a tab is kept


def test_terminal_view_draws_rows_on_a_shared_scale():
    view = TerminalView(labels=["first", "second"])
    view(MonitorEvent(0, 0, 1, "up", {3: 0.2}, {}))
    view(MonitorEvent(1, 0, 2, "down", {3: -0.4}, {}))
    cells = _cells(view)
    assert [c[0] for c in cells] == ["first", "up", "second", "down"]
    assert cells[1][1][2] > cells[1][1][0] and cells[3][1] == (178, 24, 43)
    assert cells[0][1] is None  # a label is not coloured


def test_watch_streams_the_generated_tokens_with_their_monitor_values(tiny, axis):
    prompts = ["hello there", "a much longer prompt about code"]
    con = _console()
    res = watch(tiny, axis, prompts, WatchConfig(layer=1), GEN, console=con)
    plain = vl.generate(tiny, [[{"role": "user", "content": p}] for p in prompts], GEN)
    shown = con.file.getvalue()
    pos = 0
    for i, (g, ref) in enumerate(zip(res.generations, plain, strict=True)):
        assert g.output_ids.tolist() == ref.output_ids.tolist()  # the monitor changes nothing
        row = res.stream.rows[i]
        assert row.token_ids == ref.output_ids.tolist()
        oracle = vl.trace(tiny, torch.cat([g.prompt_ids, g.output_ids]), axis, [1]).cosine[0]
        torch.testing.assert_close(
            torch.tensor(row.values), oracle[g.prompt_ids.numel() :], atol=1e-5, rtol=0
        )
        drawn = token_text(row.tokens, row.values, 1.0).plain
        at = shown.find(drawn, pos)
        assert at >= pos, (drawn, shown)  # streamed in row order
        pos = at + len(drawn)
    assert shown.endswith("\n")
    recs = res.records()
    assert [r["prompt"] for r in recs] == prompts and recs[0]["layer"] == 1
    assert recs[0]["mean"] == pytest.approx(sum(recs[0]["values"]) / len(recs[0]["values"]))
    assert res.summary()[1].startswith(f"[1] {res.generations[1].n_tokens} tokens, mean value")


def test_watch_stop_rule_ends_every_row(tiny, axis, tmp_path):
    cfg = WatchConfig(layer=1, aggregate="max:4", stop_below=2.0, stop_after=2)  # cosine < 2
    res = watch(tiny, axis, ["a", "b c"], cfg, GEN, console=_console())
    assert [g.n_tokens for g in res.generations] == [3, 3]
    assert all(g.stopped for g in res.generations)
    assert all("stopped by rule" in line and "final max" in line for line in res.summary())
    files = res.save(tmp_path)
    assert [p.name for p in files] == ["monitor.jsonl", "monitor.html"]
    assert files[1].read_text().count('class="vl-tok"') == 6


def test_chat_keeps_the_history_and_stops_at_exit(tiny, axis, tmp_path, monkeypatch):
    from value_lens.pipeline import live_steps

    fed = []  # the prompts each turn hands to generate (the tiny model barely reads them)

    def spy(model, prompts, *args, **kw):
        fed.append(prompts)
        return vl.generate(model, prompts, *args, **kw)

    monkeypatch.setattr(live_steps, "generate", spy)
    con = _console()
    lines = iter(["hi there\n", "\n", "and again\n", "/exit\n", "never read\n"])
    log = tmp_path / "chat.jsonl"
    turns = chat(tiny, axis, lines, WatchConfig(layer=0), GEN, console=con, transcript=log)
    assert [t["user"] for t in turns] == ["hi there", "and again"]
    assert next(lines) == "never read\n"  # nothing read after /exit
    history = [{"role": "user", "content": "hi there"}]
    first = vl.generate(tiny, [history], GEN)[0]
    history += [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "and again"},
    ]
    second = vl.generate(tiny, [history], GEN)[0]
    assert [t["assistant"] for t in turns] == [first.text, second.text]
    assert fed == [[history[:1]], [history]]  # each turn sends the whole conversation
    assert turns[1]["tokens"] == [tiny.tokenizer.decode([i]) for i in second.output_ids.tolist()]
    assert len(log.read_text().splitlines()) == 2
    out = con.file.getvalue()
    assert out.count("you>") == 4 and out.count("model>") == 2
    for t in turns:
        assert token_text(t["tokens"], t["values"], 1.0).plain in out


def test_watch_records_the_final_aggregate_and_raw_prompts_skip_the_chat_template(tiny, axis):
    cfg = WatchConfig(layer=1, aggregate="max:2", raw=True)
    res = watch(tiny, axis, ["hello there", "x"], cfg, GEN, console=_console())
    plain = vl.generate(tiny, ["hello there", "x"], GEN)  # raw text, no chat template
    for g, ref, rec in zip(res.generations, plain, res.records(), strict=True):
        assert g.prompt == ref.prompt == rec["prompt"]
        assert g.output_ids.tolist() == ref.output_ids.tolist()
        assert len(rec["values"]) >= 3  # so the final window differs from the first
        assert rec["aggregates"]["max"] == pytest.approx(max(rec["values"][-2:]))
