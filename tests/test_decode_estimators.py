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
