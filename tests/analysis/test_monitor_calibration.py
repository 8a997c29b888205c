"""Monitor thresholds calibrated per response, and the held-out false-positive rate's interval.

Oracles: planted neutral value sequences run through the real stop rule one event at a time
(the share of sequences it ends is the per-response rate by definition), numpy order statistics,
hand EMA recursions over ``vl.trace`` values, the closed form of the Clopper-Pearson bound at
0 successes, and exact or simulated coverage against known rates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import value_lens as vl
from value_lens.analysis.monitor import monitor
from value_lens.analysis.rates import binomial_rate, binomial_tail, clustered_rate
from value_lens.analysis.stop import (
    below,
    calibrate_threshold,
    false_positive_rate,
)
from value_lens.errors import InputError

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


def _ema(x: np.ndarray, decay: float = 0.9) -> np.ndarray:
    """The EMA after each step, row by row (the hand recursion)."""
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    for t in range(1, x.shape[1]):
        out[:, t] = decay * out[:, t - 1] + (1 - decay) * x[:, t]
    return out


def _neutral(rng: np.random.Generator, n: int, length: int = 100) -> np.ndarray:
    """Planted neutral sequences: a per-text offset plus token noise, read through ema:0.9."""
    return _ema(rng.normal(0, 0.02, (n, 1)) + rng.normal(0, 0.1, (n, length)))


class _Event:
    def __init__(self, step: int, value: float) -> None:
        self.step, self.aggregates = step, {"ema": value}


def _stopped_share(rule, seqs: np.ndarray) -> float:
    """Feed each sequence to the stop rule event by event, as generate does."""
    stopped = 0
    for row in seqs:
        stopped += any(rule(_Event(t, float(v))) for t, v in enumerate(row))
    return stopped / len(seqs)


def test_per_response_threshold_stops_about_fpr_of_held_out_neutral_sequences():
    """The issue's test: calibrated at 5% per response on 200 sequences, the stop rule ends
    2-9% of 400 held-out ones. The per-token threshold (today's behaviour) ends far more."""
    rng = np.random.default_rng(0)
    cal, held = _neutral(rng, 200), _neutral(rng, 400)
    thr = calibrate_threshold(list(cal), 0.05)  # the defaults: below, per response, after 0
    assert thr == calibrate_threshold(list(cal), 0.05, direction="below", unit="response")
    share = _stopped_share(below("ema", thr), held)
    assert 0.02 <= share <= 0.09
    per_token = calibrate_threshold(list(cal), 0.05, unit="token")
    assert _stopped_share(below("ema", per_token), held) > 0.25
    rate = false_positive_rate(list(held), thr)
    assert rate.rate == pytest.approx(share) and rate.unit == "response" and rate.n == 400
    assert rate.lo < share < rate.hi


@pytest.mark.parametrize("direction", ["below", "above"])
@pytest.mark.parametrize("after", [0, 7])
def test_calibrate_threshold_is_the_order_statistic_of_each_texts_extreme(direction, after):
    rng = np.random.default_rng(1)
    aggs = [rng.normal(size=rng.integers(3, 40)) for _ in range(301)]
    kept = [a[after:] for a in aggs if a.size > after]
    fpr = 0.05
    got = calibrate_threshold(aggs, fpr, direction=direction, after=after)
    if direction == "below":
        ext = np.array([a.min() for a in kept])
        assert got == np.quantile(ext, fpr, method="lower")
        assert (ext < got).mean() <= fpr
    else:
        ext = np.array([a.max() for a in kept])
        assert got == np.quantile(ext, 1 - fpr, method="higher")
        assert (ext > got).mean() <= fpr
    tok = calibrate_threshold(aggs, fpr, direction=direction, unit="token", after=after)
    pooled = np.concatenate(kept)
    q = np.quantile(pooled, fpr if direction == "below" else 1 - fpr, method="lower")
    assert tok == pytest.approx(q) if direction == "below" else tok >= q
    # a per-response threshold is further out than a per-token one at the same fpr
    assert (got < tok) if direction == "below" else (got > tok)


def test_monitor_calibrate_per_response_against_traced_values(tiny):
    g = torch.Generator().manual_seed(0)
    axis = vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)
    mon = monitor(axis, [0, 1], aggregate={"ema": "ema:0.9", "now": "mean:1"}, score_layer=1)
    fpr, after = 0.25, 2
    thr = mon.calibrate(tiny, NEUTRAL[:5], fpr=fpr, after=after, held_out=NEUTRAL[5:])
    vals = [vl.trace(tiny, t, axis, [1]).cosine[0].double().numpy() for t in NEUTRAL]
    emas = [_ema(v[None])[0] for v in vals]
    mins = np.array([e[after:].min() for e in emas[:5]])
    assert thr["ema"] == pytest.approx(float(np.sort(mins)[math.floor(fpr * 4)]), abs=1e-9)
    assert thr["now"] == pytest.approx(float(np.sort([v[after:].min() for v in vals[:5]])[1]))
    cal = mon.calibration
    assert cal.unit == "response" and cal.fpr == fpr and cal.n_texts == 5
    held = cal.held_out["ema"]["response"]
    assert held.flagged == sum(bool((e[after:] < thr["ema"]).any()) for e in emas[5:])
    assert held.n == 3
    tokens = cal.held_out["ema"]["token"]
    assert tokens.n == sum(e[after:].size for e in emas[5:]) and tokens.clusters == 3
    text = str(cal)
    assert "per-response false-positive rate of 25%" in text and "held out" in text
    per_tok = monitor(axis, 1).calibrate(tiny, NEUTRAL[:5], fpr=fpr, unit="token", after=after)
    pooled = np.concatenate([e[after:] for e in emas[:5]])
    assert per_tok["ema"] == pytest.approx(float(np.quantile(pooled, fpr, method="lower")))
    assert per_tok["ema"] > thr["ema"]
    with pytest.raises((InputError, TypeError), match="unit"):  # runtime type check in tests
        mon.calibrate(tiny, NEUTRAL[:2], unit="text")  # type: ignore[arg-type]


