"""Metrics against independent brute-force formulas."""

from __future__ import annotations

import numpy as np
import pytest

from value_lens.analysis.clusters import ClusterAUROC
from value_lens.analysis.metrics import (
    auroc,
    bootstrap_ci,
    cohens_d,
    rankdata,
    spearman,
)
from value_lens.errors import InputError


def _pairwise_auroc(pos, neg):
    """P(pos > neg) + 0.5 P(tie) by enumerating every pair (the Mann-Whitney U definition)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_mann_whitney_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 6, size=17).astype(float)  # few distinct values: many ties
    neg = rng.integers(0, 5, size=23).astype(float)
    assert auroc(pos, neg) == pytest.approx(_pairwise_auroc(pos, neg), abs=1e-12)


def test_auroc_edge_cases():
    assert auroc([2, 3], [0, 1]) == 1.0
    assert auroc([0, 1], [2, 3]) == 0.0
    assert auroc([5, 5, 5], [5, 5]) == 0.5
    assert auroc([1, 2], [2, 1]) == 0.5
    with pytest.raises(InputError, match="one-class"):
        auroc([], [1.0])
    with pytest.raises(InputError, match="NaN"):
        auroc([float("nan")], [1.0])


def test_rankdata_average_ties():
    assert rankdata([3, 1, 3, 3, 2]).tolist() == [4.0, 1.0, 4.0, 4.0, 2.0]


def test_cohens_d_unpaired_pooled():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    b = np.array([0.0, 1.0, 1.5])
    na, nb = len(a), len(b)
    va = sum((x - a.mean()) ** 2 for x in a) / (na - 1)
    vb = sum((x - b.mean()) ** 2 for x in b) / (nb - 1)
    expected = (a.mean() - b.mean()) / np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    d = cohens_d(a, b)
    assert float(d) == pytest.approx(expected)
    assert d.kind.startswith("unpaired") and d.n == (4, 3)


def test_cohens_d_paired_uses_sd_of_differences():
    a = np.array([1.0, 2.0, 3.5, 5.0])
    b = np.array([0.5, 1.0, 3.0, 3.0])
    diff = a - b
    expected = diff.mean() / np.sqrt(((diff - diff.mean()) ** 2).sum() / 3)
    d = cohens_d(a, b, paired=True)
    assert float(d) == pytest.approx(expected)
    assert d.kind.startswith("paired")
    assert float(d) != pytest.approx(float(cohens_d(a, b)))
    with pytest.raises(InputError, match="equal lengths"):
        cohens_d([1, 2, 3], [1, 2], paired=True)


def test_spearman_against_pearson_of_ranks_and_monotone():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, 30).astype(float)
    y = x + rng.normal(size=30)
    rx, ry = rankdata(x), rankdata(y)
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_bootstrap_ci_covers_and_is_deterministic():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 200), rng.normal(0, 1, 200)
    lo, hi = bootstrap_ci(cohens_d, a, b, n_boot=300, seed=3)
    assert lo < float(cohens_d(a, b)) < hi
    assert 0.6 < lo < hi < 1.4
    assert bootstrap_ci(cohens_d, a, b, n_boot=300, seed=3) == (lo, hi)
    lo2, hi2 = bootstrap_ci(lambda x, y: cohens_d(x, y, paired=True), a, b, n_boot=300, paired=True)
    assert lo2 < hi2
    with pytest.raises(InputError, match="one length"):
        bootstrap_ci(auroc, [1, 2, 3], [1, 2], paired=True)


# --- cluster bootstrap ------------------------------------------------------------------------


def _clustered(rng, n_clusters, per_cluster, *, between, within=1.0, effect=0.5):
    """Pos/neg scores where each cluster shifts all its tokens (u_c) and its own effect (e_c)."""
    pos, neg, cp, cn = [], [], [], []
    for c in range(n_clusters):
        u, e = rng.normal(0, between), rng.normal(effect, between)
        pos.append(u + e + rng.normal(0, within, per_cluster))
        neg.append(u + rng.normal(0, within, per_cluster))
        cp += [f"conv{c}"] * per_cluster
        cn += [f"conv{c}"] * per_cluster
    return np.concatenate(pos), np.concatenate(neg), cp, cn


def _copies_auroc(pos, neg, cp, cn, w, which="all"):
    """Brute force over the pairs of a resample with ``w[c]`` copies of cluster c, leaving out
    the pairs between two different copies of one cluster (they are pairs of no real turn)."""
    wins = pairs = 0.0
    for x, a in zip(pos, cp, strict=True):
        for y, b in zip(neg, cn, strict=True):
            for i in range(w[a]):
                for j in range(w[b]):
                    same_copy = a == b and i == j
                    if a == b and not same_copy:
                        continue
                    if (which == "within") != same_copy and which != "all":
                        continue
                    pairs += 1
                    wins += 1.0 if x > y else 0.5 if x == y else 0.0
    return wins / pairs if pairs else float("nan")


def test_cluster_auroc_parts_equal_brute_force_on_repeated_clusters():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 6, 40).astype(float)  # many ties
    neg = rng.integers(0, 5, 30).astype(float)
    cp, cn = rng.integers(0, 7, 40), rng.integers(2, 9, 30)  # clusters 0, 1 lack negatives
    parts = ClusterAUROC.of(pos, neg, pos_cluster=cp, neg_cluster=cn)
    assert parts.auroc() == pytest.approx(_pairwise_auroc(pos, neg), abs=1e-12)
    for _ in range(20):
        w = rng.integers(0, 3, 9)
        want = _copies_auroc(pos, neg, cp, cn, w)
        got = parts.resample(w)
        if np.isfinite(want):
            assert got == pytest.approx(want, abs=1e-12)
            # within and between split the same pairs by whether both come from one copy
            assert parts.within(w) == pytest.approx(_copies_auroc(pos, neg, cp, cn, w, "within"))
            assert parts.between(w) == pytest.approx(_copies_auroc(pos, neg, cp, cn, w, "between"))
        else:
            assert np.isnan(got)
    many = rng.integers(0, 3, (5, 9))
    np.testing.assert_allclose(parts.resample(many), [parts.resample(w) for w in many])


def test_cluster_auroc_parts_with_many_negatives_and_clusters():
    # > 4e6 / n_neg clusters: the pair counts are built in blocks of clusters
    rng = np.random.default_rng(5)
    pos, neg = np.round(rng.normal(0.3, 1, 3000), 1), np.round(rng.normal(0, 1, 50_001), 1)
    cp, cn = rng.integers(0, 120, 3000), rng.integers(0, 120, 50_001)
    parts = ClusterAUROC.of(pos, neg, pos_cluster=cp, neg_cluster=cn)
    assert parts.auroc() == pytest.approx(auroc(pos, neg), abs=1e-12)
    for _ in range(3):
        w = rng.integers(0, 2, 120)  # leave clusters out (no copies): the plain AUROC of the rest
        got = parts.resample(w)
        assert got == pytest.approx(auroc(np.repeat(pos, w[cp]), np.repeat(neg, w[cn])), abs=1e-12)


def test_cluster_bootstrap_with_one_value_per_cluster_is_the_iid_bootstrap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    ids = np.arange(60)  # one value per cluster, clusters in the order of the values
    for seed in range(3):
        # the same generator draws the same indices: identical resamples, identical interval
        got = bootstrap_ci(np.mean, x, groups=ids, n_boot=300, seed=seed, method="percentile")
        assert got == pytest.approx(bootstrap_ci(np.mean, x, n_boot=300, seed=seed), abs=1e-12)
    # two-sample AUROC: the pooled cluster bootstrap matches the two-sample one in width
    pos, neg = rng.normal(0.8, 1, 150), rng.normal(0, 1, 150)
    lo, hi = bootstrap_ci(auroc, pos, neg, n_boot=2000)
    clo, chi = bootstrap_ci(
        auroc,
        pos,
        neg,
        groups=[np.arange(150), 150 + np.arange(150)],
        n_boot=2000,
        method="percentile",
    )
    assert (chi - clo) == pytest.approx(hi - lo, rel=0.15)
    assert (clo + chi) / 2 == pytest.approx((lo + hi) / 2, abs=0.01)


def test_cluster_bootstrap_is_wider_than_iid_with_planted_cluster_effects():
    rng = np.random.default_rng(2)
    pos, neg, cp, cn = _clustered(rng, 30, 20, between=1.0)
    lo, hi = bootstrap_ci(auroc, pos, neg, n_boot=500, seed=0)
    clo, chi = bootstrap_ci(auroc, pos, neg, groups=[cp, cn], n_boot=500, seed=0)
    assert clo <= auroc(pos, neg) <= chi
    assert chi - clo > 1.5 * (hi - lo)
    # without cluster effects the two agree (the cluster one is not just always wider)
    pos, neg, cp, cn = _clustered(rng, 30, 20, between=0.0)
    lo, hi = bootstrap_ci(auroc, pos, neg, n_boot=500, seed=0)
    clo, chi = bootstrap_ci(auroc, pos, neg, groups=[cp, cn], n_boot=500, seed=0)
    assert 0.6 < (chi - clo) / (hi - lo) < 1.4


def test_cluster_bootstrap_width_matches_the_analytic_sd_of_cluster_means():
    # strong cluster effects, equal sizes: the mean is the mean of the cluster means, whose
    # bootstrap sd is sd(cluster means) / sqrt(C) (population sd of the C observed means)
    rng = np.random.default_rng(3)
    n_clusters, m = 50, 30
    u = rng.normal(0, 1, n_clusters)
    x = np.repeat(u, m) + rng.normal(0, 0.01, n_clusters * m)
    ids = np.repeat(np.arange(n_clusters), m)
    sd = x.reshape(n_clusters, m).mean(1).std() / np.sqrt(n_clusters)
    lo, hi = bootstrap_ci(np.mean, x, groups=ids, n_boot=4000, seed=0)
    assert (hi - lo) == pytest.approx(2 * 1.959964 * sd, rel=0.1)
    ilo, ihi = bootstrap_ci(np.mean, x, n_boot=4000, seed=0)
    assert (ihi - ilo) < 0.3 * (hi - lo)  # i.i.d. tokens: about sqrt(m) times too narrow


def test_cluster_bootstrap_covers_the_true_mean_where_iid_does_not():
    rng = np.random.default_rng(4)
    hits = {"cluster": 0, "iid": 0}
    n_sim = 120
    for sim in range(n_sim):
        x = np.repeat(rng.normal(0, 1, 30), 10) + rng.normal(0, 1, 300)  # true mean 0
        ids = np.repeat(np.arange(30), 10)
        lo, hi = bootstrap_ci(np.mean, x, groups=ids, n_boot=300, seed=sim)
        hits["cluster"] += lo <= 0 <= hi
        lo, hi = bootstrap_ci(np.mean, x, n_boot=300, seed=sim)
        hits["iid"] += lo <= 0 <= hi
    assert hits["cluster"] / n_sim > 0.85
    assert hits["iid"] / n_sim < 0.7


def test_cluster_bootstrap_errors():
    with pytest.raises(InputError, match="one label array per array"):
        bootstrap_ci(auroc, [1, 2], [0, 1], groups=["a", "b"])
    with pytest.raises(InputError, match="one\\s+cluster label"):
        bootstrap_ci(auroc, [1, 2], [0, 1], groups=[["a"], ["a", "b"]])
    with pytest.raises(InputError, match="2 label arrays for 1"):
        bootstrap_ci(np.mean, [1, 2], groups=[["a", "b"], ["a", "b"]])
    # paired: one shared label array
    lo, hi = bootstrap_ci(
        lambda a, b: np.mean(a - b),
        [1, 2, 3, 4],
        [0, 0, 0, 0],
        groups=[0, 0, 1, 1],
        paired=True,
        n_boot=200,
        method="percentile",
    )
    assert 1.5 <= lo <= hi <= 3.5
    with pytest.raises(InputError, match="at least 3 clusters"):  # the jackknife needs 3
        bootstrap_ci(np.mean, [1, 2, 3, 4], groups=[0, 0, 1, 1], method="jackknife")
    assert np.isnan(bootstrap_ci(np.mean, [1, 2, 3, 4], groups=[0, 0, 1, 1])).all()  # auto
    with pytest.raises(InputError, match="needs groups="):
        bootstrap_ci(np.mean, [1, 2, 3, 4], method="jackknife")


def test_percentile_cluster_bootstrap_rebuilds_both_classes_from_the_same_clusters():
    # conversation 0: pos {3, 4} vs neg {1, 2}; conversation 1: pos {5, 6} vs neg {3, 4}.
    # Any resample of whole conversations has AUROC 1 (one conversation twice) or 0.875 (both);
    # drawing the positives' and negatives' clusters separately would also give 0.5 (pos of
    # conversation 0 against neg of conversation 1). The interval (0.875, 1.0) lies above its own
    # estimate of 0.875: the pairs between two copies of one conversation count as within-turn
    # pairs, which is why clustered intervals default to the jackknife.
    conv = ["c0", "c0", "c1", "c1"]
    seen = []
    lo, hi = bootstrap_ci(
        lambda p, n: seen.append(auroc(p, n)) or seen[-1],
        [3, 4, 5, 6],
        [1, 2, 3, 4],
        groups=[conv, conv],
        n_boot=200,
        method="percentile",
    )
    assert set(seen) == {0.875, 1.0} and (lo, hi) == (0.875, 1.0)


def test_clustered_default_is_the_jackknife_centred_on_its_estimate():
    rng = np.random.default_rng(0)
    conv = np.repeat(np.arange(6), 4)
    pos, neg = rng.normal(1, 1, 24) + conv, rng.normal(0, 1, 24) + conv
    point = auroc(pos, neg)
    lo, hi = bootstrap_ci(auroc, pos, neg, groups=[conv, conv])
    assert (lo + hi) / 2 == pytest.approx(point)  # centred, unlike the percentile bootstrap
    # by hand: leave each conversation out, t quantile on 5 degrees of freedom
    loo = np.array([auroc(pos[conv != c], neg[conv != c]) for c in range(6)])
    se = np.sqrt(5 / 6 * ((loo - loo.mean()) ** 2).sum())
    assert hi - point == pytest.approx(2.5705818 * se, rel=1e-5)
