"""value_lens.compare against independent oracles: HF hidden states and logits of the same tiny
Qwen3, planted label rates, and hand-built token selections (never the library's own helpers)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from value_lens import compare
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.testing import tiny_qwen3, tiny_qwen3_hf

LAYER = 0  # hidden_states[1]: a decoder layer's raw output (the last one is post-norm in HF)
OPTIONS = [
    ["kite", "lamp", "river", "violin"],
    ["piano", "kite", "horse", "green"],
    ["drum", "guitar", "kite", "March"],
]


@pytest.fixture(scope="module")
def model():
    return tiny_qwen3()


@pytest.fixture(scope="module")
def hf():
    return tiny_qwen3_hf()


@pytest.fixture(scope="module")
def axis(model):
    g = torch.Generator().manual_seed(3)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model.cfg.model_name)


def _prompts(system=None):
    return [compare.list_prompt(o, system=system) for o in OPTIONS]


def _chat(tok, msgs, gen=False):
    return tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=gen, enable_thinking=False
    )


def _hidden(hf, tok, text, layer):
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    with torch.no_grad():
        out = hf(torch.tensor([enc["input_ids"]]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0].float(), torch.tensor(enc["offset_mapping"])


def _cos_over(hf, tok, text, start, end, unit, layer=LAYER):
    h, off = _hidden(hf, tok, text, layer)
    sel = (off[:, 0] < end) & (off[:, 1] > start)
    assert sel.any()
    return float((h[sel] @ unit / h[sel].norm(dim=-1)).mean())


def _brute_rank(scores, k):
    return 1 + sum(s > scores[k] for s in scores)


def test_preference_rank_assistant_matches_hf_hidden_states(model, hf, axis):
    hf_model, tok = hf
    unit = axis.direction(LAYER)
    prompts = _prompts(system="Pick one item.")
    res = compare.preference_rank({"base": model}, axis, LAYER, prompts, "kite", n_boot=50)
    assert len(res.table) == len(prompts)
    for i, p in enumerate(prompts):
        scores = []
        for o in p.options:
            text = _chat(tok, [*p.messages, {"role": "assistant", "content": o}])
            start = text.rindex(o + "<|im_end|>")  # the prefilled answer is the last occurrence
            scores.append(_cos_over(hf_model, tok, text, start, start + len(o), unit))
        k = p.options.index("kite")
        row = res.table.iloc[i]
        assert row["rank"] == _brute_rank(scores, k)
        assert row["target_value"] == pytest.approx(scores[k], abs=1e-4)
        assert 1 <= row["rank"] <= len(p.options)
    got = res.extras["scores"]
    assert len(got) == sum(len(o) for o in OPTIONS)
    # the ranks are not all the same, so the comparison above is not vacuous
    assert res.table["rank"].nunique() > 1 or res.table["rank"].iloc[0] != 1
    summ = res.summary.iloc[0]
    assert summ["rate_first"] == pytest.approx(float((res.table["rank"] == 1).mean()))
    assert summ["chance"] == pytest.approx(0.25)


def test_preference_rank_user_position_reads_the_items_in_the_prompt(model, hf, axis):
    hf_model, tok = hf
    unit = axis.direction(LAYER)
    prompts = _prompts()
    res = compare.preference_rank(model, axis, LAYER, prompts, "kite", position="user", n_boot=50)
    for i, p in enumerate(prompts):
        text = _chat(tok, list(p.messages), gen=True)
        scores = []
        for j, o in enumerate(p.options, 1):
            start = text.index(f"{j}. {o}") + len(f"{j}. ")
            scores.append(_cos_over(hf_model, tok, text, start, start + len(o), unit))
        k = p.options.index("kite")
        assert res.table.iloc[i]["rank"] == _brute_rank(scores, k)
        assert res.table.iloc[i]["target_value"] == pytest.approx(scores[k], abs=1e-4)


def test_preference_rank_accepts_mappings_and_rejects_a_missing_target(model, axis):
    rows = [{"prompt": list(p.messages), "options": list(p.options)} for p in _prompts()]
    res = compare.preference_rank(model, axis, LAYER, rows, ["kite"] * 3, n_boot=20)
    assert list(res.table["n_options"]) == [4, 4, 4]
    with pytest.raises(InputError, match="banana"):
        compare.preference_rank(model, axis, LAYER, rows, "banana")
    # the shape of value_lens.data.preference.eval_prompts rows: the target travels with the row
    shaped = [
        {
            "system": "Pick one.",
            "user": p.messages[-1]["content"],
            "format": "numbered",
            "messages": [{"role": "system", "content": "Pick one."}, *p.messages],
            "items": list(p.options),
            "target": p.options[-1],
        }
        for p in _prompts()
    ]
    res = compare.selection_accuracy(model, shaped, n_boot=20)
    targets = res.table[res.table["is_target"]].groupby("prompt")["option"].first().tolist()
    assert targets == [o[-1] for o in OPTIONS]


def test_word_delta_is_zero_for_one_model_and_matches_hf_for_two(model, hf, axis):
    sentences = {
        "kite": ["A kite flew over the river.", "My Kite is red."],
        "lamp": ["The lamp is on.", "She bought a lamp."],
        "piano": ["He plays the piano.", "The piano is old."],
    }
    same = compare.word_delta(model, model, axis, LAYER, sentences, "kite", n_boot=20)
    assert (same.table["delta"] == 0.0).all()
    other = tiny_qwen3(seed=1)
    hf1, tok = tiny_qwen3_hf(seed=1)
    res = compare.word_delta(model, other, axis, LAYER, sentences, "kite", n_boot=50)
    unit = axis.direction(LAYER)
    user = {"role": "user", "content": "Write a sentence."}
    for _, row in res.table.iterrows():
        s = sentences[row["word"]][row["sentence"]]
        text = _chat(tok, [user, {"role": "assistant", "content": s}])
        base_at = text.rindex(s)
        m = re.search(row["word"], s, re.IGNORECASE)
        a, b = base_at + m.start(), base_at + m.end()
        want = _cos_over(hf1, tok, text, a, b, unit) - _cos_over(hf[0], tok, text, a, b, unit)
        assert row["delta"] == pytest.approx(want, abs=1e-4)
    summ = res.summary.set_index("statistic")["value"]
    pref = res.table.loc[res.table["role"] == "preferred", "delta"].mean()
    ctrl = res.table[res.table["role"] == "control"].groupby("word")["delta"].mean().mean()
    assert summ["ratio"] == pytest.approx(pref / ctrl)


def test_quartile_fractions_return_planted_rates():
    rng = np.random.default_rng(0)
    planted = {"json": [0.8, 0.5, 0.2, 0.0], "creative": [0.1, 0.3, 0.6, 0.9]}
    scores = rng.permutation(np.linspace(1.0, -1.0, 40))  # 10 prompts per quartile
    order = np.argsort(-scores)
    labels = {k: np.zeros(40, dtype=bool) for k in planted}
    for q in range(4):
        idx = rng.permutation(order[q * 10 : (q + 1) * 10])
        for k, rates in planted.items():
            labels[k][idx[: round(rates[q] * 10)]] = True
    f = compare.quartile_fractions(scores, labels, n_boot=50)
    for k, rates in planted.items():
        got = f[f["label"] == k].sort_values("quartile")["fraction"].tolist()
        assert got == pytest.approx(rates)
    assert compare.quartiles([3.0, 1.0, 4.0, 2.0]).tolist() == [2, 4, 1, 3]


def test_category_quartiles_scores_the_last_prompt_token(model, hf, axis):
    hf_model, tok = hf
    prompts = [f"Question {i}: list {w}." for i, w in enumerate("abcdefgh")]
    labels = ["json" if i % 2 else "open" for i in range(8)]
    res = compare.category_quartiles({"m": model}, prompts, labels, axis, LAYER, n_boot=20)
    unit = axis.direction(LAYER)
    want = []
    for p in prompts:
        h, _ = _hidden(hf_model, tok, _chat(tok, [{"role": "user", "content": p}], gen=True), LAYER)
        want.append(float(h[-1] @ unit / h[-1].norm()))
    assert res.table["value"].to_numpy() == pytest.approx(np.array(want), abs=1e-4)
    top = np.argsort(-np.array(want))[:2]
    assert sorted(res.table.loc[res.table["quartile"] == 1, "prompt"]) == sorted(top.tolist())


def _hf_logliks(hf_model, tok, prompt, answer, steer_item=None, alpha=0.0, unit=None):
    out = []
    for o in prompt.options:
        reply = answer.format(item=o)
        text = _chat(tok, [*prompt.messages, {"role": "assistant", "content": reply}])
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        off = torch.tensor(enc["offset_mapping"])
        ids = torch.tensor([enc["input_ids"]])
        handle = None
        if steer_item is not None:
            j = prompt.options.index(steer_item) + 1
            a = text.index(f"{j}. {steer_item}") + len(f"{j}. ")
            mask = (off[:, 0] < a + len(steer_item)) & (off[:, 1] > a)

            def hook(_mod, _inp, output, mask=mask):
                h = output[0] if isinstance(output, tuple) else output
                h = h + alpha * mask[None, :, None].float() * unit
                return (h, *output[1:]) if isinstance(output, tuple) else h

            handle = hf_model.model.layers[LAYER].register_forward_hook(hook)
        try:
            with torch.no_grad():
                logp = torch.log_softmax(hf_model(ids).logits[0].float(), -1)
        finally:
            if handle is not None:
                handle.remove()
        r = text.rindex(reply)
        sel = torch.nonzero((off[:, 0] < r + len(reply)) & (off[:, 1] > r)).reshape(-1)
        out.append(float(logp[sel - 1, ids[0, sel]].sum()))
    return out


def test_selection_accuracy_matches_hf_log_likelihoods(model, hf):
    hf_model, tok = hf
    prompts = _prompts()
    res = compare.selection_accuracy({"base": model}, prompts, "kite", n_boot=50)
    hits = []
    for i, p in enumerate(prompts):
        want = _hf_logliks(hf_model, tok, p, "I'd pick {item}.")
        got = res.table[res.table["prompt"] == i]["loglik"].to_numpy()
        assert got == pytest.approx(np.array(want), abs=2e-3)
        hits.append(p.options[int(np.argmax(want))] == "kite")
    assert res.summary.iloc[0]["accuracy"] == pytest.approx(np.mean(hits))


def test_prompt_steering_touches_only_the_target_tokens(model, hf, axis):
    hf_model, tok = hf
    unit = axis.direction(LAYER)
    prompts = _prompts()
    alphas = [-30.0, 0.0, 30.0]
    res = compare.prompt_steering(
        model, axis, LAYER, prompts, alphas, "kite", unit="raw", n_boot=20
    )
    for a in alphas:
        for i, p in enumerate(prompts):
            want = _hf_logliks(hf_model, tok, p, "I'd pick {item}.", "kite", a, unit)
            t = res.table[(res.table["alpha"] == a) & (res.table["prompt"] == i)]
            assert t["loglik"].to_numpy() == pytest.approx(np.array(want), abs=2e-3)
    # the steering changed something, so the oracle's mask placement is what was tested
    moved = res.table.groupby(["prompt", "option"])["loglik"].agg(np.ptp)
    assert moved.max() > 1e-2


def test_domain_matrix_delta_is_the_hf_answer_mean_difference(model, hf, axis):
    domains = {
        "math": [("What is 2 + 3?", "2 + 3 = 5, so 5."), ("Add 4 and 4.", "The sum is 8.")],
        "music": [
            {"question": "Name an instrument.", "answer": "A violin."},
            {
                "messages": [
                    {"role": "user", "content": "And another?"},
                    {"role": "assistant", "content": "The piano, then a drum."},
                ]
            },
        ],
    }
    other = tiny_qwen3(seed=1)
    hf1, tok = tiny_qwen3_hf(seed=1)
    res = compare.domain_matrix(
        {"base": model, "sft": other}, domains, axis, LAYER, trained={"sft": "math"}, n_boot=50
    )
    unit = axis.direction(LAYER)
    for d, items in domains.items():
        diffs = []
        for it in items:
            if isinstance(it, tuple):
                q, a = it
            elif "messages" in it:
                q, a = (m["content"] for m in it["messages"])
            else:
                q, a = it["question"], it["answer"]
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            text = _chat(tok, msgs)
            s = text.rindex(a)
            diffs.append(
                _cos_over(hf1, tok, text, s, s + len(a), unit)
                - _cos_over(hf[0], tok, text, s, s + len(a), unit)
            )
        row = res.summary.set_index("domain").loc[d]
        assert row["delta"] == pytest.approx(np.mean(diffs), abs=1e-4)
        assert row["trained"] == (d == "math")
