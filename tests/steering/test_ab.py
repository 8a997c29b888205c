"""The A/B evaluation reads p(A) and p(B) exactly as a plain HF forward's softmax at the answer
token (unsteered and steered by a hand-written torch hook), whatever the batching; p(match) picks
the matching letter; the item builders are deterministic and balanced; ab_eval's summary is the
paired change from the unsteered model."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from value_lens.core.model import model_id
from value_lens.core.prompts import format_prompts
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.ab import ABGrid, ab_eval, ab_probs, letter_ids
from value_lens.steering.ab_items import AB_BEHAVIOURS, ab_items
from value_lens.steering.modes import MODES
from value_lens.steering.steer import steer


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(17)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


@pytest.fixture(scope="module")
def items():
    return ab_items(n=3)


def _hf_letters(tiny, tiny_hf, items, fn=None, layer=1):
    """p(A), p(B) from a plain HF forward over each item alone (``fn`` edits layer's output)."""
    hf, tok = tiny_hf
    a, b = (tok.encode(x, add_special_tokens=False)[0] for x in "AB")
    texts = format_prompts(tiny, [list(it.messages) for it in items], enable_thinking=False)
    handle = None
    if fn is not None:
        handle = hf.model.layers[layer].register_forward_hook(
            lambda _m, _a, out: (fn(out[0]), *out[1:]) if isinstance(out, tuple) else fn(out)
        )
    try:
        out = []
        for t in texts:
            ids = torch.tensor([tok(t + "(", add_special_tokens=False)["input_ids"]])
            with torch.no_grad():
                p = torch.softmax(hf(ids).logits[0, -1].double(), -1)
            out.append((float(p[a]), float(p[b])))
        return np.array(out)
    finally:
        if handle is not None:
            handle.remove()


def test_letter_probabilities_equal_a_plain_hf_softmax(tiny, tiny_hf, items):
    want = _hf_letters(tiny, tiny_hf, items)
    for bs in (1, 4, 16):  # right padding never reaches a real position
        got = ab_probs(tiny, items, batch_size=bs)
        np.testing.assert_allclose(got[["p_a", "p_b"]].to_numpy(), want, atol=1e-6, rtol=0)
    match = np.array([0 if it.match == "A" else 1 for it in items])
    pm = want[np.arange(len(items)), match] / want.sum(1)
    np.testing.assert_allclose(got["p_match"], pm, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got["letter_mass"], want.sum(1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["add", "rotate"])
def test_steered_probabilities_equal_a_hand_steered_hf_forward(tiny, tiny_hf, axis, items, mode):
    u = axis.direction(1)
    if mode == "add":
        st = steer(tiny, axis, layers=1, alpha=3.0)
        fn = lambda h: h + 3.0 * u  # noqa: E731
    else:
        st = steer(tiny, axis, layers=1, mode="rotate", angle=50.0)
        fn = lambda h: MODES["rotate"](angle=50.0)(h, u)  # noqa: E731
    want = _hf_letters(tiny, tiny_hf, items, fn)
    got = ab_probs(tiny, items, steering=st, batch_size=4)
    np.testing.assert_allclose(got[["p_a", "p_b"]].to_numpy(), want, atol=1e-5, rtol=0)
    assert (got["moved"] > 0).all() and (got["mean_abs_push"] > 0).all()
    base = ab_probs(tiny, items)
    assert np.abs(got["p_match"] - base["p_match"]).max() > 1e-4


def test_item_builders_are_deterministic_balanced_and_offline():
    for name, build in AB_BEHAVIOURS.items():
        a, b = build(8, 0), build(8, 0)
        assert a == b and build(8, 1) != a
        assert [it.match for it in a] == ["A", "B"] * 4
        assert len({it.id for it in a}) == 8 and {it.behaviour for it in a} == {name}
        last = a[0].messages[-1]
        assert last["role"] == "user" and "(A)" in last["content"] and "(B)" in last["content"]
    conf = AB_BEHAVIOURS["confidence"](8, 0)
    shown = [it.messages[1]["content"] for it in conf]
    right = [eval(s.split("=")[0]) == int(s.split("=")[1].strip(" .")) for s in shown]
    assert sum(right) == 4  # half the shown answers are wrong
    with pytest.raises(InputError, match="unknown A/B behaviour"):
        ab_items(["honesty"])
    with pytest.raises(InputError, match="n must be"):
        ab_items(["verbosity"], n=0)


def test_ab_eval_summary_is_the_paired_change_from_unsteered(tiny, axis, items):
    grid = ABGrid(layers=[0, 1], strengths=[0.0, 4.0], modes=["add", "clamp"])
    res = ab_eval(tiny, axis, items, grid)
    f = res.frame
    none = f[f["mode"] == "none"]
    assert sorted(none.groupby("item_id")["match"].apply(sorted).map(tuple).unique()) == [
        ("A", "B")
    ]  # every item asked in both letter orders
    base = none.groupby("item_id")["p_match"].mean()
    share = none.groupby("item_id")["a_share"].mean()
    # a strength at which the mode is the identity reuses the unsteered rows
    zero = f.query("mode == 'add' and strength == 0.0 and layer == 1")
    np.testing.assert_array_equal(zero.groupby("item_id")["p_match"].mean(), base)
    row = res.summary.query(
        "behaviour == 'confidence' and mode == 'clamp' and layer == 1 and strength == 4.0"
    ).iloc[0]
    cell = f.query(
        "mode == 'clamp' and layer == 1 and strength == 4.0 and behaviour == 'confidence'"
    )
    pm = cell.groupby("item_id")["p_match"].mean()  # each item: the mean of its two orders
    d = (pm - base.loc[pm.index]).to_numpy()
    assert row["delta"] == pytest.approx(d.mean())
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert (row["delta_lo"], row["delta_hi"]) == pytest.approx((d.mean() - half, d.mean() + half))
    sh = (cell.groupby("item_id")["a_share"].mean() - share.loc[pm.index]).to_numpy()
    assert row["a_shift"] == pytest.approx(sh.mean())
    assert row["n"] == 3 and row["mean_abs_push"] > 0
    rel = res.reliability
    assert set(rel["mode"]) == {"add", "clamp"} and set(rel["layer"]) == {0, 1}
    pi = res.per_item.query("mode == 'add' and layer == 0")
    hi = f.query("mode == 'add' and layer == 0 and strength == 4.0").groupby("item_id")["p_match"]
    slopes = [np.polyfit([0.0, 4.0], [base[i], hi.mean()[i]], 1)[0] for i in pi["item_id"]]
    np.testing.assert_allclose(pi["slope"], slopes, atol=1e-12)
    one = ab_eval(tiny, axis, items, ABGrid(layers=1, strengths=[4.0], both_orders=False))
    assert len(one.frame[one.frame["mode"] == "none"]) == len(items)


def test_a_swapped_item_exchanges_the_letters_and_nothing_else(items):
    it = items[0]
    sw = it.swapped()
    assert (it.match, sw.match) == ("A", "B") and sw.swapped() == it
    a_line = it.messages[-1]["content"].splitlines()
    b_line = sw.messages[-1]["content"].splitlines()
    assert a_line[0] == b_line[0] and a_line[-1] == b_line[-1]
    assert (a_line[1][4:], a_line[2][4:]) == (b_line[2][4:], b_line[1][4:])
    assert a_line[1] == f"(A) {it.answers[0]}" and it.messages[:-1] == sw.messages[:-1]


def test_bad_inputs(tiny, axis, items):
    with pytest.raises(InputError, match="takes no strength"):
        ab_eval(tiny, axis, items, ABGrid(layers=0, modes=[lambda h, u: h]))  # noqa: ARG005
    dup = [items[0], items[0]]
    with pytest.raises(InputError, match="unique ids"):
        ab_eval(tiny, axis, dup, ABGrid(layers=0))
    with pytest.raises(InputError, match="at least one item"):
        ab_probs(tiny, [])

    class Split:
        def encode(self, text, add_special_tokens=False):  # noqa: ARG002
            return [1, 2]

    class Fake:
        tokenizer = Split()

    with pytest.raises(InputError, match="one token"):
        inspect.unwrap(letter_ids)(Fake())
    a_id, b_id = letter_ids(tiny)
    assert a_id != b_id
