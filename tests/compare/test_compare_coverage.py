"""Coverage of the intervals the comparisons print, on planted data with a known answer, at
the counts the defaults produce: 160 held-out prompts (selection and rank rates and their
base-vs-tuned differences), about 16 prompts per category quartile, 20 preferred-word sentences
against 9 control words (word delta)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from value_lens.compare.common import paired_diff_ci, rate_ci
from value_lens.compare.quartiles import quartile_fractions
from value_lens.compare.transfer import _delta_summary


@pytest.mark.parametrize(("n", "p"), [(16, 0.1), (16, 0.3), (160, 0.21)])
def test_rate_interval_covers_the_true_rate(n, p):
    """Exactly: the binomial probability of the counts whose interval holds ``p``. The old
    percentile bootstrap held a 10% rate on 16 prompts 81% of the time (it is [0, 0] at 0 of 16)."""
    ks = np.arange(n + 1)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    logpmf = logfact[n] - logfact[ks] - logfact[n - ks] + ks * np.log(p) + (n - ks) * np.log1p(-p)
    pmf = np.exp(logpmf)
    cover = 0.0
    for k in ks[pmf > 1e-10]:
        lo, hi = rate_ci(np.arange(n) < k, 0, 0)
        cover += pmf[k] * (lo <= p <= hi)
    assert 0.95 - 1e-9 <= cover <= 0.995


def test_quartile_fractions_cover_the_planted_label_rates():
    """Labels whose rate falls with the score (quartile 1 holds the highest scores: 10%, 20%,
    30%, 40% from quartile 1 to 4), 64 prompts."""
    rng = np.random.default_rng(0)
    truth = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}
    hits = []
    for r in range(150):
        scores = rng.permutation(64).astype(float)
        q = 4 - scores // 16  # scores 48-63 are quartile 1
        flags = rng.random(64) < np.array([truth[int(x)] for x in q])
        df = quartile_fractions(scores, pd.DataFrame({"lab": flags}), seed=r)
        hits += [row.ci_lo <= truth[row.quartile] <= row.ci_hi for row in df.itertuples()]
    assert np.mean(hits) >= 0.9


@pytest.mark.parametrize("n", [40, 160])
def test_paired_difference_of_rates_covers_the_true_change(n):
    """Base hits at 21%; the tuned model keeps each prompt's outcome 70% of the time and else
    redraws it at 36%: the true change is 0.3 * (0.36 - 0.21)."""
    rng = np.random.default_rng(1)
    truth = 0.3 * (0.36 - 0.21)
    hits = []
    for r in range(300):
        a = rng.random(n) < 0.21
        b = np.where(rng.random(n) < 0.7, a, rng.random(n) < 0.36)
        lo, hi = paired_diff_ci(a, b, 300, r)
        hits.append(lo <= truth <= hi)
    assert np.mean(hits) >= 0.9


def test_word_delta_means_and_ratio_cover_the_planted_values():
    """20 preferred sentences (mean delta 0.03) against 9 control words whose sentences share a
    word effect (mean 0.01): the ratio is 3."""
    rng = np.random.default_rng(2)
    hits: dict[str, list[bool]] = {"preferred": [], "control": [], "ratio": []}
    for r in range(300):
        rows = [
            {"word": "w", "role": "preferred", "sentence": i, "delta": v}
            for i, v in enumerate(rng.normal(0.03, 0.02, 20))
        ]
        for w in range(9):
            u = rng.normal(0.01, 0.008)
            rows += [
                {"word": f"c{w}", "role": "control", "sentence": i, "delta": u + e}
                for i, e in enumerate(rng.normal(0, 0.01, 20))
            ]
        s = _delta_summary(pd.DataFrame(rows), 300, r).set_index("statistic")
        for k, t in (("preferred", 0.03), ("control", 0.01), ("ratio", 3.0)):
            lo, hi = s.loc[k, "ci_lo"], s.loc[k, "ci_hi"]
            hits[k].append(bool(np.isnan(lo) or lo <= t <= hi))  # NaN: unbounded, covers
    for k, h in hits.items():
        assert np.mean(h) >= 0.9, k
