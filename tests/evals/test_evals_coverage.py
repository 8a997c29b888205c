"""Coverage of every interval the evaluation suites print, on planted data with a known answer.

Each simulation plants a problem-level random effect (a problem's rollouts, prefills or
corruptions share its offset), computes the suite's table with the library function the suite
calls, and counts how often the 95% interval holds the true value. It must hold it at least 90%
of the time at the cluster counts the defaults produce (4 rollouts x 12 problems, 20 confidence
problems, 12 and 50 code problems). Where today's code resampled rollouts, the same data with
one cluster per rollout is shown to under-cover.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from value_lens.evals import band_curves, code_headline, code_summary, event_locked
from value_lens.evals.confidence import confidence_summary

REPS = 300


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _rollouts(rng: np.random.Generator, problems: int, per: int):
    """Rollouts of ``problems`` problems, ``per`` each: value = problem effect + rollout effect
    + token noise + a trend of 0.01 per 500-token band; lengths and flags are independent of
    the effects, so the true band curve is the trend."""
    n = problems * per
    lengths = rng.integers(600, 1500, n)
    offset = np.repeat(rng.normal(0, 0.06, problems), per) + rng.normal(0, 0.01, n)
    traces = [
        o + 0.01 * (np.arange(m) // 500) + rng.normal(0, 0.05, m)
        for o, m in zip(offset, lengths, strict=True)
    ]
    flags = rng.random(n) < 0.5
    return traces, flags, np.repeat(np.arange(problems), per)


def _covers(df: pd.DataFrame, truth: dict, key: str) -> list[bool]:
    return [
        bool(r.ci_lo <= truth[getattr(r, key)] <= r.ci_hi)
        for r in df.itertuples()
        if getattr(r, key) in truth and np.isfinite(r.ci_lo)
    ]


def test_band_curve_interval_covers_the_true_curve_with_a_problem_effect():
    """The issue's test: 12 problems x 4 rollouts. Clustered by problem the band interval covers
    the true curve; one cluster per rollout (today's suite) it is too narrow."""
    rng = np.random.default_rng(0)
    truth = {0: 0.0, 500: 0.01, 1000: 0.02}
    good, naive = [], []
    for _ in range(REPS):
        traces, flags, problem = _rollouts(rng, 12, 4)
        by_problem = band_curves(traces, flags, band=500, clusters=problem)
        good += _covers(by_problem, truth, "band_start")
        naive += _covers(band_curves(traces, flags, band=500), truth, "band_start")
    assert np.mean(good) >= 0.9
    assert np.mean(naive) < 0.88


def test_event_locked_interval_covers_the_true_dip():
    """One event per rollout with a dip of -0.05 over the 5 tokens after it: the true curve is
    0 before the event and -0.05 from it on (the problem effect averages out)."""
    rng = np.random.default_rng(1)
    w = 8
    truth = {o: (-0.05 if 0 <= o < 5 else 0.0) for o in range(-w, w + 1)}
    good, naive = [], []
    for _ in range(REPS // 2):
        problems, per = 12, 4
        offset = np.repeat(rng.normal(0, 0.06, problems), per)
        traces, events = [], []
        for o in offset:
            t = o + rng.normal(0, 0.05, 60)
            e = int(rng.integers(w, 60 - w))
            t[e : e + 5] -= 0.05
            traces.append(t)
            events.append([e])
        clusters = np.repeat(np.arange(problems), per)
        good += _covers(event_locked(traces, events, window=w, clusters=clusters), truth, "offset")
        naive += _covers(event_locked(traces, events, window=w), truth, "offset")
    assert np.mean(good) >= 0.9
    assert np.mean(naive) < 0.8


def _confidence_tables(rng: np.random.Generator, n: int):
    """Planted prefills: a problem offset shared by its Yes and No values (sd 1), Yes higher by
    0.5 + 0.4 if the answer was right, prefill noise sd 0.5; pre-response values correlated
    0.5 with a latent whose normal CDF is the yes-rate."""
    u = rng.normal(0, 1, n)
    correct = rng.random(n) < 0.5
    rows = []
    for framing in ("correct", "incorrect"):
        yes = u + 0.5 + 0.4 * correct + rng.normal(0, 0.5, n)
        no = u + rng.normal(0, 0.5, n)
        for p in range(n):
            rows.append({"problem_id": p, "framing": framing, "prefill": "Yes", "value": yes[p]})
            rows.append({"problem_id": p, "framing": framing, "prefill": "No", "value": no[p]})
    answers = pd.DataFrame({"problem_id": range(n), "parsed_ok": True, "correct": correct})
    z = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n)
    rate = np.array([_phi(x) for x in z[:, 1]])
    pre = pd.DataFrame({"problem_id": range(n), "yes_rate": rate, "value": z[:, 0]})
    return pd.DataFrame(rows), answers, pre


def test_confidence_intervals_cover_with_a_problem_effect():
    rng = np.random.default_rng(2)
    big = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 400_000)
    conf = big[:, 1] > 0
    from value_lens.analysis.metrics import auroc

    truth = {
        # Yes vs No of different problems: shift 0.5 (wrong) or 0.9 (right), sd sqrt(2 + 0.5)
        "auroc_yes_vs_no": 0.5 * (_phi(0.5 / math.sqrt(2.5)) + _phi(0.9 / math.sqrt(2.5))),
        "auroc_gap_correct_vs_wrong": _phi(0.4 / math.sqrt(2 * 0.5)),
        "pre_auroc_confident": auroc(big[conf, 0][:20000], big[~conf, 0][:20000]),
        "pre_spearman": 6 / math.pi * math.asin(0.25),
    }
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    for _ in range(REPS // 2):
        s = confidence_summary(*_confidence_tables(rng, 20)).set_index("framing").loc["correct"]
        for k, t in truth.items():
            if np.isfinite(s[f"{k}_lo"]):
                hits[k].append(bool(s[f"{k}_lo"] <= t <= s[f"{k}_hi"]))
    for k, h in hits.items():
        assert len(h) > 0.9 * (REPS // 2), k
        assert np.mean(h) >= 0.9, (k, np.mean(h))


def _code_table(rng: np.random.Generator, n: int, deltas: dict[str, float]) -> pd.DataFrame:
    """Each problem's correct and corrupted code share its offset (sd 1); the correct code is
    the same function for every corruption kind, so it reads the same in each of its pairs;
    corruption ``k`` lowers the value by ``deltas[k]``; noise sd 0.5."""
    u = rng.normal(0, 1, n)
    good = u + rng.normal(0, 0.5, n)
    rows = []
    for k, delta in deltas.items():
        bad = u - delta + rng.normal(0, 0.5, n)
        rows += [
            {"problem_id": p, "kind": k, "correct_whole": g, "corrupted_whole": b}
            for p, (g, b) in enumerate(zip(good, bad, strict=True))
        ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", [12, 50])
def test_code_d_per_kind_intervals_cover(n):
    """Per kind: unpaired d = delta / sqrt(1 + 0.25), paired d = delta / sqrt(2 * 0.25)."""
    rng = np.random.default_rng(3)
    deltas = {"shuffle": 1.0, "syntax": 0.3}
    unpaired, paired = [], []
    for _ in range(REPS // 3):
        s = code_summary(_code_table(rng, n, deltas)).set_index("kind")
        for k, delta in deltas.items():
            du, dp = delta / math.sqrt(1.25), delta / math.sqrt(0.5)
            r = s.loc[k]
            unpaired.append(r["d_unpaired_whole_lo"] <= du <= r["d_unpaired_whole_hi"])
            paired.append(r["d_paired_whole_lo"] <= dp <= r["d_paired_whole_hi"])
    assert np.mean(unpaired) >= 0.9 and np.mean(paired) >= 0.9


def test_code_pooled_d_interval_covers_when_problems_hold_every_kind():
    """Pooled over 4 kinds of 12 problems: the corrupted values mix the kinds' shifts, so the
    true pooled d is mean(delta) / sqrt(1.25 + var(delta) / 2). A problem's 4 pairs share its
    correct code, so pairs resampled one by one give too narrow an interval."""
    rng = np.random.default_rng(4)
    deltas = {"shuffle": 1.0, "rename": 0.7, "syntax": 0.2, "logic": 0.1}
    d = np.array(list(deltas.values()))
    truth = d.mean() / math.sqrt(1.25 + d.var() / 2)
    hits, naive = [], []
    for _ in range(REPS // 3):
        table = _code_table(rng, 12, deltas)
        h = code_headline(table)
        hits.append(h["d_ci_lo"] <= truth <= h["d_ci_hi"])
        assert len(h["by_kind"]) == 4
        pairs = code_headline(table.assign(problem_id=range(len(table))))
        naive.append(pairs["d_ci_lo"] <= truth <= pairs["d_ci_hi"])
    assert np.mean(hits) >= 0.9
    assert np.mean(naive) < 0.85
