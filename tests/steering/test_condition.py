"""Conditional steering: a trigger planted from an unsteered monitor run fires at the predicted
step, steering starts exactly there (or one token later for a layer below the condition's), rows
that never trigger are bit-identical to unsteered decoding, on both loops, cached or not."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest
import torch

import value_lens as vl
from value_lens.core.decoding import DecodeRequest, decode_batch
from value_lens.errors import InputError
from value_lens.steering.condition import Condition

PROMPTS = ["The value of a plan", "Hi there", "Once upon a time there was a small robot who"]
N_NEW = 8
LC = 1  # the condition's layer


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(11)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


@pytest.fixture(scope="module")
def values(tiny, axis):
    """Each row's projection at layer LC on its prompt and generated tokens (unsteered monitor)."""
    mon = vl.monitor(axis, LC, metric="projection")
    gens = vl.generate(tiny, PROMPTS, monitor=mon, max_new_tokens=N_NEW, stop_at_eos=False)
    out = []
    for g in gens:
        v = g.trace.projection[0].double()
        p = g.prompt_ids.numel()
        out.append((v[:p], v[p:]))
    return out


def _plant(gen_values, agg=lambda prefix: float(prefix[-1]), min_step=1):
    """A threshold at which some row's aggregate (over its new tokens so far) first exceeds it
    at a step >= 1 and another row's never does; and each row's first such step."""
    series = [[agg(v[: k + 1]) for k in range(len(v))] for _, v in gen_values]
    pool = sorted({x for v in series for x in v})
    for lo, hi in zip(pool, pool[1:], strict=False):
        tau = (lo + hi) / 2
        firsts = [next((k for k, x in enumerate(v) if x > tau), None) for v in series]
        if any(f is None for f in firsts) and any(
            f is not None and min_step <= f < N_NEW - 2 for f in firsts
        ):
            return tau, firsts
    pytest.fail("no threshold separates the rows; change the axis seed")


