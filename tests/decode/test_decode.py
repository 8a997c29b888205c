"""value_lens.decode on the tiny model: every scorer against an independent oracle (an HF full
forward over prompt + output, ``vl.trace``), best-of-k on planted scores against brute force,
and early stopping against a live ``generate(stop_when=...)`` run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import value_lens as vl
from value_lens.analysis.metrics import auroc
from value_lens.analysis.monitor import monitor
from value_lens.analysis.stop import below
from value_lens.core.generate import GenerationConfig, generate
from value_lens.decode import Sample, best_of_n, early_stop, rescore
from value_lens.decode import scorers as S
from value_lens.decode.run import stop_step
from value_lens.errors import InputError

PROMPTS = ["The fox", "hello there", "Once upon a time", "a b c"]
LAYER = 1


def parity(_problem, text):  # the synthetic checker
    return len(text) % 2 == 0


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(3)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


@pytest.fixture(scope="module")
def run(tiny, axis):
    scorers = {
        "value": S.value(axis, LAYER),
        "value_last": S.value(axis, LAYER, window="last:3", agg="mean"),
        "value_low": S.value(axis, LAYER, agg="lowest:3"),
        "logprob": S.mean_logprob(),
        "self_cert": S.self_certainty(),
        "deepconf": S.group_confidence(window=3),
        "probe": S.probe(LAYER, folds=2),
        "length": S.length(align=False),
        "random_dirs": S.random_directions(3, LAYER, folds=2),
        "planted": lambda s: float((s.problem * 5 + s.index * 3) % 3),  # ties
    }
    return best_of_n(
        tiny, PROMPTS, 4, scorers, check=parity, answer=lambda t: t[:1], max_new_tokens=7
    )


def _hf_forward(tiny_hf, s):
    """Logits and block ``LAYER``'s output (a torch hook on the HF decoder layer: the last
    entry of HF ``hidden_states`` is post-final-norm, not a block output)."""
    hf, _ = tiny_hf
    ids = torch.cat([s.prompt_ids, s.output_ids])[None]
    got = {}

    def keep(_mod, _args, out):
        got["h"] = out[0] if isinstance(out, tuple) else out

    handle = hf.model.layers[LAYER].register_forward_hook(keep)
    try:
        with torch.no_grad():
            out = hf(ids)
    finally:
        handle.remove()
    return out.logits, got["h"], int(s.prompt_ids.numel()), s.n_tokens


def test_logit_scorers_match_an_hf_forward(run, tiny_hf):
    """Mean log-prob, self-certainty and DeepConf confidence from a fresh full forward."""
    for i, s in enumerate(run.samples):
        logits, _, p, n = _hf_forward(tiny_hf, s)
        logp = torch.log_softmax(logits[0, p - 1 : p + n - 1].double(), -1)
        lp = logp.gather(1, s.output_ids[:, None]).squeeze(1)
        sc = -np.log(logp.shape[1]) - logp.mean(1)
        conf = -logp.topk(20, dim=1).values.mean(1)
        assert run.scores["logprob"][i, 0] == pytest.approx(float(lp.mean()), abs=1e-4)
        assert run.scores["self_cert"][i, 0] == pytest.approx(float(sc.mean()), abs=1e-4)
        groups = conf.unfold(0, 3, 1).mean(1) if n >= 3 else conf.mean().reshape(1)
        assert run.scores["deepconf"][i, 0] == pytest.approx(float(groups.min()), abs=1e-4)


def test_value_scorers_match_a_trace(run, tiny, axis):
    for i, s in enumerate(run.samples):
        ids = torch.cat([s.prompt_ids, s.output_ids])
        tr = vl.trace(tiny, ids, axis, [LAYER])
        cos = tr.cosine[0, s.prompt_ids.numel() :].double()
        assert run.scores["value"][i, 0] == pytest.approx(float(cos.mean()), abs=1e-5)
        assert run.scores["value_last"][i, 0] == pytest.approx(float(cos[-3:].mean()), abs=1e-5)
        low = min(float(cos[j : j + 3].mean()) for j in range(len(cos) - 2))
        assert run.scores["value_low"][i, 0] == pytest.approx(low, abs=1e-5)


def test_hidden_means_match_an_hf_forward(run, tiny_hf):
    """The probe's and random directions' features: the mean (unit) residual of new tokens."""
    rand = S.random_directions(3, LAYER, folds=2)
    for i, s in enumerate(run.samples):
        _, resid, p, n = _hf_forward(tiny_hf, s)
        h = resid[0, p : p + n].double()
        assert torch.allclose(s.hidden_mean[LAYER].double(), h.mean(0), atol=1e-4)
        unit = (h / h.norm(dim=1, keepdim=True)).mean(0)
        assert torch.allclose(s.unit_mean[LAYER].double(), unit, atol=1e-5)
        cos = (h / h.norm(dim=1, keepdim=True)) @ rand.directions(h.shape[1]).T
        # sign-aligned: the magnitude is the mean cosine, the sign is the fold's choice
        got = run.scores["random_dirs"][i]
        assert np.allclose(np.abs(got), np.abs(cos.mean(0).numpy()), atol=1e-5)
        assert run.scores["length"][i, 0] == n


def test_best_of_k_on_planted_scores_matches_brute_force(run):
    y = run.correct.reshape(-1, 4)
    sc = run.scores["planted"][:, 0].reshape(-1, 4)
    got = run.curve_matrix("planted")
    oracle = run.curve_matrix("oracle")
    for p in range(len(PROMPTS)):
        for k in range(1, 5):
            accs, anys = [], []
            for sub in itertools.combinations(range(4), k):
                top = max(sc[p, list(sub)])
                tied = [j for j in sub if sc[p, j] == top]
                accs.append(np.mean(y[p, tied]))
                anys.append(float(y[p, list(sub)].max()))
            assert got[p, k - 1] == pytest.approx(np.mean(accs))
            assert oracle[p, k - 1] == pytest.approx(np.mean(anys))
    curves = run.curves(n_boot=50)
    row = curves[(curves.method == "planted") & (curves.k == 2)].iloc[0]
    assert row.accuracy == pytest.approx(got[:, 1].mean())
    assert row.lo <= row.accuracy <= row.hi
    rand = curves[curves.method == "random"].accuracy.to_numpy()
    assert np.allclose(rand, run.correct.mean())


def test_auroc_table_pooled_and_within(run):
    if run.correct.min() == run.correct.max():
        pytest.skip("the synthetic checker gave one class")
    tab = run.auroc(n_boot=50).set_index("scorer")
    y = run.correct > 0.5
    c = run.scores["planted"][:, 0]
    assert tab.loc["planted", "auroc"] == pytest.approx(auroc(c[y], c[~y]))
    within = [
        auroc(c[m & y], c[m & ~y])
        for p in range(len(PROMPTS))
        if (m := run.problem_ids == p).any() and y[m].any() and not y[m].all()
    ]
    assert tab.loc["planted", "within"] == pytest.approx(np.mean(within))
    assert tab.loc["planted", "n_mixed"] == len(within)
    assert tab.loc["random_dirs", "columns"] == 3


def test_rescore_reuses_the_rollouts(run):
    again = rescore(run.samples, 4, {"lp": S.mean_logprob()})
    assert np.array_equal(again.scores["lp"], run.scores["logprob"])


def _prompt_rows(n):
    return [p for p in PROMPTS for _ in range(n)]


def test_early_stop_fires_where_a_live_stop_rule_does(tiny, axis):
    """The offline stop step equals a live generate(stop_when=below(mean:W)) on the same rows."""
    w, n = 3, 4
    cfg = GenerationConfig(max_new_tokens=9, temperature=0.8, batch_size=16, seed=5)
    scorer = S.value(axis, LAYER, agg=f"lowest:{w}")
    res = best_of_n(tiny, PROMPTS, n, {"v": scorer}, check=parity, config=cfg)
    means = np.concatenate([S.group_means(scorer.signal(s), w).numpy() for s in res.samples])
    u = np.unique(means)
    thr = float((u[len(u) // 3] + u[len(u) // 3 + 1]) / 2)  # between two group means
    mon = monitor(axis, [LAYER], aggregate={"g": f"mean:{w}"})
    live = generate(tiny, _prompt_rows(n), cfg, monitor=mon, stop_when=below("g", thr, after=w - 1))
    fired = 0
    for s, g in zip(res.samples, live, strict=True):
        k = stop_step(scorer, s, thr)
        assert g.stopped == (k is not None)
        assert torch.equal(g.output_ids, s.output_ids[: s.n_tokens if k is None else k])
        fired += k is not None
    assert 0 < fired < len(live)  # the planted threshold stops some rows, not all


def test_early_stop_counts_tokens_and_votes(run):
    scorer = S.group_confidence(window=3)
    es = early_stop(None, None, 4, scorer, 2, "percentile:50", rollouts=run)
    f = es.frame
    assert not f[f.warmup].stopped.any()
    kept_total, full_total = 0, 0
    for p in range(len(PROMPTS)):
        group = run.samples[p * 4 : (p + 1) * 4]
        warm = [scorer.one(s) for s in group[:2]]
        thr = float(np.percentile(warm, 50))
        keep = []
        for s in group:
            k = None
            if s.index >= 2 and s.n_tokens >= 3:
                conf = s.token_stats["confidence"]
                below_ = [j for j in range(s.n_tokens - 2) if float(conf[j : j + 3].mean()) < thr]
                k = below_[0] + 3 if below_ else None
            kept_total += s.n_tokens if k is None else k
            full_total += s.n_tokens
            keep += [s] if k is None else []
        row = es.per_problem.iloc[p]
        assert row.threshold == pytest.approx(thr)
        answers = [s.answer for s in keep]
        top = max(answers.count(a) for a in set(answers))
        winners = {a for a in answers if answers.count(a) == top}
        acc = np.mean([np.mean([s.correct for s in keep if s.answer == a]) for a in winners])
        assert row.accuracy == pytest.approx(acc)
    assert es.tokens_saved == pytest.approx(1 - kept_total / full_total)
    summ = es.summary(n_boot=50)
    assert summ["tokens_saved"] == pytest.approx(es.tokens_saved)
    # a threshold below every score never stops; one above every score stops all it can
    none = early_stop(None, None, 4, scorer, 2, -1e9, rollouts=run)
    assert none.tokens_saved == 0 and not none.frame.stopped.any()
    allstop = early_stop(None, None, 4, scorer, 2, 1e9, rollouts=run)
    later = allstop.frame[~allstop.frame.warmup]
    assert (later.kept_tokens == np.minimum(3, later.full_tokens)).all()


def test_crossfit_splits_never_share_a_problem():
    pid = np.repeat(np.arange(7), 3)
    seen = []
    for train, test in S.crossfit_splits(pid, 3, seed=1):
        assert not set(pid[train]) & set(pid[test])
        seen += test.tolist()
    assert sorted(seen) == list(range(len(pid)))


def _synthetic(n_problems, n, feature):
    out = []
    rng = np.random.default_rng(0)
    for p in range(n_problems):
        for i in range(n):
            y, h = feature(p, i, rng)
            t = torch.as_tensor(h, dtype=torch.float64)
            out.append(
                Sample(
                    p, i, "", torch.tensor([1]), False, None, float(y),
                    hidden_mean={0: t}, unit_mean={0: t / t.norm()},
                )
            )  # fmt: skip
    return out


def test_crossfit_probe_never_sees_its_own_problem():
    """A per-problem signature that memorises the label: a probe that saw the problem would
    score it perfectly; the cross-fitted one is at chance. A shared signal is still found."""
    sig = np.random.default_rng(1).normal(size=(24, 40))
    labels = np.random.default_rng(2).integers(0, 2, 24)

    def memorise(p, _i, rng):
        return labels[p], sig[p] + 0.01 * rng.normal(size=40)

    samples = _synthetic(24, 4, memorise)
    y = np.array([s.correct for s in samples]) > 0.5
    cross = S.probe(0, folds=4).score(samples)[:, 0]
    x = torch.stack([s.hidden_mean[0] for s in samples])
    w, b, mu, sd = S.fit_logistic(x, torch.as_tensor(y, dtype=torch.float64), 1e-2)
    seen = (((x - mu) / sd) @ w + b).numpy()
    assert auroc(seen[y], seen[~y]) > 0.99  # in-sample memorisation is possible
    assert auroc(cross[y], cross[~y]) < 0.75

    def shared(_p, _i, rng):
        yy = rng.integers(0, 2)
        return yy, np.r_[2.0 * yy, rng.normal(size=39)]

    samples = _synthetic(24, 4, shared)
    y = np.array([s.correct for s in samples]) > 0.5
    cross = S.probe(0, folds=4).score(samples)[:, 0]
    assert auroc(cross[y], cross[~y]) > 0.9


def test_sign_alignment_flips_a_negative_signal():
    rand = S.random_directions(2, 0, folds=3, seed=4)
    u0 = rand.directions(16)[0].numpy()

    def planted(_p, _i, rng):  # correct samples point *against* random direction 0
        yy = rng.integers(0, 2)
        return yy, -3.0 * yy * u0 + 0.3 * rng.normal(size=16)

    samples = _synthetic(12, 4, planted)
    y = np.array([s.correct for s in samples]) > 0.5
    sc = rand.score(samples)
    assert auroc(sc[y, 0], sc[~y, 0]) > 0.9
    ln = S.length(folds=3).score(samples)
    assert ln.shape == (48, 1)


def test_errors_name_the_fix(tiny, axis):
    with pytest.raises(InputError, match="temperature"):
        best_of_n(tiny, PROMPTS, 2, {"l": S.length()}, check=parity, temperature=0.0)
    with pytest.raises(InputError, match="lowest:W"):
        early_stop(tiny, PROMPTS, 4, S.mean_logprob(), 2, check=parity)
    with pytest.raises(InputError, match="warmup"):
        early_stop(tiny, PROMPTS, 4, S.group_confidence(4), 4, check=parity)
    with pytest.raises(InputError, match="window"):
        S.value(axis, LAYER, window="tail:3")
    with pytest.raises(InputError, match="scorers is empty"):
        best_of_n(tiny, PROMPTS, 2, {}, check=parity)


def test_early_stop_generates_the_same_rollouts_itself(tiny):
    """early_stop without rollouts= samples exactly what best_of_n samples with that scorer."""
    sc = S.group_confidence(window=3)
    own = early_stop(tiny, PROMPTS, 4, sc, 2, "percentile:50", check=parity, max_new_tokens=7)
    res = best_of_n(tiny, PROMPTS, 4, {"g": sc}, check=parity, max_new_tokens=7)
    reused = early_stop(None, None, 4, sc, 2, "percentile:50", rollouts=res)
    assert own.frame.drop(columns="answer").equals(reused.frame.drop(columns="answer"))
    assert own.tokens_saved == reused.tokens_saved


def _conf_sample(values, index=0):
    t = torch.tensor(values, dtype=torch.float64)
    ids = torch.arange(len(values))
    return Sample(0, index, "", ids, False, None, 1.0, token_stats={"confidence": t})


def test_token_windows_and_aggregates_by_hand():
    s = _conf_sample([3.0, 1.0, 2.0, 5.0, 4.0])

    def one(**kw):
        return S.TokenScorer("confidence", **kw).score([s])[0, 0]

    assert one(agg="last") == 4.0
    assert one(agg="min") == 1.0 and one(agg="max") == 5.0
    assert one(window="first:2") == 2.0
    assert one(window="last:2") == 4.5
    assert one(window="offsets:0,3,9") == 4.0  # offsets past the end are dropped
    assert one(agg="lowest:2") == 1.5  # groups 2, 1.5, 3.5, 4.5
    assert one(window="last:3", agg="last") == 4.0
    assert S.group_confidence(window=2, agg="tail").score([s])[0, 0] == 4.5
    assert S.group_confidence(window=2, agg="mean").score([s])[0, 0] == 3.0
    assert S.group_confidence(window=9).score([s])[0, 0] == 3.0  # fewer tokens than W: the mean


def test_a_sample_with_nothing_to_score_ranks_below_every_other():
    scored = [_conf_sample([0.5, 0.7]), _conf_sample([-0.2], 1), _conf_sample([0.1, 0.1], 2)]
    got = S.TokenScorer("confidence", window="offsets:1").score(scored)[:, 0]
    assert got[0] == 0.7 and got[2] == 0.1
    assert got[1] < min(got[0], got[2])  # sample 1 has no token at offset 1


def test_fit_logistic_balances_the_classes():
    """At the optimum the intercept's gradient of the class-balanced loss is zero:
    mean predicted probability on the negatives == mean (1 - p) on the positives, whatever
    the class sizes (an unbalanced or swapped weighting breaks it)."""
    rng = np.random.default_rng(0)
    y = torch.tensor([1.0] * 8 + [0.0] * 40, dtype=torch.float64)
    x = torch.as_tensor(rng.normal(size=(48, 2)), dtype=torch.float64) + 0.7 * y[:, None]
    w, b, mu, sd = S.fit_logistic(x, y, 1e-2)
    p = torch.sigmoid(((x - mu) / sd) @ w + b)
    neg, pos = float(p[y == 0].mean()), float((1 - p[y == 1]).mean())
    assert neg == pytest.approx(pos, abs=1e-3)  # LBFGS tolerance
    assert 0.05 < neg < 0.95  # not separable: a real constraint, not 0 == 0


def test_early_stop_threshold_percentile_and_summary_intervals_by_hand(run):
    from value_lens.analysis.clusters import cluster_counts

    scorer = S.group_confidence(window=3)
    es = early_stop(None, None, 4, scorer, 3, "percentile:20", rollouts=run)
    for p in range(len(PROMPTS)):
        warm = [scorer.one(s) for s in run.samples[p * 4 : p * 4 + 3]]
        assert es.per_problem.threshold[p] == pytest.approx(np.percentile(warm, 20))
    mid = float(np.median([scorer.one(s) for s in run.samples]))
    es = early_stop(None, None, 4, scorer, 1, mid, rollouts=run)  # stops some rows
    pp = es.per_problem
    assert 0 < es.tokens_saved < 1
    acc, base = pp.accuracy.to_numpy(), pp.baseline.to_numpy()
    kept, full = pp.kept_tokens.to_numpy(float), pp.full_tokens.to_numpy(float)
    summ = es.summary(n_boot=200, seed=2, ci=0.8)
    draws = [w.astype(float) for w in cluster_counts(len(pp), 200, 2)]
    for key, stat in (
        ("accuracy", lambda w: w @ acc / w.sum()),
        ("baseline", lambda w: w @ base / w.sum()),
        ("accuracy_change", lambda w: w @ (acc - base) / w.sum()),
        ("tokens_saved", lambda w: 1 - (w @ kept) / (w @ full)),
    ):
        want = np.quantile([stat(w) for w in draws], [0.1, 0.9])
        assert (summ[f"{key}_lo"], summ[f"{key}_hi"]) == pytest.approx(tuple(want))
    assert summ["tokens_saved_lo"] < summ["tokens_saved_hi"]
