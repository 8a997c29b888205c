"""Value beyond position: the sweep's difference in discontinuities, matched placebos, two-sided
matching and its verdict, on planted residuals whose position signal, cut geometry and placebo
cuts vary the ways the demo's do, and on a bag-of-tokens model; brute-force oracles for the
AUROC parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _planted import BASE, PER_BAND, plant_vector, planted_data
from _positions import planted_positions, sweep_planted

from value_lens.analysis.clusters import ClusterAUROC
from value_lens.analysis.confounds import matched_auroc, value_beyond_position
from value_lens.analysis.metrics import auroc
from value_lens.analysis.sweep import ClusterCI, SweepConfig, layer_sweep
from value_lens.core.model import load_model
from value_lens.data.placebo import pseudo_cut, real_cut
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.testing import tiny_qwen3_hf

CFG = SweepConfig(n_splits=3, n_train=8, n_random=8, n_shuffle=0)


#: the demo's geometry: 12 criteria whose real cuts vary by criterion, placebo turns earlier in
#: the conversation and first cut at 30-60% of their length, whatever their real turn
DEMO = dict(n_groups=12, per_group=3, n_placebo=2, placebo_cut=(0.3, 0.6))


# --- two-sided matching -----------------------------------------------------------------------


def test_matched_auroc_of_a_turn_start_ramp_is_at_chance():
    """Pure position-from-start scores with varying turn lengths and cuts: matching on the
    distance to the end alone compared pairs of different turns at different starts (0.38 on
    the demo); matching on both distances compares equal places in equal-length turns."""
    rng = np.random.default_rng(0)
    one_sided, two_sided = [], []
    for _ in range(20):
        data, raw = planted_positions(rng, **DEMO)
        real = np.isin(raw.label, (BEFORE, AFTER))
        a = (raw.position - raw.start)[real]
        b = raw.to_end[real]
        aft = raw.label[real] == AFTER
        score = a.astype(float)  # the turn-start ramp, no model
        m, pairs = matched_auroc(
            score[aft],
            score[~aft],
            pos_since=a[aft],
            pos_to_end=b[aft],
            neg_since=a[~aft],
            neg_to_end=b[~aft],
        )
        if pairs:
            two_sided.append(m)
        zero = np.zeros(aft.sum(), dtype=np.int64)
        old = ClusterAUROC.of(
            score[aft],
            score[~aft],
            pos_cluster=zero,
            neg_cluster=np.zeros((~aft).sum(), dtype=np.int64),
            pos_stratum=b[aft],
            neg_stratum=b[~aft],
        )
        one_sided.append(old.auroc())
    assert two_sided and all(abs(m - 0.5) < 1e-12 for m in two_sided)
    assert abs(np.mean(one_sided) - 0.5) > 0.1  # the old matching was not a null


def _brute_matched(pos, neg, sp, sn):
    wins = pairs = 0.0
    for x, a in zip(pos, sp, strict=True):
        for y, b in zip(neg, sn, strict=True):
            if a == b:
                pairs += 1
                wins += 1.0 if x > y else 0.5 if x == y else 0.0
    return (wins / pairs if pairs else float("nan")), int(pairs)


@pytest.mark.parametrize("seed", range(4))
def test_matched_auroc_equals_brute_force_pairs_at_equal_place_and_length(seed):
    rng = np.random.default_rng(seed)
    pos, neg = rng.integers(0, 5, 12).astype(float), rng.integers(0, 5, 15).astype(float)
    ap, bp, an, bn = (rng.integers(0, 3, k) for k in (12, 12, 15, 15))
    got = matched_auroc(pos, neg, pos_since=ap, pos_to_end=bp, neg_since=an, neg_to_end=bn)
    want = _brute_matched(pos, neg, list(zip(ap, bp, strict=True)), list(zip(an, bn, strict=True)))
    assert got[0] == pytest.approx(want[0], nan_ok=True) and got[1] == want[1]


# --- the difference in discontinuities on planted residuals ---------------------------------


@pytest.mark.parametrize("signal", ["since_start", "relative", "end_proximity", "depth_ramp"])
def test_planted_demo_geometry_without_value_is_not_called_value(signal):
    """No value signal, the demo's placebo geometry: the placebo turns are re-cut to match, the
    real and placebo jumps cancel, rd_value's interval covers 0 and the verdict is not value."""
    rng = np.random.default_rng(10)
    calls = []
    for _ in range(4):
        data, raw = planted_positions(rng, signal=signal, **DEMO)
        sw = sweep_planted(data, raw, CFG)
        row = sw.table.iloc[0]
        assert row["token_auroc_mean"] > 0.65  # the plain held-out score is fooled
        assert row["rd_value_ci_lo"] <= 0 <= row["rd_value_ci_hi"], row["rd_value"]
        calls.append(value_beyond_position(sw).verdict)
    assert "value" not in calls


