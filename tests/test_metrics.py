"""Metrics against independent brute-force formulas."""

from __future__ import annotations

import numpy as np
import pytest

from value_lens.errors import InputError
from value_lens.metrics import auroc, bootstrap_ci, cohens_d, rankdata, spearman


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
