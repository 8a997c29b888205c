"""Cross-evaluation on a tiny model with two planted directions: a value vector on AFTER tokens
and an orthogonal rating vector on high-rated states. Each axis must find its own labels (the
diagonal) and not the other's; intervals are the cluster jackknife recomputed by hand."""

import numpy as np
import pytest
import torch

from tests._oracle import hidden_states
from value_lens import load_model
from value_lens.analysis.crosseval import (
    AxisSpec,
    CrossEvalConfig,
    LabelSet,
    cross_evaluate,
    position_halves,
    relabel,
    split_groups,
)
from value_lens.analysis.metrics import auroc, bootstrap_ci
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, PLACEBO_AFTER, LabelledTokens
from value_lens.errors import InputError
from value_lens.testing import tiny_qwen3_hf

NEUTRAL = range(300, 400)
VALUE_BASE, VALUE_TWIN = 20, 100  # AFTER tokens use id + 100 (embedding + v_value)
RATE_BASE, RATE_TWIN = 200, 30  # high-rated states end in id + 30 (embedding + v_rating)
CRITERIA = [f"c{i}" for i in range(8)]
SHIFT = 0.15  # planted norm; a token embedding varies by about 0.02 along a direction


def value_data(rng):
    ids, labs, groups, metas = [], [], [], []
    for g in CRITERIA:
        for k in range(4):
            nb, na = rng.integers(5, 12, size=2)
            body = rng.integers(VALUE_BASE, VALUE_BASE + 60, size=nb + na)
            body[nb:] += VALUE_TWIN
            head = rng.choice(NEUTRAL, size=4)
            ids.append(np.concatenate([head, body]).tolist())
            labs.append([IGNORE] * 4 + [BEFORE] * nb + [AFTER] * na)
            groups.append(g)
            metas.append({"conversation_id": f"{g}-{k}", "turn_start": 4, "turn_end": 4 + nb + na})
    return LabelledTokens.from_lists(ids, labs, groups, meta=metas)


def rating_data(rng):
    ids, labs, groups, metas = [], [], [], []
    for g in CRITERIA:
        for k in range(16):
            high = k % 2
            state = rng.integers(RATE_BASE, RATE_BASE + 30) + RATE_TWIN * high
            ids.append([*rng.choice(NEUTRAL, size=rng.integers(6, 14)).tolist(), int(state)])
            labs.append([IGNORE] * (len(ids[-1]) - 1) + [AFTER if high else BEFORE])
            groups.append(g)
            metas.append({"conversation_id": f"{g}-{k // 2}"})
    return LabelledTokens.from_lists(ids, labs, groups, meta=metas)


@pytest.fixture(scope="module")
def planted():
    hf, tok = tiny_qwen3_hf(n_layers=2, d_model=64, tied=False, seed=7)
    gen = torch.Generator().manual_seed(3)
    v1 = torch.randn(64, generator=gen)
    v2 = torch.randn(64, generator=gen)
    v2 -= (v2 @ v1) / (v1 @ v1) * v1  # orthogonal to the value vector
    emb = hf.get_input_embeddings().weight
    with torch.no_grad():
        for t in range(VALUE_BASE, VALUE_BASE + 60):
            emb[t + VALUE_TWIN] = emb[t] + SHIFT * v1 / v1.norm()
        for t in range(RATE_BASE, RATE_BASE + 30):
            emb[t + RATE_TWIN] = emb[t] + SHIFT * v2 / v2.norm()
    rng = np.random.default_rng(0)
    return hf, load_model(hf, tokenizer=tok), value_data(rng), rating_data(rng)


@pytest.fixture(scope="module")
def result(planted):
    _, model, value, rating = planted
    sets = [LabelSet("value", value), LabelSet("rating", rating)]
    axes = [
        AxisSpec("value_axis", "value"),
        AxisSpec("rating_axis", "rating", "standardized"),
        AxisSpec("rating_md", "rating"),
        AxisSpec("value_lda", "value", "lda"),
    ]
    cfg = CrossEvalConfig(layer=0, n_random=10)
    return cross_evaluate(model, sets, axes, cfg)