@pytest.mark.parametrize("signal", ["since_start", "relative", "end_proximity"])
def test_a_planted_value_jump_on_top_of_position_is_called_value(signal):
    rng = np.random.default_rng(11)
    for _ in range(2):
        data, raw = planted_positions(rng, signal=signal, value=3.0, **DEMO)
        sw = sweep_planted(data, raw, CFG)
        row = sw.table.iloc[0]
        assert row["rd_value_ci_lo"] > 0 and row["rd_jump"] > row["rd_placebo_jump"]
        v = value_beyond_position(sw)
        assert v.verdict == "value" and v.estimate == row["rd_value"]
        assert "carries value information beyond position" in v.sentence


def test_position_baselines_have_no_jump_once_each_turn_has_its_trend():
    """Tokens since the start and to the end are linear within a turn: their jump is exactly 0
    at every cut, so their rd_value is 0 (the design's null for a pure position score)."""
    rng = np.random.default_rng(12)
    data, raw = planted_positions(rng, **DEMO)
    row = sweep_planted(data, raw, CFG).table.iloc[0]
    for b in ("turn_position", "end_proximity", "relative_position"):
        assert abs(row[f"{b}_rd_jump"]) < 1e-6 and abs(row[f"{b}_rd_value"]) < 1e-6
    assert row["placebo_end_proximity_auroc"] > 0.9  # the placebo is comparable: same geometry


def test_between_and_within_turn_aurocs_equal_brute_force():
    rng = np.random.default_rng(13)
    data, raw = planted_positions(rng, n_groups=6, per_group=2, signal="relative", value=0.5)
    cfg = SweepConfig(train_sets=[[f"crit{g:02d}" for g in range(3)]], n_random=0, n_shuffle=0)
    sw = sweep_planted(data, raw, cfg)
    row = sw.table.iloc[0]
    # the split's direction by hand: mean over training criteria of mean(AFTER) - mean(BEFORE)
    x, lab, seq = raw.proj[0].astype(np.float64), raw.label, raw.seq
    group = np.array([data.groups[i] for i in seq])
    diffs = [
        x[(group == g) & (lab == AFTER)].mean(0) - x[(group == g) & (lab == BEFORE)].mean(0)
        for g in cfg.train_sets[0]
    ]
    v = np.mean(diffs, axis=0)
    cos = x @ v / (np.linalg.norm(x, axis=1) * np.linalg.norm(v))
    held = ~np.isin(group, cfg.train_sets[0])
    pos, neg = held & (lab == AFTER), held & (lab == BEFORE)
    same = seq[pos][:, None] == seq[neg][None, :]
    diff = cos[pos][:, None] - cos[neg][None, :]
    win = (diff > 0) + 0.5 * (diff == 0)
    assert row["token_auroc_mean"] == pytest.approx(auroc(cos[pos], cos[neg]), abs=1e-6)
    assert row["token_auroc_within"] == pytest.approx(win[same].mean(), abs=1e-6)
    assert row["token_auroc_between"] == pytest.approx(win[~same].mean(), abs=1e-6)


def test_pseudo_cuts_are_before_tokens_around_a_cut_in_the_real_ratio():
    """The design's pseudo-cut tokens, rebuilt by hand from the labels of each real turn."""
    from value_lens.analysis.sweep.design import build_design

    rng = np.random.default_rng(14)
    data, raw = planted_positions(rng, n_groups=4, per_group=2)
    design = build_design(data, raw, "group")
    got = {(int(raw.seq[i]), int(raw.position[i])): bool(a)
           for i, a in zip(design.pseudo.idx, design.pseudo.after, strict=True)}  # fmt: skip
    want = {}
    for i, meta in enumerate(data.meta):
        s, e = meta["turn_start"], meta["turn_end"]
        k0, k1 = real_cut(data.labels[i], s, e)
        p0, p1 = pseudo_cut(start=s, first=k0, last=k1, end=e)
        for t in range(s, k0):
            if t < p0 or t > p1:
                want[(i, t)] = t > p1
    assert got == want
    ends = {(int(raw.seq[i]), int(raw.position[i])): int(b)
            for i, b in zip(design.pseudo.idx, design.pseudo.to_end, strict=True)}  # fmt: skip
    assert all(
        ends[(i, t)]
        == real_cut(data.labels[i], *(data.meta[i][k] for k in ("turn_start", "turn_end")))[0] - t
        for i, t in ends
    )


# --- the verdict -------------------------------------------------------------------------------


def _table(**row):
    base = {"layer": 3, "token_auroc_mean": 0.9, "rd_placebo_jump": 0.2}
    return pd.DataFrame([{**base, **row}])


