"""value_lens.decode.estimators against brute force over every k-subset, and votes by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from value_lens.decode.estimators import best_of_k, best_of_k_curve, pass_at_k, vote, vote_at_k
from value_lens.errors import InputError


def brute_best_of_k(scores, correct, k):
    """Mean over all k-subsets of the correctness of the top score, ties split evenly."""
    accs = []
    for sub in itertools.combinations(range(len(scores)), k):
        top = max(scores[i] for i in sub)
        tied = [i for i in sub if scores[i] == top]
        accs.append(sum(correct[i] for i in tied) / len(tied))
    return float(np.mean(accs))


def brute_vote(answers, correct, k, scores=None):
    accs = []
    for sub in itertools.combinations(range(len(answers)), k):
        tally = {}
        for i in sub:
            if answers[i] is None:
                continue
            if scores is None:
                w = 1.0
            else:  # rank of scores[i] within the subset, ties averaged (1 = lowest)
                sub_s = [scores[j] for j in sub]
                less = sum(x < scores[i] for x in sub_s)
                eq = sum(x == scores[i] for x in sub_s)
                w = less + (eq + 1) / 2
            tally[answers[i]] = tally.get(answers[i], 0.0) + w
        if not tally:
            accs.append(0.0)
            continue
        top = max(tally.values())
        win = [a for a, x in tally.items() if math.isclose(x, top)]
        worth = {
            a: np.mean([correct[j] for j in range(len(answers)) if answers[j] == a]) for a in win
        }
        accs.append(sum(worth[a] for a in win) / len(win))
    return float(np.mean(accs))


@pytest.mark.parametrize("seed", range(6))
def test_best_of_k_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    scores = rng.integers(0, 4, n).astype(float).tolist()  # many ties
    correct = rng.integers(0, 2, n).tolist()
    for k in range(1, n + 1):
        assert best_of_k(scores, correct, k) == pytest.approx(brute_best_of_k(scores, correct, k))
    curve = best_of_k_curve(scores, correct)
    assert curve[0] == pytest.approx(np.mean(correct))  # k = 1 is random selection
    assert curve[-1] == pytest.approx(brute_best_of_k(scores, correct, n))


def test_pass_at_k_equals_brute_force():
    for n, c, k in [(5, 2, 1), (5, 2, 3), (8, 0, 4), (8, 8, 1), (6, 1, 6)]:
        correct = [1] * c + [0] * (n - c)
        subs = list(itertools.combinations(range(n), k))
        want = np.mean([any(correct[i] for i in s) for s in subs])
        assert pass_at_k(n, c, k) == pytest.approx(want)


def test_weighted_vote_by_hand():
    # "7" has 1 + 1 = 2, "8" has 3: "8" wins; equal weights make it a tie of "7" against "8"
    assert vote(["7", "7", "8"], [1.0, 1.0, 3.0]) == {"8": 1.0}
    assert vote(["7", "7", "8"], [1.0, 1.0, 2.0]) == {"7": 0.5, "8": 0.5}
    assert vote(["7", None, "8", "7"]) == {"7": 1.0}  # None abstains
    assert vote([None, None]) == {}
    with pytest.raises(InputError, match="weights"):
        vote(["a"], [-1.0])


def test_rank_weighted_vote_at_k_by_hand():
    # n = 3, k = 2, answers a, a, b; scores 0.1, 0.2, 0.9 (ranks within a pair: 1 and 2)
    # {0,1}: a wins. {0,2}: a=1, b=2 -> b. {1,2}: a=1, b=2 -> b. "a" correct: accuracy 1/3.
    got = vote_at_k(["a", "a", "b"], [1, 1, 0], 2, scores=[0.1, 0.2, 0.9])
    assert got == pytest.approx(1 / 3)
    # the plain majority over the same subsets: a, tie(a, b), tie(a, b) -> (1 + .5 + .5) / 3
    assert vote_at_k(["a", "a", "b"], [1, 1, 0], 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_vote_at_k_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 6
    answers = [None if x == 3 else str(x) for x in rng.integers(0, 4, n)]
    correct = [1.0 if a == "1" else 0.0 for a in answers]
    scores = rng.integers(0, 3, n).astype(float).tolist()
    for k in range(1, n + 1):
        assert vote_at_k(answers, correct, k) == pytest.approx(brute_vote(answers, correct, k))
        assert vote_at_k(answers, correct, k, scores=scores) == pytest.approx(
            brute_vote(answers, correct, k, scores)
        )


def test_vote_at_k_samples_subsets_beyond_the_cap():
    answers = ["a"] * 5 + ["b"] * 5
    correct = [1.0] * 5 + [0.0] * 5
    exact = vote_at_k(answers, correct, 5)
    approx = vote_at_k(answers, correct, 5, max_subsets=4000, seed=1)  # C(10,5) = 252 < cap
    assert approx == exact
    sampled = vote_at_k(answers, correct, 5, max_subsets=200, seed=1)
    assert abs(sampled - exact) < 0.1


def test_estimators_refuse_bad_input():
    with pytest.raises(InputError, match="k must be"):
        best_of_k([1.0, 2.0], [1, 0], 3)
    with pytest.raises(InputError, match="NaN or Inf"):
        best_of_k([float("nan"), 2.0], [1, 0], 1)
    with pytest.raises(InputError, match="raw"):
        vote_at_k(["a", "b"], [1, 0], 1, scores=[-1.0, 1.0], weighting="raw")


# --- BestOfN tables on planted rollouts (no model): hand AUROCs, brute-force curves, and
# --- problem bootstraps recomputed from the cluster resamples themselves


def _pairs_auroc(pos, neg, wp=None, wn=None):
    """Mann-Whitney by brute force over weighted pairs (ties count half)."""
    wp = np.ones(len(pos)) if wp is None else wp
    wn = np.ones(len(neg)) if wn is None else wn
    num = sum(
        a * b * ((x > z) + 0.5 * (x == z))
        for x, a in zip(pos, wp, strict=True)
        for z, b in zip(neg, wn, strict=True)
    )
    den = wp.sum() * wn.sum()
    return num / den if den > 0 else float("nan")


@pytest.fixture(scope="module")
def planted():
    import torch

    from value_lens.decode import Sample
    from value_lens.decode.results import BestOfN

    rng = np.random.default_rng(7)
    n_p, n = 6, 4
    correct = rng.integers(0, 2, (n_p, n)).astype(float)
    correct[0] = [1, 1, 1, 1]  # one all-correct problem: not in the within-problem mean
    correct[1] = [1, 0, 0, 0]
    answers = [["x" if c else rng.choice(["y", "z"]) for c in row] for row in correct]
    scores = rng.normal(size=(n_p * n, 1)) + 0.8 * correct.reshape(-1, 1)
    samples = [
        Sample(p, i, "", torch.tensor([1]), False, answers[p][i], float(correct[p, i]))
        for p in range(n_p)
        for i in range(n)
    ]
    return BestOfN(samples, n, {"s": scores}), correct, scores[:, 0].reshape(n_p, n), answers


def test_auroc_table_and_its_problem_bootstrap_by_hand(planted):
    from value_lens.analysis.clusters import cluster_counts

    res, y, sc, _ = planted
    n_p = y.shape[0]
    tab = res.auroc(n_boot=200, seed=3, ci=0.9, method="percentile").set_index("scorer").loc["s"]
    flat_y, flat_s, pid = y.reshape(-1) > 0.5, sc.reshape(-1), np.repeat(np.arange(n_p), 4)
    assert tab.auroc == pytest.approx(_pairs_auroc(flat_s[flat_y], flat_s[~flat_y]))
    mixed = [p for p in range(n_p) if 0 < y[p].sum() < 4]
    within = {p: _pairs_auroc(sc[p][y[p] > 0.5], sc[p][y[p] < 0.5]) for p in mixed}
    assert tab.within == pytest.approx(np.mean(list(within.values())))
    assert tab.n_mixed == len(mixed)
    pooled_b, within_b = [], []
    for w in cluster_counts(n_p, 200, 3):  # a problem drawn twice counts all its samples twice
        rep = w[pid].astype(float)
        pooled_b.append(_pairs_auroc(flat_s[flat_y], flat_s[~flat_y], rep[flat_y], rep[~flat_y]))
        wm = np.array([w[p] for p in mixed], dtype=float)
        within_b.append(
            wm @ np.array([within[p] for p in mixed]) / wm.sum() if wm.sum() else np.nan
        )
    for got, vals in (
        ((tab.auroc_lo, tab.auroc_hi), pooled_b),
        ((tab.within_lo, tab.within_hi), within_b),
    ):
        vals = np.array(vals)
        want = np.quantile(vals[np.isfinite(vals)], [0.05, 0.95])
        assert got == pytest.approx(tuple(want))
    assert tab.auroc_lo < tab.auroc_hi and tab.within_lo < tab.within_hi


def test_curves_majority_and_their_problem_bootstrap_by_hand(planted):
    from value_lens.analysis.clusters import cluster_counts

    res, y, sc, answers = planted
    n_p, n = y.shape
    major = res.curve_matrix("majority")
    for p in range(n_p):
        for k in range(1, n + 1):
            assert major[p, k - 1] == pytest.approx(brute_vote(answers[p], y[p], k))
    best = np.array(
        [[brute_best_of_k(sc[p], y[p], k) for k in range(1, n + 1)] for p in range(n_p)]
    )
    cur = res.curves(methods=["s", "majority"], n_boot=300, seed=1, ci=0.8)
    draws = np.stack(list(cluster_counts(n_p, 300, 1)))
    for name, acc in (("s", best), ("majority", major)):
        rows = cur[cur.method == name].set_index("k")
        boot = draws @ acc / n_p  # the mean over the drawn problems, per k
        lo, hi = np.quantile(boot, [0.1, 0.9], axis=0)
        assert np.allclose(rows.accuracy, acc.mean(0))
        assert np.allclose(rows.lo, lo) and np.allclose(rows.hi, hi)
