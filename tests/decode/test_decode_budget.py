"""Early stopping compared at equal token budgets (value_lens.decode.budget).

Oracles: ``early_stop`` at single thresholds (itself checked token by token against a live stop
rule and a hand vote in test_decode.py), hand-made curves whose interpolation is known, planted
rollouts where two scorers are equal in truth (their paired difference has expectation 0), and
a 6,000-problem population for the true accuracy at a budget.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _decode_planted import planted

from value_lens.analysis.metrics import auroc
from value_lens.decode import Sample, early_stop, rescore
from value_lens.decode import scorers as S
from value_lens.decode.budget import (
    StopCurve,
    StopInputs,
    equal_budget,
    matched_random,
    stop_curve,
    vote_accuracy,
)
from value_lens.errors import InputError

GRID = tuple(range(0, 101, 10))


def test_stop_curve_equals_early_stop_at_each_percentile():
    rng = np.random.default_rng(0)
    p_count, n, w = 6, 8, 3
    samples = []
    for p in range(p_count):
        for i in range(n):
            m = int(rng.integers(2, 12))
            conf = torch.tensor(rng.normal(size=m))
            ok = float(rng.random() < 0.4)
            samples.append(
                Sample(
                    p,
                    i,
                    "",
                    torch.zeros(m, dtype=torch.long),
                    False,
                    int(ok) or int(rng.integers(1, 3)),
                    ok,
                    token_stats={"confidence": conf},
                )
            )
    scorer = S.group_confidence(window=w)
    inputs = StopInputs.of(samples, n, scorer)
    cur = stop_curve(inputs, warmup=4, percentiles=(0, 30, 70, 100))
    res = rescore(samples, n, {"c": scorer})
    for j, q in enumerate((0, 30, 70, 100), start=1):
        es = early_stop(None, None, n, scorer, 4, f"percentile:{q}", rollouts=res)
        assert cur.kept[:, j] == pytest.approx(es.per_problem["kept_tokens"].to_numpy())
        assert cur.accuracy[:, j] == pytest.approx(es.per_problem["accuracy"].to_numpy())
        assert cur.stopped_share[j] == pytest.approx(es.summary(n_boot=5)["stopped_share"])
    full = np.array([sum(s.n_tokens for s in samples[p * n : (p + 1) * n]) for p in range(p_count)])
    assert cur.kept[:, 0] == pytest.approx(full) and cur.accuracy[:, 0] == pytest.approx(
        cur.baseline
    )
    # "always": every later rollout with a full group keeps exactly its first group
    later = [s for s in samples if s.index >= 4]
    kept_always = sum(min(w, s.n_tokens) if s.n_tokens >= w else s.n_tokens for s in later)
    kept_always += sum(s.n_tokens for s in samples if s.index < 4)
    assert cur.kept[:, -1].sum() == kept_always
    assert np.all(np.diff(cur.tokens_saved) >= -1e-12)  # more stopping saves more


def test_vote_accuracy_by_hand():
    answers = np.array([[0, 0, 1, 1, -1], [2, 2, 2, 0, 1]])
    correct = np.array([[1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0]])
    keep = np.array([[True, True, True, True, True], [True, True, False, True, True]])
    # problem 0: a 2-2 tie between a right and a wrong answer; problem 1: answer 2 wins 2 votes
    assert vote_accuracy(keep, answers, correct).tolist() == [0.5, 0.0]
    assert vote_accuracy(np.zeros((2, 5), bool), answers, correct).tolist() == [0.0, 0.0]


def _curve(kept, acc, base, full) -> StopCurve:
    kept, acc = np.asarray(kept, float), np.asarray(acc, float)
    st = np.full((kept.shape[0], 2, kept.shape[1]), -1)
    return StopCurve(
        "x",
        tuple(f"g{i}" for i in range(kept.shape[1])),
        kept,
        np.asarray(full, float),
        acc,
        np.asarray(base, float),
        st,
        1,
    )


def test_equal_budget_interpolates_between_rules_by_hand():
    # two problems of 100 tokens; grid points save 0, 10% and 40% of the tokens
    a = _curve(
        [[100, 90, 60], [100, 90, 60]], [[0.5, 0.7, 0.2], [0.5, 0.9, 0.4]], [0.5, 0.5], [100, 100]
    )
    b = _curve(
        [[100, 80, 80], [100, 80, 80]], [[0.5, 0.6, 0.6], [0.5, 0.6, 0.6]], [0.5, 0.5], [100, 100]
    )
    tab = equal_budget({"a": a, "b": b}, (0.1, 0.2, 0.3), random="b", n_boot=20).set_index(
        ["scorer", "tokens_saved"]
    )
    assert tab.loc[("a", 0.1), "accuracy"] == pytest.approx(0.8)  # a grid point
    # 20%: a third of the way from 10% to 40%: 0.8 + (0.3 - 0.8) / 3
    assert tab.loc[("a", 0.2), "accuracy"] == pytest.approx(0.8 - 0.5 / 3)
    assert tab.loc[("a", 0.2), "vs_majority"] == pytest.approx(0.8 - 0.5 / 3 - 0.5)
    assert tab.loc[("a", 0.2), "vs_random"] == pytest.approx(0.8 - 0.5 / 3 - 0.6)  # b at 20%
    assert np.isnan(tab.loc[("b", 0.3), "accuracy"])  # b never saves more than 20%
    with pytest.raises(InputError, match="random"):
        equal_budget({"a": a}, random="nope")


@pytest.mark.parametrize("method", ["jackknife", "percentile"])
def test_equal_budget_differences_are_paired_per_problem(method):
    """A rule against itself differs by exactly 0 on every resample: both terms come from the
    same problems (an unpaired interval would have width)."""
    x, _ = planted(np.random.default_rng(6), 40)
    cur = stop_curve(x, 16, GRID)
    tab = equal_budget({"a": cur, "b": cur}, (0.1, 0.2), random="b", method=method, n_boot=50)
    assert (tab[["vs_random", "vs_random_lo", "vs_random_hi"]].abs().to_numpy() < 1e-12).all()
    wide = tab[["accuracy_lo", "accuracy_hi"]].to_numpy()
    assert (wide[:, 1] - wide[:, 0] > 0.02).all()  # the accuracy itself does vary


def test_equal_budget_interval_covers_zero_for_scorers_equal_in_truth():
    """The issue's test: two scorers with the same signal in truth (independent draws), 100
    problems x 24 rollouts, 16 warm-ups: the paired difference's interval covers 0."""
    rng = np.random.default_rng(1)
    hits = []
    for r in range(120):
        x, y = planted(rng, 100)
        cx, cy = stop_curve(x, 16, GRID), stop_curve(y, 16, GRID)
        tab = equal_budget({"a": cx, "b": cy}, (0.1, 0.2), random="b", seed=r)
        row = tab[tab.scorer == "a"]
        hits += ((row.vs_random_lo <= 0) & (row.vs_random_hi >= 0)).tolist()
    assert np.mean(hits) >= 0.9


