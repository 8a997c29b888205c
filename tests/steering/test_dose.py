"""Dose-response sweeps: metrics, slopes, resumable logging, and an end-to-end SmolLM2 grid."""

from __future__ import annotations

import inspect
import math

import pandas as pd
import pytest
import torch

import value_lens.steering.dose as dose_mod
from value_lens.analysis.text_metrics import code_metrics, repetition_rate, text_metrics, yes_no
from value_lens.core.generate import GenerationConfig
from value_lens.core.model import d_model, model_id, n_layers
from value_lens.errors import CalibrationError, InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.dose import DoseGrid, dose_response, dose_slopes
from value_lens.steering.strength import calibrate

PROMPTS = ["the value of a", "a much longer prompt about code", "x"]


def _axis(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=g), model_id=model_id(model)
    )


def test_text_metrics():
    code = (
        "Sure.\n```python\n# helper\ndef f(x: int, y) -> int:\n    z: int = x  # keep\n"
        "    return z\n```\n```python\nignored = 1\n```"
    )
    assert code_metrics(code) == {"code_lines": 4.0, "comment_lines": 1.0, "type_hints": 3.0}
    broken = code_metrics("```python\ndef f(:\n")  # unterminated and unparsable
    assert broken["code_lines"] == 1.0 and math.isnan(broken["type_hints"])
    assert all(math.isnan(v) for v in code_metrics("no code here").values())
    assert (yes_no("Yes, it will."), yes_no("No."), yes_no("*no*")) == (1.0, 0.0, 0.0)
    assert math.isnan(yes_no("I think yes")) and math.isnan(yes_no("Nothing"))
    assert repetition_rate([1, 2, 3, 4, 5]) == 0.0 and repetition_rate([7] * 10) == pytest.approx(
        6 / 7
    )
    m = text_metrics("Hmm. Wait, but wait. I made a mistake.", list(range(9)))
    assert (m["backtrack"], m["n_backtrack"], m["n_tokens"]) == (1.0, 4.0, 9.0)
    assert not m["degenerate"]
    loop = text_metrics("the cat sat " * 40, [5, 6, 7] * 40)
    assert loop["degenerate"] and loop["compression"] < 0.2 and loop["rep4"] > 0.9


def test_slopes_drop_degenerate_strengths_and_need_three():
    f = pd.DataFrame(
        {
            "layer": 3,
            "alpha": [-2.0, -2.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0],
            "degenerate": [True, True, False, True, False, False, False, False],
            "n_tokens": [99.0, 99.0, 6.0, 99.0, 4.0, 4.0, 2.0, 2.0],
        }
    )
    s = dose_slopes(f, ["n_tokens"]).iloc[0]
    # alpha -2 is all degenerate (dropped); -1 keeps its one valid output (half degenerate)
    assert s["n_strengths"] == 3 and s["slope"] == pytest.approx(-2.0)
    assert dose_slopes(f, ["n_tokens"], per=25.0).iloc[0]["slope"] == pytest.approx(-50.0)
    assert math.isnan(dose_slopes(f[f["alpha"] >= 0], ["n_tokens"]).iloc[0]["slope"])


