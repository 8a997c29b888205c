"""The regression discontinuity at a cut: a brute-force OLS oracle, its jackknife, and coverage on
planted data with confounds it was not designed around (turn lengths, cut positions that vary
by criterion, depth in the conversation, a position signal outside its smooth terms)."""

from __future__ import annotations

import numpy as np
import pytest

from value_lens.analysis.discontinuity import (
    CutSums,
    Discontinuity,
    discontinuity,
    position_basis,
)
from value_lens.errors import InputError


def _dataset(rng, *, C=12, jump=0.0, signal="ramp", spread=0.06, ar=0.6):
    """Clusters (criteria) of 2-5 turns; per-criterion typical cut; AR(1) noise within turns;
    turn and cluster levels; a criterion-level spread of the jump around ``jump``."""
    ys, afters, as_, bs, turns, clusters = [], [], [], [], [], []
    for c in range(C):
        cut_mu, jc, level = rng.uniform(0.25, 0.75), jump + spread * rng.normal(), rng.normal()
        for _ in range(rng.integers(2, 6)):
            n, depth = int(rng.integers(40, 120)), rng.uniform(0, 2000)
            cut = int(np.clip(rng.normal(cut_mu, 0.08), 0.1, 0.9) * n)
            a = np.arange(n)
            b = n - a
            pos = {
                "ramp": 0.02 * a,
                "relative": 1.5 * a / n,  # not in the smooth terms: each turn's own trend
                "depth_ramp": 0.02 * a * (1 + depth / 1000),
                "log_end": -0.5 * np.log1p(b),
            }[signal]
            e = np.zeros(n)
            z = rng.normal(0, 1, n)
            for i in range(n):
                e[i] = (ar * e[i - 1] if i else 0.0) + z[i] * np.sqrt(1 - ar**2)
            y = pos + jc * (a > cut) + level + 0.001 * depth + rng.normal(0, 0.3) + e
            keep = a != cut
            ys.append(y[keep])
            afters.append((a > cut)[keep])
            as_.append(a[keep])
            bs.append(b[keep])
            turns.append(np.full(keep.sum(), len(turns)))
            clusters.append(np.full(keep.sum(), c))
    return [np.concatenate(x) for x in (ys, afters, as_, bs, turns, clusters)]


def _fit(y, after, a, b, turn, cluster, **kw):
    return discontinuity(y, after=after, since_start=a, to_end=b, turn=turn, cluster=cluster, **kw)


def _brute_ols(y, after, a, b, turn, trend):
    """The AFTER coefficient of an explicit regression: turn dummies (and turn x a slopes),
    log1p terms up to degree 2 (plus a shared raw a without turn slopes)."""
    cols = [after.astype(float)]
    la, lb = np.log1p(a), np.log1p(b)
    cols += [la, la**2, lb, lb**2]
    if trend == "shared":
        cols.append(a / 100.0)
    for t in np.unique(turn):
        m = (turn == t).astype(float)
        cols.append(m)
        if trend == "turn":
            cols.append(m * a)
    X = np.column_stack(cols)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return beta[0]


@pytest.mark.parametrize("trend", ["turn", "shared"])
def test_jump_equals_an_explicit_ols_with_turn_dummies(trend):
    rng = np.random.default_rng(0)
    y, after, a, b, turn, cluster = _dataset(rng, C=4, jump=0.7, signal="relative")
    d = _fit(y, after, a, b, turn, cluster, standardize=False, trend=trend)
    assert d.jump == pytest.approx(_brute_ols(y, after, a, b, turn, trend), rel=1e-7, abs=1e-9)
    # standardized: in units of the score's within-turn sd (deviations from turn means)
    dev = y - np.array([y[turn == t].mean() for t in turn])
    sd = np.sqrt((dev**2).sum() / (y.size - np.unique(turn).size))
    std = _fit(y, after, a, b, turn, cluster, trend=trend)
    assert std.jump == pytest.approx(d.jump / sd, rel=1e-7)
    assert (d.n_turns, d.n_clusters, d.n_tokens) == (np.unique(turn).size, 4, y.size)


