"""Live value monitoring (value_lens.analysis.monitor / stop) on the tiny Qwen3.

Oracles: a full no-cache recompute with ``vl.trace`` of prompt + kept tokens (under the same
steering), hand-written recursions for the aggregators, the order statistic for calibration, and
a planted residual push whose crossing step is known in advance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import value_lens as vl
from value_lens.analysis.monitor import calibration_scores, monitor, tokens_generated
from value_lens.analysis.stop import (
    above,
    below,
    ema,
    parse_aggregate,
    rolling_max,
    rolling_mean,
    rolling_min,
    threshold_at_fpr,
)
from value_lens.errors import CalibrationError, InputError

PROMPTS = ["the value of a", "a much longer prompt about code and tests here", "x"]
NEUTRAL = [
    "The train left the station at noon and reached the coast by evening.",
    "She planted tomatoes, beans and a row of sunflowers along the fence.",
    "Water boils at a lower temperature on a high mountain.",
    "The library opens at nine and closes at six on weekdays.",
    "He folded the map, put it in his bag and walked on.",
    "A small boat drifted slowly across the quiet lake.",
    "The recipe needs two eggs, a cup of flour and some milk.",
    "Clouds gathered over the hills before the afternoon rain.",
]


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(0)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


def _recompute(model, g, axis, layers=(0, 1)):
    ids = torch.cat([g.prompt_ids, g.output_ids])
    return vl.trace(model, ids, axis, list(layers))


@pytest.mark.parametrize(
    ("temperature", "steered", "use_cache"),
    [
        (0.0, False, True),
        (0.9, False, True),
        (0.0, True, True),
        (0.9, True, True),
        (0.9, True, False),
    ],
)
def test_live_values_equal_a_no_cache_recompute(tiny, axis, temperature, steered, use_cache):
    steering = vl.steer(tiny, axis, layers=1, alpha=3.0) if steered else None
    mon = monitor(axis, [0, 1])
    kw = dict(max_new_tokens=7, batch_size=3, temperature=temperature, seed=5, use_cache=use_cache)
    gens = vl.generate(tiny, PROMPTS, steer=steering, monitor=mon, **kw)
    plain = vl.generate(tiny, PROMPTS, steer=steering, **kw)
    assert [g.output_ids.tolist() for g in gens] == [g.output_ids.tolist() for g in plain]
    assert len({g.prompt_ids.numel() for g in gens}) == 3  # three left-padding widths
    for g in gens:
        with steering if steering is not None else contextlib.nullcontext():
            ref = _recompute(tiny, g, axis)
        tr = g.trace
        assert isinstance(tr, vl.ValueTrace) and tr.layers == [0, 1]
        assert tr.token_ids.tolist() == ref.token_ids.tolist()
        assert tr.tokens == ref.tokens
        torch.testing.assert_close(tr.cosine, ref.cosine, atol=1e-5, rtol=0)
        torch.testing.assert_close(tr.projection, ref.projection, atol=1e-5, rtol=1e-5)
        if steered:  # the monitor read the steered residual: an unsteered read differs
            assert (tr.cosine[1] - _recompute(tiny, g, axis).cosine[1]).abs().max() > 1e-2


def _force_eos(model, row: int, forward: int):
    """A logits hook making ``row`` emit EOS at the ``forward``-th pass (0 = the prompt)."""
    eos, calls = model.tokenizer.eos_token_id, []

    def fn(logits, hook):  # noqa: ARG001
        calls.append(1)
        if len(calls) == forward + 1:
            logits = logits.clone()
            logits[row, -1, eos] = 1e4
        return logits

    return model.hooks(fwd_hooks=[("unembed.hook_out", fn)])


def _ema_oracle(xs: list[float], decay: float) -> float:
    e = xs[0]
    for x in xs[1:]:
        e = decay * e + (1 - decay) * x
    return e


def test_one_event_per_kept_token_and_none_after_eos(tiny, axis):
    events = []
    mon = monitor(
        axis, [0, 1], aggregate={"ema": "ema:0.8", "peak": "max:3"}, on_token=events.append
    )
    with _force_eos(tiny, row=1, forward=3):
        gens = vl.generate(tiny, PROMPTS, monitor=mon, max_new_tokens=6, batch_size=3)
    assert gens[1].n_tokens == 3 and not gens[1].hit_limit
    assert [g.n_tokens for g in gens] == [6, 3, 6]
    assert tokens_generated(gens) == {"per_row": [6, 3, 6], "total": 15}
    for r, g in enumerate(gens):
        mine = [e for e in events if e.row == r]
        assert [e.step for e in mine] == list(range(g.n_tokens))
        assert [e.token_id for e in mine] == g.output_ids.tolist()
        assert [e.text for e in mine] == [tiny.tokenizer.decode([t]) for t in g.output_ids.tolist()]
        p = g.prompt_ids.numel()
        hist = []
        for e in mine:
            for k, layer in enumerate([0, 1]):
                assert e.values[layer] == pytest.approx(
                    float(g.trace.cosine[k, p + e.step]), abs=1e-6
                )
            hist.append(e.values[0])  # score_layer defaults to the first layer
            assert e.aggregates["ema"] == pytest.approx(_ema_oracle(hist, 0.8), abs=1e-9)
            assert e.aggregates["peak"] == pytest.approx(max(hist[-3:]), abs=1e-12)


def test_eos_on_the_extra_step_keeps_the_unmonitored_result(tiny, axis):
    with _force_eos(tiny, row=0, forward=4):
        plain = vl.generate(tiny, PROMPTS[0], max_new_tokens=4)[0]
    with _force_eos(tiny, row=0, forward=4):
        g = vl.generate(tiny, PROMPTS[0], max_new_tokens=4, monitor=monitor(axis, 1))[0]
    assert plain.hit_limit and g.hit_limit and g.n_tokens == 4
    assert g.output_ids.tolist() == plain.output_ids.tolist()
    assert g.trace.cosine.shape == (1, g.prompt_ids.numel() + 4)


class _Plant:
    """A steer=-style object pushing ``row``'s layer-1 residual along ``-u`` from forward ``at``.

    Token ``s`` is fed back (and read) at forward ``s + 1``, so planting from forward ``k + 1``
    makes the value of token ``k`` and later ones about -1.
    """

    def __init__(self, model, direction, row: int, at: int) -> None:
        self.model, self.u, self.row, self.at = model, direction / direction.norm(), row, at

    @contextlib.contextmanager
    def activate(self, *, prompt_lens, pads) -> Iterator[None]:  # noqa: ARG002
        calls = []

        def fn(resid, hook):  # noqa: ARG001
            calls.append(1)
            if len(calls) > self.at:
                resid = resid.clone()
                resid[self.row, -1] -= 1000.0 * self.u.to(resid.dtype)
            return resid

        with self.model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", fn)]):
            yield None


@pytest.mark.parametrize(
    ("temperature", "after", "expected"), [(0.0, 0, 3), (0.9, 0, 3), (0.0, 5, 5)]
)
def test_early_stop_fires_at_the_planted_step_and_spares_other_rows(
    tiny, axis, temperature, after, expected
):
    k, n = 3, 9
    plant = _Plant(tiny, axis.direction(1), row=0, at=k + 1)
    events = []
    mon = monitor(axis, 1, aggregate={"now": "mean:1"}, on_token=events.append)
    kw = dict(max_new_tokens=n, batch_size=3, temperature=temperature, seed=2, steer=plant)
    free = vl.generate(tiny, PROMPTS, monitor=mon, **kw)
    events.clear()
    cut = vl.generate(tiny, PROMPTS, monitor=mon, stop_when=below("now", -0.9, after=after), **kw)
    # the plant is what crosses: before it every value is far from -1
    assert float(free[0].trace.cosine[0, free[0].prompt_ids.numel() :][:k].min()) > -0.9
    assert cut[0].stopped and not cut[0].hit_limit and cut[0].n_tokens == expected + 1
    assert cut[0].output_ids.tolist() == free[0].output_ids[: expected + 1].tolist()
    assert [e.step for e in events if e.row == 0] == list(range(expected + 1))
    for r in (1, 2):
        assert not cut[r].stopped
        assert cut[r].output_ids.tolist() == free[r].output_ids.tolist()
        torch.testing.assert_close(cut[r].trace.cosine, free[r].trace.cosine, atol=0, rtol=0)
    assert tokens_generated(cut)["total"] == tokens_generated(free)["total"] - (n - expected - 1)


def test_aggregators_match_hand_recursions():
    xs = [0.3, -0.2, 0.5, 0.1, -0.7, 0.0]
    t = torch.tensor(xs, dtype=torch.float64)
    for i in range(1, len(xs) + 1):
        assert ema(0.7)(t[:i]) == pytest.approx(_ema_oracle(xs[:i], 0.7), abs=1e-12)
        assert rolling_mean(2)(t[:i]) == pytest.approx(sum(xs[max(0, i - 2) : i]) / min(i, 2))
        assert rolling_max(3)(t[:i]) == pytest.approx(max(xs[max(0, i - 3) : i]))
        assert rolling_min(3)(t[:i]) == pytest.approx(min(xs[max(0, i - 3) : i]))
    assert parse_aggregate("ema:0.7")(t) == ema(0.7)(t)
    assert parse_aggregate("min:2")(t) == pytest.approx(-0.7)
    with pytest.raises(InputError, match="unknown aggregate"):
        parse_aggregate("median:3")
    with pytest.raises(InputError, match="decay"):
        ema(1.0)


def test_stop_rules_respect_after_and_side():
    class E:
        def __init__(self, step, x):
            self.step, self.aggregates = step, {"a": x}

    assert below("a", 0.0)(E(0, -0.1)) and not below("a", 0.0)(E(0, 0.0))
    assert not below("a", 0.0, after=2)(E(1, -5.0)) and below("a", 0.0, after=2)(E(2, -5.0))
    assert above("a", 0.5)(E(0, 0.6)) and not above("a", 0.5)(E(0, 0.5))
    with pytest.raises(InputError, match="aggregate"):
        below("b", 0.0)(E(0, 0.0))


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_threshold_is_the_empirical_quantile(fpr):
    x = np.random.default_rng(0).normal(size=1001)
    lo = threshold_at_fpr(x.tolist(), fpr, "below")
    hi = threshold_at_fpr(x.tolist(), fpr, "above")
    assert lo == np.quantile(x, fpr, method="lower")
    assert hi == np.quantile(x, 1 - fpr, method="higher")
    assert (x < lo).mean() <= fpr and (x > hi).mean() <= fpr
    assert (x <= lo).mean() >= fpr - 1 / x.size  # not needlessly conservative


def test_calibrate_sets_thresholds_at_the_fpr_on_neutral_text(tiny, axis):
    mon = monitor(axis, [0, 1], aggregate={"now": "mean:1", "ema": "ema:0.9"}, score_layer=1)
    with pytest.raises(CalibrationError, match="calibrate"):
        _ = mon.threshold
    fpr = 0.1
    per_token = mon.calibrate(tiny, NEUTRAL[:5], fpr=fpr, unit="token")
    pooled = torch.cat([vl.trace(tiny, t, axis, [1]).cosine[0] for t in NEUTRAL[:5]])
    assert per_token["now"] == threshold_at_fpr(pooled, fpr, "below")  # the oracle: pooled
    held = calibration_scores(mon, tiny, NEUTRAL[5:])
    for name, t in per_token.items():
        assert float((held[name] < t).double().mean()) <= fpr + 0.1
    thr = mon.calibrate(tiny, NEUTRAL[:5], fpr=fpr)  # per response (the default)
    assert mon.threshold == thr["now"] and set(thr) == {"now", "ema"}
    mins = [float(vl.trace(tiny, t, axis, [1]).cosine[0].min()) for t in NEUTRAL[:5]]
    assert thr["now"] == pytest.approx(min(mins))  # floor(0.1 * 4) = 0: the lowest text minimum
    assert mon.calibration.unit == "response" and mon.calibration.n_texts == 5
    rule = below("ema", mon.thresholds["ema"])
    assert rule.threshold == thr["ema"]  # type: ignore[attr-defined]


def test_bad_arguments(tiny, axis):
    with pytest.raises(InputError, match="monitor"):
        vl.generate(tiny, "a", stop_when=below("ema", 0.0), max_new_tokens=2)
    with pytest.raises(InputError, match="score_layer"):
        monitor(axis, 0, score_layer=1)
    with pytest.raises(InputError, match="fpr"):
        threshold_at_fpr([1.0, 2.0], 1.5, "below")
