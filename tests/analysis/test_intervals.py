"""The jackknife t interval: quantiles against published tables, the textbook interval of a mean,
and coverage of a clustered AUROC's expectation at 12 clusters, where the percentile cluster
bootstrap sits off its estimate."""

from __future__ import annotations

import numpy as np
import pytest

from value_lens.analysis.intervals import cluster_jackknife, jackknife_interval, t_quantile
from value_lens.analysis.metrics import auroc, bootstrap_ci
from value_lens.errors import InputError


@pytest.mark.parametrize(
    "p,df,want",  # Student's t table
    [
        (0.975, 1, 12.7062),
        (0.975, 3, 3.18245),
        (0.975, 11, 2.20099),
        (0.95, 5, 2.01505),
        (0.995, 2, 9.92484),
        (0.975, 100, 1.98397),
        (0.975, float("inf"), 1.95996),
        (0.025, 7, -2.36462),
    ],
)
def test_t_quantiles_match_the_table(p, df, want):
    assert t_quantile(p, df) == pytest.approx(want, abs=2e-5)


def test_jackknife_of_a_mean_is_the_textbook_t_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=9)
    loo = [(x.sum() - v) / 8 for v in x]
    iv = jackknife_interval(x.mean(), loo, 0.9)
    se = x.std(ddof=1) / 3
    assert iv.se == pytest.approx(se)
    assert (iv.lo, iv.hi) == pytest.approx((x.mean() - 1.859548 * se, x.mean() + 1.859548 * se))
    assert iv.n_clusters == 9
    assert np.isnan(jackknife_interval(1.0, [1.0, np.nan, 2.0]).lo)  # 2 usable clusters
    with pytest.raises(InputError, match="level"):
        jackknife_interval(1.0, [1, 2, 3], 1.0)
    with pytest.raises(InputError):
        t_quantile(1.0, 3)


def test_cluster_jackknife_leaves_each_cluster_out_of_every_array():
    a, b = np.arange(6.0), np.arange(6.0) * 10
    codes = [np.array([0, 0, 1, 1, 2, 2])] * 2
    got = cluster_jackknife(lambda x, y: x.sum() + y.sum(), [a, b], codes, 3)
    np.testing.assert_allclose(
        got, [11 * (2 + 3 + 4 + 5), 11 * (0 + 1 + 4 + 5), 11 * (0 + 1 + 2 + 3)]
    )


def _clustered(rng, C=12):
    """Turns (clusters) with both classes: a turn level, a turn-specific separation, noise."""
    pos, neg, cp, cn = [], [], [], []
    for c in range(C):
        u, sep = rng.normal(0, 1.0), rng.normal(0.8, 0.5)
        n_p, n_n = rng.integers(5, 40, 2)
        pos.append(u + sep + rng.normal(0, 1, n_p))
        neg.append(u + rng.normal(0, 1, n_n))
        cp += [c] * n_p
        cn += [c] * n_n
    return np.concatenate(pos), np.concatenate(neg), np.array(cp), np.array(cn)


def test_clustered_auroc_interval_covers_the_estimators_expectation_at_12_clusters():
    rng = np.random.default_rng(1)
    truth = np.mean([auroc(*_clustered(rng)[:2]) for _ in range(1500)])
    hits, above = 0, 0
    for s in range(200):
        p, n, cp, cn = _clustered(rng)
        lo, hi = bootstrap_ci(auroc, p, n, groups=[cp, cn])
        hits += lo <= truth <= hi
        assert lo < auroc(p, n) < hi  # centred on its own estimate
        if s < 40:  # the percentile bootstrap's interval is pushed off its own estimate
            plo, phi = bootstrap_ci(
                auroc, p, n, groups=[cp, cn], n_boot=200, seed=s, method="percentile"
            )
            above += (plo + phi) / 2 > auroc(p, n)
    assert hits / 200 >= 0.9
    assert (
        above >= 26
    )  # cross-copy pairs count as within-turn pairs: midpoints sit above (20 of 40 if unbiased)