def test_planted_directions_come_out_on_the_diagonal(result):
    m = result.matrix()
    own_sets = {"value_axis": "value", "value_lda": "value", "rating_md": "rating"}
    for axis, own in {**own_sets, "rating_axis": "rating"}.items():
        assert m.loc[axis, own] > 0.85, (axis, m.loc[axis, own])
    # the mean differences of orthogonal planted vectors do not read each other's labels (the
    # standardised axis reweights dimensions, so it is not orthogonal to the value vector)
    assert abs(m.loc["value_axis", "rating"] - 0.5) < 0.15
    assert abs(m.loc["rating_md", "value"] - 0.5) < 0.15
    t = result.table.set_index(["axis", "label_set"])
    assert (
        t.loc[("value_axis", "value"), "diagonal"]
        and not t.loc[("value_axis", "rating"), "diagonal"]
    )
    # the intervals are intervals around their estimate
    assert (result.table.ci_lo <= result.table.auroc).all()
    assert (result.table.auroc <= result.table.ci_hi).all()
    # the random row (sign-aligned on the training mean difference, so above 0.5 on average)
    # is a null band below every diagonal score
    for axis, ls in (("value_axis", "value"), ("rating_axis", "rating")):
        assert 0.5 < t.loc[("random", ls), "auroc"] < t.loc[("random", ls), "ci_hi"]
        assert t.loc[("random", ls), "ci_hi"] < t.loc[(axis, ls), "auroc"]


def test_splits_are_shared_by_name_and_held_out(result):
    s = result.splits
    assert s["value"] == s["rating"]  # the same criteria on the same side in both sets
    assert set(s["value"]["train"]).isdisjoint(s["value"]["held_out"])
    assert sorted(s["value"]["train"] + s["value"]["held_out"]) == CRITERIA
    # the fitted axes saw the training criteria only
    assert sorted(result.axes["value_axis"].fit_info["groups"]) == s["value"]["train"]


def test_scores_and_intervals_equal_a_hand_computation(planted, result):
    """Held-out cosines from HF hidden states and the jackknife interval by hand."""
    hf, _, value, _ = planted
    held = value.select_groups(result.splits["value"]["held_out"])
    axis = result.axes["value_axis"]
    u = axis.direction(0).double()
    pos, neg, cpos, cneg = [], [], [], []
    for ids, lab, meta in zip(held.input_ids, held.labels, held.meta, strict=True):
        h = hidden_states(hf, ids)[1][0].double()
        c = (h @ u / h.norm(dim=-1)).numpy()
        pos += c[(lab == AFTER).numpy()].tolist()
        neg += c[(lab == BEFORE).numpy()].tolist()
        cpos += [meta["conversation_id"]] * int((lab == AFTER).sum())
        cneg += [meta["conversation_id"]] * int((lab == BEFORE).sum())
    row = result.table.set_index(["axis", "label_set"]).loc[("value_axis", "value")]
    assert row.auroc == pytest.approx(auroc(pos, neg), abs=1e-6)
    lo, hi = bootstrap_ci(auroc, pos, neg, groups=[cpos, cneg])
    assert (row.ci_lo, row.ci_hi) == pytest.approx((lo, hi), abs=1e-5)
    assert row.n_clusters == len(set(cpos) | set(cneg))
    assert (row.n_pos, row.n_neg) == (len(pos), len(neg))


def test_relabelling_and_position_controls():
    d = LabelledTokens.from_lists(
        [[1, 2, 3, 4, 5, 6]], [[-1, 0, 0, 2, 1, 1]], ["g"], meta=[{"turn_start": 1, "turn_end": 6}]
    )
    assert position_halves(d).labels[0].tolist() == [-1, 0, 0, -1, 1, 1]
    p = LabelledTokens.from_lists([[1, 2, 3]], [[3, PLACEBO_AFTER, 1]], ["g"])
    assert relabel(p, PLACEBO_AFTER, 3).labels[0].tolist() == [BEFORE, AFTER, IGNORE]
    tr, te = split_groups(["a", "b"], 0.99, 0)
    assert len(tr) == 1 and len(te) == 1  # always something held out
    with pytest.raises(InputError, match="at least 2 groups"):
        split_groups(["a"], 0.5, 0)


def test_bad_specs_are_named(planted):
    _, model, value, _ = planted
    with pytest.raises(InputError, match="unknown label sets"):
        cross_evaluate(model, [LabelSet("v", value)], [AxisSpec("a", "nope")], CrossEvalConfig(0))
    with pytest.raises(InputError, match="train_fraction"):
        CrossEvalConfig(0, train_fraction=1.0)


def test_too_few_clusters_give_no_interval_rather_than_an_error(planted):
    _, model, value, _ = planted
    two = value.select_groups(["c0", "c1", "c2"]).subset([0, 4, 8])  # one turn per criterion
    res = cross_evaluate(
        model, [LabelSet("v", two)], [AxisSpec("a", "v")], CrossEvalConfig(0, n_random=2)
    )
    row = res.table.set_index("axis").loc["a"]
    assert row.n_clusters < 3 and np.isnan(row.ci_lo) and np.isnan(row.ci_hi)
    assert 0 <= row.auroc <= 1