def test_the_jackknife_refits_without_each_cluster_and_pairs_differences():
    rng = np.random.default_rng(1)
    y, after, a, b, turn, cluster = _dataset(rng, C=5, jump=0.4)
    d = _fit(y, after, a, b, turn, cluster, standardize=False)
    loo = [
        _brute_ols(
            y[cluster != c],
            after[cluster != c],
            a[cluster != c],
            b[cluster != c],
            turn[cluster != c],
            "turn",
        )
        for c in range(5)
    ]
    np.testing.assert_allclose(d.loo, loo, rtol=1e-7)
    se = np.sqrt(4 / 5 * ((np.array(loo) - np.mean(loo)) ** 2).sum())
    assert d.se == pytest.approx(se) and d.ci_hi - d.jump == pytest.approx(2.7764451 * se, 1e-6)
    # the placebo cut of the same clusters: the difference leaves each cluster out of both
    p = _fit(y + 0.3 * (a > 20), a > 20, a, b, turn, cluster, standardize=False)
    diff = d.minus(p)
    assert diff.jump == pytest.approx(d.jump - p.jump)
    np.testing.assert_allclose(diff.loo, np.array(d.loo) - np.array(p.loo))


def test_position_signals_linear_in_each_turn_leave_no_jump():
    """A score that is any turn-specific linear function of position has jump 0 exactly."""
    rng = np.random.default_rng(2)
    _, after, a, b, turn, cluster = _dataset(rng, C=4)
    slope, level = rng.normal(size=turn.max() + 1), rng.normal(size=turn.max() + 1)
    y = slope[turn] * a + level[turn] + 0.3 * np.log1p(b)
    assert abs(_fit(y, after, a, b, turn, cluster).jump) < 1e-8
    shared = _fit(y, after, a, b, turn, cluster, trend="shared")
    assert abs(shared.jump) > 0.01  # one shared trend cannot absorb turn-specific slopes


@pytest.mark.parametrize("signal", ["ramp", "relative", "depth_ramp", "log_end"])
def test_interval_covers_the_true_jump_on_200_planted_datasets(signal):
    rng = np.random.default_rng({"ramp": 3, "relative": 4, "depth_ramp": 5, "log_end": 6}[signal])
    for jump in (0.0, 0.5):
        hits, est = 0, []
        for _ in range(200):
            y, after, a, b, turn, cluster = _dataset(rng, jump=jump, signal=signal)
            d = _fit(y, after, a, b, turn, cluster, standardize=False)
            hits += d.ci_lo <= jump <= d.ci_hi
            est.append(d.jump)
        assert hits / 200 >= 0.9, (signal, jump, hits / 200)
        assert abs(np.mean(est) - jump) < 0.05  # unbiased, not only wide


def test_bootstrap_interval_and_errors():
    rng = np.random.default_rng(7)
    y, after, a, b, turn, cluster = _dataset(rng, C=6, jump=0.5)
    boot = _fit(y, after, a, b, turn, cluster, interval="bootstrap", n_boot=200, seed=1)
    jack = _fit(y, after, a, b, turn, cluster)
    assert boot.jump == jack.jump and boot.ci_lo < boot.jump < boot.ci_hi
    with pytest.raises(InputError, match="interval"):
        _fit(y, after, a, b, turn, cluster, interval="wild")
    with pytest.raises(InputError, match="nest"):
        _fit(y, after, a, b, turn, np.arange(y.size) % 3)
    with pytest.raises(InputError, match="NaN"):
        _fit(np.where(a == 3, np.nan, y), after, a, b, turn, cluster)
    with pytest.raises(InputError, match="degree"):
        position_basis([1], [2], degree=0)
    with pytest.raises(InputError, match="trend"):
        CutSums.of(
            y, after=after, since_start=a, to_end=b, turn=turn, cluster=cluster, trend="quadratic"
        )
    # one turn per side only: the jump is not identified apart from the turn's own trend
    one = turn == 0
    d = _fit(y[one], after[one], a[one], b[one], turn[one], cluster[one])
    assert np.isfinite(d.jump) and np.isnan(d.ci_lo)  # a single cluster has no interval


def test_minus_with_clusters_on_one_side_only():
    a = Discontinuity(1.0, 0, 2, 0.5, 6, 3, 60, ("x", "y", "z"), (0.9, 1.1, 1.0))
    b = Discontinuity(0.4, 0, 1, 0.2, 6, 3, 60, ("x", "y", "w"), (0.5, 0.3, 0.4))
    d = a.minus(b)
    assert d.clusters == ("w", "x", "y", "z") and d.n_clusters == 4
    np.testing.assert_allclose(d.loo, [1.0 - 0.4, 0.9 - 0.5, 1.1 - 0.3, 1.0 - 0.4])