@pytest.mark.parametrize(
    "lo,hi,verdict",
    [
        (0.05, 0.4, "value"),
        (-0.08, 0.07, "position"),
        (-0.5, -0.2, "position"),
        (-0.3, 0.4, "inconclusive"),
        (-0.05, 0.15, "inconclusive"),
    ],
)
def test_the_verdict_reads_rd_value_and_its_interval(lo, hi, verdict):
    v = value_beyond_position(_table(rd_value=(lo + hi) / 2, rd_value_ci_lo=lo, rd_value_ci_hi=hi))
    assert v.verdict == verdict and (v.ci_lo, v.ci_hi) == (lo, hi)
    if verdict == "inconclusive":
        assert "cannot be told apart from position" in v.sentence
        assert f"[{lo:.2f}, {hi:.2f}]" in v.sentence
    assert "not enough matched pairs" in v.sentence  # no matched_auroc in this table


def test_the_verdict_names_its_placebo_warns_of_few_clusters_and_errors():
    v = value_beyond_position(
        _table(
            rd_value=0.0,
            rd_value_ci_lo=-0.05,
            rd_value_ci_hi=0.05,
            rd_placebo_jump=np.nan,
            few_clusters=True,
        )
    )
    assert v.placebo == "pseudo-cuts" and "Fewer than 10 held-out clusters" in v.sentence
    assert (
        value_beyond_position(
            _table(rd_value=0.0, rd_value_ci_lo=-0.05, rd_value_ci_hi=0.05), smallest_effect=0.01
        ).verdict
        == "inconclusive"
    )  # a stricter margin
    with pytest.raises(InputError, match="rd_value"):
        value_beyond_position(pd.DataFrame({"layer": [1], "token_auroc_mean": [0.5]}))
    with pytest.raises(InputError, match="layer 7"):
        value_beyond_position(_table(rd_value=0.0), layer=7)


# --- on a model: a bag-of-tokens model whose residuals carry position or value ----------------


@pytest.fixture(scope="module")
def positional():
    """A bag-of-tokens model (attention outputs zeroed, so a token's residual depends on its id
    only) whose band embeddings carry a linear ramp in distance to the turn's end: a purely
    positional signal."""
    hf, tok = tiny_qwen3_hf(n_layers=3, d_model=64, tied=False, seed=3)
    u = torch.randn(64, generator=torch.Generator().manual_seed(7))
    u = u / u.norm()
    emb = hf.get_input_embeddings().weight
    with torch.no_grad():
        for layer in hf.model.layers:
            layer.self_attn.o_proj.weight.zero_()
        for b in range(8):
            emb[BASE + b * PER_BAND : BASE + (b + 1) * PER_BAND] += (7 - b) * 0.03 * u
    data = planted_data(value=False, n_groups=8, per_group=12)
    model = load_model(hf, tokenizer=tok)
    return data, layer_sweep(model, data, n_splits=3, n_train=6, progress=False)


@pytest.fixture(scope="module")
def valued():
    """A planted value vector (norm 0.3) on the AFTER tokens of real turns only."""
    hf, tok = tiny_qwen3_hf(n_layers=3, d_model=64, tied=False, seed=3)
    v = torch.randn(64, generator=torch.Generator().manual_seed(5))
    plant_vector(hf, v / v.norm() * 0.3)
    model = load_model(hf, tokenizer=tok)
    data = planted_data(value=True, per_group=8)
    sw = layer_sweep(model, data, n_splits=3, n_train=4, n_random=32, progress=False)
    return hf, model, data, sw


def test_on_a_model_a_positional_signal_is_not_value(positional):
    data, sw = positional
    df = sw.table
    assert (df["token_auroc_mean"] > 0.85).all()  # the plain held-out score is fooled
    assert ((df["rd_value_ci_lo"] <= 0) & (df["rd_value_ci_hi"] >= 0)).all()
    assert value_beyond_position(sw).verdict != "value"
    assert sw.placebo["kept"] > 0  # placebo turns were re-cut to match their real turns


def test_on_a_model_a_planted_value_signal_is_value(valued):
    sw = valued[-1]
    df = sw.table
    assert (df["rd_value_ci_lo"] > 0).all() and (df["did_auroc_mean"] > 0.9).all()
    assert value_beyond_position(sw).verdict == "value"
    for col in ("token_auroc", "did_auroc", "placebo_auroc", "rd_value", "rd_jump"):
        lo, hi = df[f"{col}_ci_lo"], df[f"{col}_ci_hi"]
        mid = df[col if col.startswith(("placebo", "rd")) else f"{col}_mean"]
        assert ((lo <= mid + 1e-9) & (mid <= hi + 1e-9)).all()


