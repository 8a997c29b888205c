"""Coverage of the decoding tables' intervals (AUROC, best-of-k curves, paired best-of-k
differences, the early-stop summary) on planted rollouts with a problem difficulty.

Each truth comes from a large planted population (or is 0 by symmetry), and each 95% interval
must hold it at least 90% of the time at the problem counts of the benchmark (40 to 100).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _decode_planted import planted

from value_lens.decode import BestOfN, EarlyStop, Sample
from value_lens.decode.run import per_problem


def _population(rng, problems: int, n: int):
    """Per problem a difficulty; a rollout is right with that chance; its answer is 0 when
    right, else one of 3 wrong answers; two scores ``0.8 * correct + N(0, 1)`` drawn
    independently (equal in truth)."""
    q = 1 / (1 + np.exp(-rng.normal(-0.5, 1.5, problems)))
    y = (rng.random((problems, n)) < q[:, None]).astype(float)
    ans = np.where(y > 0, 0, 1 + rng.integers(0, 3, (problems, n)))
    a = 0.8 * y + rng.normal(size=y.shape)
    b = 0.8 * y + rng.normal(size=y.shape)
    return y, ans, a, b


def _result(y, ans, a, b=None) -> BestOfN:
    p_count, n = y.shape
    samples = [
        Sample(p, i, "", torch.zeros(1, dtype=torch.long), False, int(ans[p, i]), float(y[p, i]))
        for p in range(p_count)
        for i in range(n)
    ]
    scores = {"a": a.reshape(-1, 1)} | ({} if b is None else {"b": b.reshape(-1, 1)})
    return BestOfN(samples, n, scores)


def test_paired_best_of_k_difference_covers_zero_for_scorers_equal_in_truth():
    rng = np.random.default_rng(0)
    hits = []
    for r in range(150):
        res = _result(*_population(rng, 40, 4))
        d = res.differences(methods=["a"], against=("b",), n_boot=300, seed=r)
        top = d[d.k == 4].iloc[0]
        hits.append(top.lo <= 0 <= top.hi)
    assert np.mean(hits) >= 0.9


def test_best_of_k_curve_and_its_gain_over_random_cover_the_population_values():
    rng = np.random.default_rng(1)
    big = _result(*_population(rng, 1500, 4))
    acc = big.curve_matrix("a")[:, -1].mean()
    gain = (big.curve_matrix("a") - big.curve_matrix("random"))[:, -1].mean()
    assert gain > 0.05  # the scorer helps: a gap to cover, not 0 == 0
    hit_acc, hit_gain = [], []
    for r in range(120):
        res = _result(*_population(rng, 40, 4))
        cur = res.curves(methods=["a"], n_boot=300, seed=r).set_index("k").loc[4]
        hit_acc.append(cur.lo <= acc <= cur.hi)
        d = res.differences(methods=["a"], against=("random",), n_boot=300, seed=r)
        top = d[d.k == 4].iloc[0]
        hit_gain.append(top.lo <= gain <= top.hi)
    assert np.mean(hit_acc) >= 0.9 and np.mean(hit_gain) >= 0.9


def test_auroc_intervals_cover_the_population_pooled_and_within_problem_values():
    rng = np.random.default_rng(2)
    big = _result(*_population(rng, 1500, 8)[:3]).auroc(method="percentile", n_boot=1)
    big = big.set_index("scorer").loc["a"]  # the point values only
    hits = {"auroc": [], "within": []}
    for r in range(100):
        tab = _result(*_population(rng, 40, 8)[:3]).auroc(seed=r)
        row = tab.set_index("scorer").loc["a"]
        for k in hits:
            hits[k].append(row[f"{k}_lo"] <= big[k] <= row[f"{k}_hi"])
    for k, h in hits.items():
        assert np.mean(h) >= 0.9, (k, np.mean(h))


@pytest.mark.parametrize("key", ["accuracy_change", "tokens_saved"])
def test_early_stop_summary_intervals_cover_the_population_values(key):
    """The summary of DeepConf-style stopping at the warm-up median (16 warm-ups of 24), on
    100 problems (the benchmark's count); its per-problem table is the one early_stop makes."""
    rng = np.random.default_rng(3)

    def summary(problems: int, seed: int) -> dict:
        table = per_problem(planted(rng, problems)[0], 16, "percentile:50")
        empty = pd.DataFrame({"warmup": [], "stopped": []})
        return EarlyStop(empty, table, {"warmup": 16}).summary(n_boot=300, seed=seed)

    truth = summary(6000, 0)[key]
    hits = []
    for r in range(120):
        s = summary(100, r)
        hits.append(s[f"{key}_lo"] <= truth <= s[f"{key}_hi"])
    assert abs(truth) > 0.01 and np.mean(hits) >= 0.9