def test_clopper_pearson_against_closed_forms_and_bad_input():
    r = binomial_rate(0, 50)
    assert r.lo == 0 and r.hi == pytest.approx(1 - 0.025 ** (1 / 50), abs=1e-9)
    r = binomial_rate(50, 50)
    assert r.hi == 1 and r.lo == pytest.approx(0.025 ** (1 / 50), abs=1e-9)
    # at the bounds, the tail probabilities are exactly alpha / 2
    r = binomial_rate(7, 120)
    assert binomial_tail(7, 120, r.lo, upper=True) == pytest.approx(0.025, abs=1e-9)
    assert binomial_tail(7, 120, r.hi, upper=False) == pytest.approx(0.025, abs=1e-9)
    assert binomial_tail(3, 5, 0.3, upper=False) == pytest.approx(
        sum(math.comb(5, j) * 0.3**j * 0.7 ** (5 - j) for j in range(4))
    )
    with pytest.raises(InputError, match="flagged"):
        binomial_rate(5, 4)
    with pytest.raises(InputError, match="one 1-D array per text"):
        false_positive_rate([np.zeros((2, 2))], 0.0)
    with pytest.raises(InputError, match="after"):
        calibrate_threshold([[1.0, 2.0]], 0.1, after=5)


@pytest.mark.parametrize("n", [100, 400])
@pytest.mark.parametrize("p", [0.01, 0.05, 0.2])
def test_clopper_pearson_covers_the_true_rate(n, p):
    """Exact coverage: the binomial probability of every count whose interval holds ``p``."""
    ks = np.arange(n + 1)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    pmf = np.exp(
        logfact[n] - logfact[ks] - logfact[n - ks] + ks * np.log(p) + (n - ks) * np.log1p(-p)
    )
    likely = ks[pmf > 1e-9]
    cover = sum(
        pmf[k] for k in likely if binomial_rate(int(k), n).lo <= p <= binomial_rate(int(k), n).hi
    )
    assert cover >= 0.95 - 1e-9  # Clopper-Pearson never under-covers
    assert cover <= 0.995  # and is not the trivial [0, 1]


def test_token_rate_interval_covers_with_clustered_texts():
    """Texts differ in how often their tokens cross (a per-text random effect): the pooled token
    share's cluster interval covers the population share; a binomial interval over tokens does
    not."""
    rng = np.random.default_rng(2)
    truth = 0.05  # E[p_text] with Beta(1, 19), lengths independent of p
    cover, naive = [], []
    for _ in range(400):
        p = rng.beta(1, 19, 60)
        lengths = rng.integers(20, 120, 60)
        flags = [rng.random(m) < q for q, m in zip(p, lengths, strict=True)]
        r = clustered_rate(flags)
        cover.append(r.lo <= truth <= r.hi)
        half = 1.96 * math.sqrt(r.rate * (1 - r.rate) / r.n)
        naive.append(r.rate - half <= truth <= r.rate + half)
    assert np.mean(cover) >= 0.9
    assert np.mean(naive) < 0.8  # tokens are not independent draws