def _decode(model, steering, backend="hf", use_cache=True):
    ids = [torch.tensor(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    lens = torch.tensor([x.numel() for x in ids])
    width = int(lens.max())
    tokens = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for j, x in enumerate(ids):
        tokens[j, width - x.numel() :] = x
        mask[j, width - x.numel() :] = 1
    req = DecodeRequest(tokens, mask, N_NEW, 0.0, 1.0, [], 0, use_cache, logits=True)
    with torch.no_grad():
        if steering is None:
            seqs, logits = decode_batch(model, req, backend)
        else:
            with steering.activate(prompt_lens=lens, pads=width - lens):
                seqs, logits = decode_batch(model, req, backend)
    return seqs[:, width:], torch.stack(logits, 1)


def _cond(axis, tau, read="live"):
    mon = vl.monitor(axis, LC, metric="projection", aggregate="max:1")
    return Condition(mon, vl.stop.above("max", tau), read=read)


@pytest.mark.parametrize("layer", [1, 0])
def test_a_planted_live_trigger_fires_at_the_predicted_step(tiny, axis, values, layer):
    tau, firsts = _plant(values)
    s = vl.steer(tiny, axis, layers=layer, alpha=8.0, when=_cond(axis, tau))
    base_ids, base = _decode(tiny, None)
    ids, logits = _decode(tiny, s)
    assert s.trigger_steps() == firsts
    lag = 1 if layer < LC else 0  # a layer below the condition's starts one token later
    for b, k in enumerate(firsts):
        if k is None:  # never triggered: bit-identical to unsteered decoding
            assert torch.equal(ids[b], base_ids[b]) and torch.equal(logits[b], base[b])
            continue
        first = k + lag + 1  # steering at token k + lag first shows in the next step's logits
        assert torch.equal(logits[b, :first], base[b, :first])
        assert torch.equal(ids[b, :first], base_ids[b, :first])
        if first < N_NEW:
            assert (logits[b, first] - base[b, first]).abs().max() > 1e-3
    rep = s.report()
    assert [None if pd.isna(x) else int(x) for x in rep["trigger"]] == firsts
    never = [b for b, k in enumerate(firsts) if k is None]
    assert (rep.set_index("row").loc[never, "moved"] == 0).all()


def test_the_same_triggers_and_logits_on_both_loops_with_and_without_the_cache(tiny, axis, values):
    tau, firsts = _plant(values)
    ref_ids, ref = None, None
    for backend in ("hf", "bridge"):
        for use_cache in (True, False):
            s = vl.steer(tiny, axis, layers=[0, 1], alpha=8.0, when=_cond(axis, tau))
            ids, logits = _decode(tiny, s, backend, use_cache)
            assert s.trigger_steps() == firsts, (backend, use_cache)
            if ref is None:
                ref_ids, ref = ids, logits
            assert torch.equal(ids, ref_ids)
            torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
            # a recomputing pass counts each steered token once
            # tokens 0..N_NEW-2 are fed back: layer 1 moves k.., layer 0 (one token later) k+1..
            moved = s.report().groupby("row")["moved"].sum().tolist()
            assert moved == [0 if k is None else 2 * (N_NEW - 1 - k) - 1 for k in firsts]


def test_a_running_mean_reads_each_token_once_with_and_without_the_cache(tiny, axis, values):
    """The mean over all new tokens so far changes if a recomputing pass re-reads old ones."""
    tau, firsts = _plant(values, agg=lambda prefix: float(prefix.mean()), min_step=3)
    for use_cache in (True, False):
        mon = vl.monitor(axis, LC, metric="projection", aggregate="mean:64")
        cond = Condition(mon, vl.stop.above("mean", tau))
        s = vl.steer(tiny, axis, layers=1, alpha=8.0, when=cond)
        _decode(tiny, s, "hf", use_cache)
        assert s.trigger_steps() == firsts, use_cache


def test_prompt_read_steers_whole_rows_and_leaves_the_others_bit_identical(tiny, axis, values):
    prompt_max = [float(v.max()) for v, _ in values]
    order = sorted(range(len(values)), key=lambda b: prompt_max[b])
    tau = (prompt_max[order[0]] + prompt_max[order[1]]) / 2  # the lowest row stays off
    s = vl.steer(tiny, axis, layers=[0, 1], alpha=8.0, when=_cond(axis, tau, read="prompt"))
    mon = vl.monitor(axis, LC, metric="projection", aggregate="max:32")
    s_all = vl.steer(
        tiny,
        axis,
        layers=[0, 1],
        alpha=8.0,
        when=Condition(mon, vl.stop.above("max", tau), read="prompt"),
    )
    base_ids, base = _decode(tiny, None)
    ids, logits = _decode(tiny, s)
    _decode(tiny, s_all)
    want = [-1 if m > tau else None for m in [float(v[-1]) for v, _ in values]]
    assert s.trigger_steps() == want  # "max:1" reads the prompt's last token
    want_all = [-1 if m > tau else None for m in prompt_max]
    assert s_all.trigger_steps() == want_all and want_all.count(None) == 1
    for b, t in enumerate(want):
        if t is None:
            assert torch.equal(logits[b], base[b]) and torch.equal(ids[b], base_ids[b])
        else:  # the prompt itself is steered at the condition's layer: step 0 already moves
            assert (logits[b, 0] - base[b, 0]).abs().max() > 1e-3


def test_generate_reports_triggers_and_drops_those_read_after_a_row_ended(tiny, axis, values):
    tau, firsts = _plant(values)
    s = vl.steer(tiny, axis, layers=1, alpha=8.0, when=_cond(axis, tau))
    gens = vl.generate(tiny, PROMPTS, steer=s, max_new_tokens=N_NEW, stop_at_eos=False)
    assert s.trigger_steps(gens) == firsts
    short = [type(g)(**{**g.__dict__, "output_ids": g.output_ids[:1]}) for g in gens]
    assert s.trigger_steps(short) == [k if k is not None and k < 1 else None for k in firsts]
    s.clear()
    assert s.trigger_steps() == [] and s.report().empty
    assert "when=Condition(above('max'" in repr(s)


def test_bad_conditions_are_refused(tiny, axis):
    mon = vl.monitor(axis, LC)
    with pytest.raises(InputError, match="value monitor"):
        Condition(object(), vl.stop.above("ema", 0.0))
    unchecked = inspect.unwrap(Condition.__init__)  # untyped callers get the friendly errors
    with pytest.raises(InputError, match="callable"):
        unchecked(object.__new__(Condition), mon, 0.5)
    with pytest.raises(InputError, match="read must be"):
        unchecked(object.__new__(Condition), mon, vl.stop.above("ema", 0.0), read="always")
    other = vl.ValueAxis(torch.randn(2, 64), model_id="Qwen/Qwen3-8B")
    with pytest.raises(vl.errors.AxisMismatchError):
        vl.steer(
            tiny,
            axis,
            layers=1,
            alpha=1.0,
            when=Condition(vl.monitor(other, LC), vl.stop.above("ema", 0.0)),
        )
