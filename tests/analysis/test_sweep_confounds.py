"""Value beyond position: layer_sweep's position-matched, placebo, DiD and null controls on planted
signals, and brute-force oracles for the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _planted import BASE, PER_BAND, plant_vector, planted_data

from value_lens.analysis.confounds import matched_auroc, value_beyond_position
from value_lens.analysis.metrics import auroc
from value_lens.analysis.sweep import ClusterCI, layer_sweep
from value_lens.core.model import load_model
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.testing import tiny_qwen3_hf

CI = ClusterCI(n_boot=200)


@pytest.fixture(scope="module")
def positional():
    """A bag-of-tokens model (attention outputs zeroed, so a token's residual depends on its id
    only and real and placebo turns follow parallel trends) whose band embeddings carry a
    linear ramp in distance to the turn's end: a purely positional signal."""
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
    return data, layer_sweep(model, data, n_splits=3, n_train=6, ci=CI, progress=False)


@pytest.fixture(scope="module")
def valued():
    """A planted value vector (norm 0.3) on the AFTER tokens of real turns only."""
    hf, tok = tiny_qwen3_hf(n_layers=3, d_model=64, tied=False, seed=3)
    v = torch.randn(64, generator=torch.Generator().manual_seed(5))
    plant_vector(hf, v / v.norm() * 0.3)
    model = load_model(hf, tokenizer=tok)
    data = planted_data(value=True, per_group=8)
    df = layer_sweep(model, data, n_splits=3, n_train=4, n_random=32, ci=CI, progress=False)
    return hf, model, data, df


def test_a_positional_signal_is_caught_by_every_control(positional):
    df = positional[1].table
    assert (df["token_auroc_mean"] > 0.85).all()  # the plain held-out score is fooled
    assert (abs(df["matched_auroc"] - 0.5) < 0.1).all()
    assert ((df["matched_auroc_ci_lo"] < 0.5) & (df["matched_auroc_ci_hi"] > 0.5)).all()
    assert (abs(df["placebo_auroc"] - df["token_auroc_mean"]) < 0.1).all()
    assert (abs(df["did_auroc_mean"] - df["did_placebo_auroc"]) < 0.1).all()
    assert (abs(df["did_matched_auroc"] - 0.5) < 0.1).all()
    assert (abs(df["shuffled_auroc_mean"] - 0.5) < 0.1).all()
    sentence = value_beyond_position(df)
    assert "shows no value information beyond position" in sentence
    assert f"{df['matched_auroc'].loc[df['token_auroc_mean'].idxmax()]:.2f}" in sentence


def test_a_planted_value_signal_survives_every_control(valued):
    df = valued[-1].table
    assert (df["matched_auroc"] > 0.95).all() and (df["matched_auroc_ci_lo"] > 0.9).all()
    assert (df["did_auroc_mean"] > 0.95).all() and (df["did_matched_auroc"] > 0.95).all()
    assert (abs(df["placebo_auroc"] - 0.5) < 0.1).all()
    for col in ("token_auroc", "did_auroc", "matched_auroc", "placebo_auroc"):
        lo, hi = df[f"{col}_ci_lo"], df[f"{col}_ci_hi"]
        mid = df[col if col.startswith(("matched", "placebo")) else f"{col}_mean"]
        assert ((lo <= mid + 1e-9) & (mid <= hi + 1e-9)).all()
    assert (df["placebo_auroc_ci_hi"] - df["placebo_auroc_ci_lo"] > 0.02).all()
    sentence = value_beyond_position(df)
    assert sentence.startswith("At layer ") and "carries value information beyond" in sentence


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
    # in these turns relative position separates better than within-turn position
    assert df["relative_position_auroc"].iloc[0] != df["turn_position_auroc"].iloc[0]


def _brute_matched(pos, neg, sp, sn):
    wins = pairs = 0.0
    for x, a in zip(pos, sp, strict=True):
        for y, b in zip(neg, sn, strict=True):
            if a == b:
                pairs += 1
                wins += 1.0 if x > y else 0.5 if x == y else 0.0
    return wins / pairs if pairs else float("nan")


@pytest.mark.parametrize("seed", range(5))
def test_matched_auroc_equals_brute_force_pairs_within_strata(seed):
    rng = np.random.default_rng(seed)
    pos, neg = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 11).astype(float)
    sp, sn = rng.integers(0, 4, 9), rng.integers(0, 4, 11)
    assert matched_auroc(pos, neg, sp, sn) == pytest.approx(_brute_matched(pos, neg, sp, sn))
    # a score that is a function of the stratum only is exactly at chance once matched
    assert matched_auroc(sp * 3.0, sn * 3.0, sp, sn) == pytest.approx(0.5)
    assert matched_auroc(sp * 3.0, sn * 3.0, sp * 0, sn * 0) != pytest.approx(0.5)


def test_method_did_scores_the_did_axis_and_needs_placebo_turns(valued):
    _, model, data, sw = valued
    df = sw.table
    did = layer_sweep(
        model, data, n_splits=3, n_train=4, n_random=4, method="did", ci=CI, progress=False
    ).table
    same = {
        "token_auroc_mean": "did_auroc_mean",
        "token_auroc_ci_lo": "did_auroc_ci_lo",
        "matched_auroc": "did_matched_auroc",
        "placebo_auroc_ci_hi": "did_placebo_auroc_ci_hi",
    }
    for col, did_col in same.items():
        np.testing.assert_allclose(did[col], df[did_col], atol=1e-9)
        np.testing.assert_allclose(did[col], did[did_col], atol=1e-9)
    plain = data.subset(range(len(data)))
    plain.labels = [torch.where(x >= PLACEBO_BEFORE, -1, x) for x in plain.labels]
    with pytest.raises(InputError, match=r"icrl.label\(\.\.\., placebo=True\)"):
        layer_sweep(model, plain, n_splits=2, n_train=4, method="did", progress=False)
    no_placebo = layer_sweep(model, plain, n_splits=2, n_train=4, n_random=2, progress=False).table
    cols = ["did_auroc_mean", "did_matched_auroc", "placebo_auroc", "did_placebo_auroc_ci_lo"]
    assert no_placebo[cols].isna().all().all()
    assert no_placebo["matched_auroc"].notna().all()
    assert "no placebo turns were labelled" in value_beyond_position(no_placebo)
    assert PLACEBO_AFTER not in plain.label_counts()