def test_equal_budget_accuracy_and_majority_gain_cover_the_population_values():
    rng = np.random.default_rng(2)
    pop, _ = planted(rng, 6000)
    truth = equal_budget({"a": stop_curve(pop, 16, GRID)}, (0.15,), random=None).iloc[0]
    hits = {"accuracy": [], "vs_majority": []}
    for r in range(120):
        x, _ = planted(rng, 100)
        row = equal_budget({"a": stop_curve(x, 16, GRID)}, (0.15,), random=None, seed=r).iloc[0]
        for k in hits:
            hits[k].append(row[f"{k}_lo"] <= truth[k] <= row[f"{k}_hi"])
    assert truth["vs_majority"] > 0.02  # a real gain to cover, not 0 == 0
    for k, h in hits.items():
        assert np.mean(h) >= 0.9, k


def test_matched_random_keeps_the_rules_token_counts_but_deals_them_blind():
    rng = np.random.default_rng(3)
    x, _ = planted(rng, 30, same_length=True)
    cur = stop_curve(x, 16)
    m = matched_random(x, cur, draws=16, seed=0)
    # equal lengths: every dealt stop lands, so the tokens kept are exactly the rule's
    assert m.kept == pytest.approx(cur.kept)
    for p in range(30):
        for j in range(len(cur.labels)):
            assert sorted(m.stops[p, 16:, j]) == sorted(cur.stops[p, 16:, j])
    # the rule stops wrong rollouts (its signal is higher when right); the blind deal does not
    g = cur.labels.index("p50")
    wrong = x.correct[:, 16:] < 0.5
    rule_wrong = (cur.stops[:, 16:, g] >= 0)[wrong].mean()
    blind_wrong = (m.stops[:, 16:, g] >= 0)[wrong].mean()
    assert rule_wrong > blind_wrong + 0.1


def test_matched_random_interval_covers_zero_for_a_blind_rule():
    """A rule whose signal ignores correctness, on rollouts of equal length, is in truth the same
    as its blind deal: ``vs_matched`` covers 0."""
    rng = np.random.default_rng(4)
    hits = []
    for r in range(100):
        x, _ = planted(rng, 100, signal=0.0, same_length=True)
        cur = stop_curve(x, 16, GRID)
        tab = equal_budget(
            {"a": cur},
            (0.1, 0.2),
            random=None,
            matched={"a": matched_random(x, cur, draws=8, seed=r)},
            seed=r,
        )
        hits += ((tab.vs_matched_lo <= 0) & (tab.vs_matched_hi >= 0)).tolist()
    assert np.mean(hits) >= 0.9


def test_random_stop_stops_long_rollouts_more():
    """The i.i.d.-noise control has more groups to dip on in a long rollout: its stops are not
    blind to length (and here length predicts correctness)."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(4, 40, 400)
    samples = [
        Sample(p, i, "", torch.zeros(int(lengths[p * 8 + i]), dtype=torch.long), False, 0, 1.0)
        for p in range(50)
        for i in range(8)
    ]
    es = early_stop(
        None,
        None,
        8,
        S.random_stop(4),
        4,
        "percentile:50",
        rollouts=rescore(samples, 8, {"l": S.length(align=False)}),
    )
    later = es.frame[~es.frame.warmup]
    hit, miss = later[later.stopped], later[~later.stopped]
    assert auroc(hit.full_tokens, miss.full_tokens) > 0.6  # 0.5 if blind to length