@torch.no_grad()
def test_random_directions_are_sign_aligned_on_training_criteria(valued):
    """On data with a strong class-correlated drift the old baseline (random directions, both
    signs, all tokens) sits at chance while aligned directions rank AFTER above BEFORE."""
    hf, _, data, sw = valued
    df = sw.table
    gen = torch.Generator().manual_seed(sw.config.seed)
    rand = torch.randn(3, 32, 64, generator=gen, dtype=torch.float64)[0]
    rand = rand / rand.norm(dim=-1, keepdim=True)
    hs = [
        hf(ids[None], output_hidden_states=True).hidden_states[1][0].double()
        for ids in data.input_ids
    ]
    real = [(lab == BEFORE) | (lab == AFTER) for lab in data.labels]
    h = torch.cat([x[k] for x, k in zip(hs, real, strict=True)])
    after = torch.cat([lab[k] == AFTER for lab, k in zip(data.labels, real, strict=True)])
    cos = (h @ rand.T) / h.norm(dim=-1, keepdim=True)
    old = np.mean([auroc(c[after], c[~after]) for c in cos.T])
    row = df.set_index("layer").loc[0]
    assert abs(old - 0.5) < 0.05
    assert row["random_auroc_mean"] > 0.6 and row["random_auroc_p95"] > row["random_auroc_mean"]


def test_turn_and_relative_position_baselines_equal_brute_force(positional):
    data, sw = positional
    df = sw.table
    by = {k: [] for k in ("turn_position", "relative_position", "end_proximity")}
    for rec in (r for r in sw.splits if r["layer"] == 0):
        pos = {k: [] for k in by}
        neg = {k: [] for k in by}
        for i, g in enumerate(data.groups):
            if g in rec["train_groups"]:
                continue
            m = data.meta[i]
            s, e = m["turn_start"], m["turn_end"]
            for t, lab in enumerate(data.labels[i].tolist()):
                if lab in (BEFORE, AFTER):
                    side = pos if lab == AFTER else neg
                    side["turn_position"].append(t - s)
                    side["relative_position"].append((t - s) / (e - s))
                    side["end_proximity"].append(t - e)
        for k in by:
            by[k].append(auroc(pos[k], neg[k]))
    for k, vals in by.items():
        assert df[f"{k}_auroc"].iloc[0] == pytest.approx(np.mean(vals))
        assert df[f"{k}_auroc_ci_lo"].iloc[0] <= np.mean(vals) <= df[f"{k}_auroc_ci_hi"].iloc[0]
    assert df["relative_position_auroc"].iloc[0] != df["turn_position_auroc"].iloc[0]


def test_method_did_scores_the_did_axis_and_needs_placebo_turns(valued):
    _, model, data, sw = valued
    df = sw.table
    did = layer_sweep(model, data, n_splits=3, n_train=4, n_random=4, method="did",
                      progress=False).table  # fmt: skip
    for col, did_col in {
        "token_auroc_mean": "did_auroc_mean",
        "token_auroc_ci_lo": "did_auroc_ci_lo",
        "placebo_auroc_ci_hi": "did_placebo_auroc_ci_hi",
        "rd_value": "did_rd_value",
    }.items():
        np.testing.assert_allclose(did[col], df[did_col], atol=1e-9)
        np.testing.assert_allclose(did[col], did[did_col], atol=1e-9)
    plain = data.subset(range(len(data)))
    plain.labels = [torch.where(x >= PLACEBO_BEFORE, -1, x) for x in plain.labels]
    plain.meta = [{k: v for k, v in m.items() if k != "placebo_turns"} for m in plain.meta]
    with pytest.raises(InputError, match=r"icrl.label\(\.\.\., placebo=True\)"):
        layer_sweep(model, plain, n_splits=2, n_train=4, method="did", progress=False)
    no_placebo = layer_sweep(model, plain, n_splits=2, n_train=4, n_random=2, progress=False)
    t = no_placebo.table
    cols = ["did_auroc_mean", "placebo_auroc", "rd_placebo_jump", "did_placebo_auroc_ci_lo"]
    assert t[cols].isna().all().all() and t["rd_pseudo_jump"].notna().all()
    np.testing.assert_allclose(t["rd_value"], t["rd_value_pseudo"])  # against pseudo-cuts
    assert value_beyond_position(no_placebo).placebo == "pseudo-cuts"
    assert PLACEBO_AFTER not in plain.label_counts()


def test_mismatched_placebo_cuts_with_old_stats_are_refused(positional, tiny):
    from value_lens import collect_stats

    data, _ = positional
    stats = collect_stats(tiny, data, layers=[0], progress=False)  # cut as planted: unmatched
    with pytest.raises(InputError, match="rematch_placebo"):
        layer_sweep(
            tiny,
            data,
            n_splits=2,
            n_train=6,
            layers=[0],
            stats=stats,
            progress=False,
            ci=ClusterCI(),
        )
