"""Reliability per prompt: slopes equal numpy's OLS, Spearman equals a scipy-free brute-force
rank correlation, delta_at_max is read by hand, and the intervals over prompts cover in a
simulation with heavy-tailed, heteroscedastic noise and a two-population slope mixture."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from value_lens.steering.reliability import prompt_curves, reliability, wilson_interval

STRENGTHS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def _planted(seed=0, n_prompts=8, seeds=3):
    """Per prompt a curve a + b x + c x^2 + noise, some prompts anti-steerable, with ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_prompts):
        b = rng.normal(1.0, 0.5) if i % 4 else -abs(rng.normal(0.8, 0.2))
        c = rng.normal(0, 0.2)
        for s in range(seeds):
            for x in STRENGTHS:
                y = 2.0 + b * x + c * x * x + rng.normal(0, 0.3)
                rows.append(
                    {
                        "layer": 3,
                        "prompt_id": f"p{i}",
                        "alpha": x,
                        "seed": s,
                        "y": round(y, 1),
                        "degenerate": bool(rng.random() < 0.1),
                    }
                )
    return pd.DataFrame(rows)


def _rank(v):
    """Average ranks by counting (1-based): smaller values plus half of the ties."""
    v = np.asarray(v, float)
    return np.array([(v < x).sum() + ((v == x).sum() + 1) / 2 for x in v])


def _spearman(x, y):
    rx, ry = _rank(x), _rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def test_slopes_spearman_and_delta_equal_independent_oracles():
    f = _planted()
    pp = prompt_curves(f, ["y"], per=25.0)
    assert len(pp) == 8 and set(pp["layer"]) == {3}
    for _, row in pp.iterrows():
        g = f[(f["prompt_id"] == row["prompt_id"]) & ~f["degenerate"]]
        x, y = g["alpha"].to_numpy(), g["y"].to_numpy()
        slope, intercept = np.polyfit(x, y, 1)
        assert row["slope"] == pytest.approx(25.0 * slope, rel=1e-9, abs=1e-9)
        assert row["intercept"] == pytest.approx(intercept, rel=1e-9, abs=1e-9)
        means = g.groupby("alpha")["y"].mean()
        assert row["spearman"] == pytest.approx(
            _spearman(means.index, means.to_numpy()), nan_ok=True
        )
        assert row["delta_at_max"] == pytest.approx(means.loc[2.0] - means.loc[0.0])
        assert row["n_points"] == len(g) and row["n_strengths"] == means.size


def test_spearman_is_nan_for_a_flat_curve_and_delta_falls_back_to_the_smallest_strength():
    f = pd.DataFrame({"prompt_id": "a", "alpha": [1.0, 2.0, 3.0], "y": [5.0, 5.0, 5.0]})
    row = prompt_curves(f, ["y"], by=(), reference=0.0).iloc[0]
    assert math.isnan(row["spearman"]) and row["slope"] == 0.0 and row["delta_at_max"] == 0.0
    f["y"] = [1.0, 4.0, 2.0]
    row = prompt_curves(f, ["y"], by=()).iloc[0]
    assert row["delta_at_max"] == 1.0 and row["spearman"] == pytest.approx(0.5)


def test_anti_steerable_fraction_and_its_wilson_interval_by_hand():
    pp = pd.DataFrame(
        {
            "metric": "y",
            "slope": [2.0, 1.0, 0.5, -0.3, 3.0, -1.0, 0.2, 1.5, 0.0],
            "spearman": 0.5,
            "delta_at_max": 1.0,
        }
    )
    r = reliability(pp, by=("metric",)).iloc[0]
    assert r["mean_slope"] > 0 and r["n_prompts"] == 9
    assert r["anti_frac"] == pytest.approx(2 / 9)  # a zero slope is not anti-steerable
    z = 1.959963984540054
    p, n = 2 / 9, 9
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (r["anti_lo"], r["anti_hi"]) == pytest.approx((mid - half, mid + half))
    s = pp["slope"]
    half_t = 2.306004135204166 * s.std(ddof=1) / 3  # t(0.975, 8)
    assert (r["slope_lo"], r["slope_hi"]) == pytest.approx((s.mean() - half_t, s.mean() + half_t))
    neg = pp.assign(slope=-pp["slope"])  # the mirror image: anti means slope > 0 there
    assert reliability(neg, by=("metric",)).iloc[0]["anti_frac"] == pytest.approx(2 / 9)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def _population(rng, n, *, anti_share=0.25):
    """Prompts' true slopes: a mixture; noise sd varies by prompt, t(3)-distributed errors."""
    neg = rng.random(n) < anti_share
    slope = np.where(neg, rng.normal(-0.4, 0.3, n), rng.lognormal(0.0, 0.6, n))
    sd = rng.uniform(0.2, 2.0, n)
    x = np.tile(STRENGTHS, 2)  # two seeds per strength
    noise = rng.standard_t(3, (n, x.size)) * sd[:, None]
    y = slope[:, None] * x + noise
    dx = x - x.mean()
    return (y - y.mean(1, keepdims=True)) @ dx / (dx @ dx)  # each prompt's observed OLS slope


def test_intervals_over_prompts_cover_their_population_values():
    rng = np.random.default_rng(20)
    big = _population(rng, 400_000)
    true_anti, true_mean = float((big < 0).mean()), float(big.mean())
    assert 0.2 < true_anti < 0.45 and true_mean > 0.5
    n_rep, n_prompts = 600, 30
    slopes = _population(rng, n_rep * n_prompts)
    pp = pd.DataFrame(
        {
            "rep": np.repeat(np.arange(n_rep), n_prompts),
            "slope": slopes,
            "spearman": 0.0,
            "delta_at_max": 0.0,
        }
    )
    r = reliability(pp, by=("rep",))
    anti = ((r["anti_lo"] <= true_anti) & (true_anti <= r["anti_hi"])).mean()
    mean = ((r["slope_lo"] <= true_mean) & (true_mean <= r["slope_hi"])).mean()
    # 95% intervals; the binomial sd of a coverage over 600 reps is about 0.009
    assert anti >= 0.92 and mean >= 0.92, (anti, mean)


def test_no_effect_keeps_the_mean_slope_interval_at_its_level():
    rng = np.random.default_rng(3)
    n_rep, n_prompts = 600, 25
    x = np.tile(STRENGTHS, 2)
    y = rng.standard_t(3, (n_rep * n_prompts, x.size)) * rng.uniform(
        0.2, 2.0, (n_rep * n_prompts, 1)
    )
    dx = x - x.mean()
    slopes = (y - y.mean(1, keepdims=True)) @ dx / (dx @ dx)
    pp = pd.DataFrame(
        {
            "rep": np.repeat(np.arange(n_rep), n_prompts),
            "slope": slopes,
            "spearman": 0.0,
            "delta_at_max": 0.0,
        }
    )
    r = reliability(pp, by=("rep",))
    cover = ((r["slope_lo"] <= 0.0) & (0.0 <= r["slope_hi"])).mean()
    assert 0.92 <= cover <= 0.985, cover