def test_resumes_from_the_log_without_redoing_cells(tiny, tmp_path, monkeypatch):
    axis = _axis(tiny)
    gen = GenerationConfig(max_new_tokens=3)
    grid = DoseGrid(layers=[0, 1], alphas=[-3.0, 0.0, 3.0], unit="raw", seeds=[0, 1])
    kw = dict(grid=grid, gen=gen, progress=False)
    full = dose_response(tiny, axis, PROMPTS, **kw)
    # 2 shared baseline cells + 2 layers x 2 nonzero alphas x 2 seeds
    assert len(full.frame) == 2 * 3 * 2 * len(PROMPTS)
    base = full.frame[full.frame["alpha"] == 0]
    assert base[base["layer"] == 0]["text"].tolist() == base[base["layer"] == 1]["text"].tolist()

    calls = []
    real = dose_mod.generate

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the run is killed mid-sweep
        return real(*a, **k)

    log = tmp_path / "dose.jsonl"
    monkeypatch.setattr(dose_mod, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        dose_response(tiny, axis, PROMPTS, log=log, **kw)
    assert len(log.read_text().splitlines()) == 3

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(dose_mod, "generate", counting)
    calls.clear()
    resumed = dose_response(tiny, axis, PROMPTS, log=log, **kw)
    assert len(calls) == 10 - 3  # only the cells the killed run had not finished
    pd.testing.assert_frame_equal(resumed.frame, full.frame)
    calls.clear()
    again = dose_response(tiny, axis, PROMPTS, log=log, **kw)
    assert calls == []
    pd.testing.assert_frame_equal(again.slopes, full.slopes)
    with pytest.raises(InputError, match="different sweep configuration"):
        dose_response(
            tiny, axis, PROMPTS, log=log, **{**kw, "gen": gen.with_overrides(max_new_tokens=4)}
        )


def test_bad_grids_fail_before_generating(tiny, monkeypatch):
    monkeypatch.setattr(dose_mod, "generate", lambda *_, **__: pytest.fail("generated"))
    axis = _axis(tiny)
    with pytest.raises(CalibrationError):
        dose_response(tiny, axis, PROMPTS, grid=DoseGrid(layers=0), progress=False)
    with pytest.raises(InputError, match="finite"):
        dose_response(
            tiny, axis, PROMPTS, grid=DoseGrid(layers=0, alphas=[float("nan")], unit="raw")
        )
    with pytest.raises(InputError, match="prompts"):
        dose_response(tiny, axis, "just one string", grid=DoseGrid(layers=0, unit="raw"))
    with pytest.raises(InputError, match="strength unit"):  # untyped callers get the fix
        inspect.unwrap(DoseGrid.__init__)(object.__new__(DoseGrid), unit="percnet")


def test_smollm_dose_grid_end_to_end(smollm):
    axis = _axis(smollm, seed=3)
    layer = 20
    prompts = [
        {
            "id": "yn",
            "kind": "yesno",
            "prompt": [
                {"role": "user", "content": "Is 17 a prime number? Respond only Yes or No."}
            ],
        },
        {
            "id": "code",
            "kind": "code",
            "prompt": [
                {"role": "user", "content": "Write a python function that adds two numbers."}
            ],
        },
    ]
    cal = calibrate(
        smollm, axis, texts=["The quick brown fox jumps over the lazy dog."], layers=[layer]
    )
    res = dose_response(
        smollm,
        axis,
        prompts,
        grid=DoseGrid(layers=layer, alphas=[-10.0, 0.0, 10.0], unit="percent", calibration=cal),
        gen=GenerationConfig(max_new_tokens=12),
        progress=False,
    )
    f = res.frame
    assert len(f) == 6 and set(f["alpha"]) == {-10.0, 0.0, 10.0}
    assert f["raw_alpha"].abs().max() == pytest.approx(0.1 * cal.resid_norm[layer])
    assert (f["n_tokens"] > 0).all() and (f["n_tokens"] <= 12).all()
    assert f[f["kind"] == "code"]["yes"].isna().all()  # yes-rate only for yes/no prompts
    assert set(res.slopes["metric"]) >= {"n_tokens", "yes", "backtrack", "rep4"}
    assert math.isfinite(res.slopes.set_index("metric").loc["n_tokens", "slope"])
    # steering at +-10% of the norm changes at least one greedy output
    texts = f.pivot(index="prompt_id", columns="alpha", values="text")
    assert (texts[-10.0] != texts[0.0]).any() or (texts[10.0] != texts[0.0]).any()


def test_thinking_off_by_default_and_recorded(tiny, monkeypatch):
    seen = []
    real = dose_mod.generate

    def spy(model, texts, *a, **k):
        seen.extend(texts)
        return real(model, texts, *a, **k)

    monkeypatch.setattr(dose_mod, "generate", spy)
    msgs = [[{"role": "user", "content": "Is 7 prime? Respond only Yes or No."}]]
    gen = GenerationConfig(max_new_tokens=2, temperature=0.7, top_p=0.9)
    kw = dict(grid=DoseGrid(layers=0, alphas=[0.0, 2.0], unit="raw"), progress=False)
    res = dose_response(tiny, _axis(tiny), msgs, gen=gen, **kw)
    assert seen and all(t.endswith("assistant\n<think>\n\n</think>\n\n") for t in seen)
    assert res.settings["enable_thinking"] is False and res.settings["unit"] == "raw"
    seen.clear()
    on = dose_response(tiny, _axis(tiny), msgs, gen=gen.with_overrides(enable_thinking=True), **kw)
    assert seen and all(t.endswith("assistant\n") for t in seen)
    assert on.settings["enable_thinking"] is True


def test_paper_fig11_recipe_same_raw_alpha_at_every_layer_slopes_per_25(tiny):
    """Fig. 11: one raw alpha grid for every layer; slopes per 25 raw units (numpy oracle)."""
    res = dose_response(
        tiny,
        _axis(tiny),
        PROMPTS,
        grid=DoseGrid(layers=[0, 1], alphas=dose_mod.PAPER_RAW_ALPHAS, unit="raw"),
        gen=GenerationConfig(max_new_tokens=4),
        progress=False,
    )
    f = res.frame
    assert (f["raw_alpha"] == f["alpha"]).all()
    assert sorted(set(f["alpha"])) == [-50.0, -25.0, 0.0, 25.0, 50.0]
    row = res.slopes.query("layer == 1 and metric == 'n_tokens'").iloc[0]
    ok = f[(f["layer"] == 1) & ~f["degenerate"]]
    frac_bad = f[f["layer"] == 1].groupby("alpha")["degenerate"].mean()
    means = (
        ok[ok["alpha"].isin(frac_bad[frac_bad <= 0.5].index)].groupby("alpha")["n_tokens"].mean()
    )
    if len(means) >= 3:
        import numpy as np

        expected = 25 * np.polyfit(means.index.to_numpy(float), means.to_numpy(float), 1)[0]
        assert row["slope"] == pytest.approx(expected) and row["per"] == 25.0
    else:
        assert math.isnan(row["slope"])


def test_a_mode_grid_shares_only_its_identity_strength_and_reports_reliability(tiny, monkeypatch):
    """Rotate at 0 degrees is the identity (one shared unsteered cell); clamp at 0 is not (a
    steered cell per layer, ablating the axis). Per-prompt reliability comes with the result."""
    axis = _axis(tiny)
    calls = []
    real = dose_mod.generate

    def spy(*a, **k):
        calls.append(k.get("steer"))
        return real(*a, **k)

    monkeypatch.setattr(dose_mod, "generate", spy)
    gen = GenerationConfig(max_new_tokens=3)
    rot = dose_response(
        tiny,
        axis,
        PROMPTS,
        gen=gen,
        progress=False,
        grid=DoseGrid(layers=[0, 1], alphas=[0.0, 90.0], unit="raw", mode="rotate"),
    )
    assert [c is None for c in calls] == [True, False, False]
    assert set(rot.frame["mode"]) == {"rotate"} and rot.settings["slopes_per"] == 1.0
    base = rot.frame[rot.frame["alpha"] == 0]
    assert base[base["layer"] == 0]["text"].tolist() == base[base["layer"] == 1]["text"].tolist()
    calls.clear()
    cl = dose_response(
        tiny,
        axis,
        PROMPTS,
        gen=gen,
        progress=False,
        grid=DoseGrid(layers=[0, 1], alphas=[0.0, 1.0], unit="raw", mode="clamp"),
    )
    assert len(calls) == 4 and all(c is not None for c in calls)
    assert {c.mode for c in calls} == {"clamp"}
    pp = cl.per_prompt
    assert set(pp["layer"]) == {0, 1} and set(pp["prompt_id"]) == {"0", "1", "2"}
    assert set(cl.reliability["metric"]) >= {"n_tokens", "rep4"}
    assert (cl.reliability["n_prompts"] <= 3).all()
    with pytest.raises(InputError, match="takes no strength"):
        DoseGrid(mode=lambda h, u: h)  # noqa: ARG005
    with pytest.raises(InputError, match="leave unit='raw'"):
        dose_response(
            tiny,
            axis,
            PROMPTS,
            grid=DoseGrid(layers=0, alphas=[0.0, 9.0], mode="rotate"),
            progress=False,
        )


def test_the_axis_is_converted_once_per_grid(tiny, monkeypatch):
    """Every cell steers with rows taken from one conversion of the ValueAxis (one
    ``direction`` read per grid layer), and the cells steer as a fresh ``steer`` would."""
    axis = _axis(tiny, seed=3)
    reads = []
    real = ValueAxis.direction

    def counting(self, layer, **kw):
        reads.append(layer)
        return real(self, layer, **kw)

    monkeypatch.setattr(ValueAxis, "direction", counting)
    grid = DoseGrid(layers=[0, 1], alphas=[-2.0, 0.0, 2.0], unit="raw")
    res = dose_response(tiny, axis, PROMPTS[:1], grid=grid, gen=GenerationConfig(max_new_tokens=2),
                        progress=False)  # fmt: skip
    assert sorted(reads) == [0, 1]
    monkeypatch.undo()
    from value_lens.core.generate import generate
    from value_lens.steering.steer import steer

    want = generate(tiny, PROMPTS[:1], GenerationConfig(max_new_tokens=2),
                    steer=steer(tiny, axis, layers=1, alpha=2.0))  # fmt: skip
    got = res.frame[(res.frame["layer"] == 1) & (res.frame["alpha"] == 2.0)]["text"].tolist()
    assert got == [want[0].text]
