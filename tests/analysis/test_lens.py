"""logit_lens against formulas computed by hand from the HF model's own weights and modules."""

from __future__ import annotations

import math

import pytest
import torch

import value_lens as vl
from value_lens.analysis.lens import lens_scores, logit_lens
from value_lens.testing import tiny_qwen3_hf


def _setup(tied: bool, seed: int = 3):
    hf, tok = tiny_qwen3_hf(tied=tied, seed=seed)
    model = vl.load_model(hf, tokenizer=tok)  # deep-copies: hf stays an independent oracle
    g = torch.Generator().manual_seed(seed)
    dirs = 3.0 * torch.randn(model.cfg.n_layers, model.cfg.d_model, generator=g)
    axis = vl.ValueAxis(dirs, model_id=vl.core.model.model_id(model))
    v = dirs[1].double() / dirs[1].double().norm()
    return hf, tok, model, axis, v


@pytest.mark.parametrize("tied", [True, False])
def test_paper_mode_equals_two_independent_formulas(tied):
    hf, _, model, axis, v = _setup(tied)
    w_u = hf.lm_head.weight.detach().double()
    gamma = hf.model.norm.weight.detach().double()
    by_weights = w_u @ (gamma * v)
    with torch.no_grad():
        by_modules = hf.lm_head(hf.model.norm(v.float()[None, None])).reshape(-1).double()
    by_modules = by_modules / math.sqrt(v.numel())
    got = lens_scores(axis, model, 1, mode="paper")
    torch.testing.assert_close(got, by_weights, rtol=1e-6, atol=1e-7)
    # the modules' path differs by the norm's epsilon only (d * eps / 2 relative)
    torch.testing.assert_close(got, by_modules, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_raw_mode_is_the_models_final_norm_and_unembedding(tied):
    hf, _, model, axis, v = _setup(tied)
    eps = hf.model.norm.variance_epsilon
    gamma = hf.model.norm.weight.detach().double()
    by_hand = hf.lm_head.weight.detach().double() @ (v / torch.sqrt((v**2).mean() + eps) * gamma)
    with torch.no_grad():
        by_modules = hf.lm_head(hf.model.norm(v.float()[None, None])).reshape(-1).double()
    got = lens_scores(axis, model, 1, mode="raw")
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, by_modules, rtol=1e-5, atol=1e-5)
    paper = lens_scores(axis, model, 1, mode="paper")
    torch.testing.assert_close(got / math.sqrt(v.numel()), paper, rtol=1e-4, atol=1e-5)


def test_untied_model_reads_the_lm_head_not_the_input_embedding():
    hf, _, model, axis, v = _setup(tied=False)
    assert not torch.equal(hf.lm_head.weight, hf.model.embed_tokens.weight)
    gamma = hf.model.norm.weight.detach().double()
    wrong = hf.model.embed_tokens.weight.detach().double() @ (gamma * v)
    got = lens_scores(axis, model, 1)
    assert not torch.allclose(got, wrong, atol=1e-3)


def test_cosine_mode_is_the_cosine_with_each_unembedding_row():
    hf, _, model, axis, v = _setup(tied=False)
    gv = hf.model.norm.weight.detach().double() * v
    w_u = hf.lm_head.weight.detach().double()
    expected = torch.nn.functional.cosine_similarity(w_u, gv[None], dim=1)
    torch.testing.assert_close(lens_scores(axis, model, 1, mode="cosine"), expected)


def test_unembedding_bias_enters_raw_but_not_paper():
    hf, tok, _, axis, v = _setup(tied=False)
    d, n_vocab = hf.lm_head.in_features, hf.lm_head.out_features
    head = torch.nn.Linear(d, n_vocab, bias=True)
    with torch.no_grad():
        head.weight.copy_(hf.lm_head.weight)
        head.bias.copy_(torch.linspace(-2, 2, n_vocab))
    hf.lm_head = head
    gamma = hf.model.norm.weight.detach().double()
    eps = hf.model.norm.variance_epsilon
    normed = v / torch.sqrt((v**2).mean() + eps) * gamma
    expected_raw = head.weight.detach().double() @ normed + head.bias.detach().double()
    torch.testing.assert_close(lens_scores(axis, hf, 1, mode="raw"), expected_raw)
    expected_paper = head.weight.detach().double() @ (gamma * v)
    torch.testing.assert_close(lens_scores(axis, hf, 1, mode="paper"), expected_paper)


def test_table_lists_top_and_bottom_tokens_in_order():
    hf, tok, model, axis, v = _setup(tied=True)
    oracle = hf.lm_head.weight.detach().double() @ (hf.model.norm.weight.detach().double() * v)
    df = logit_lens(axis, model, 1, k=5)
    top, bottom = df[df.side == "top"], df[df.side == "bottom"]
    assert top.token_id.tolist() == torch.argsort(oracle, descending=True)[:5].tolist()
    assert bottom.token_id.tolist() == torch.argsort(oracle)[:5].tolist()
    assert top["rank"].tolist() == [1, 2, 3, 4, 5]
    assert df.token.tolist() == [tok.decode([i]) for i in df.token_id]
    torch.testing.assert_close(
        torch.tensor(df.score.tolist(), dtype=torch.float64), oracle[df.token_id.tolist()]
    )
    assert set(df["mode"]) == {"paper"} and set(df["layer"]) == {1}


def test_padded_vocabulary_rows_are_not_tokens():
    hf, tok = tiny_qwen3_hf(tied=False)
    hf.resize_token_embeddings(len(tok) + 16)
    with torch.no_grad():
        hf.lm_head.weight[len(tok) :] = 1e3  # would top every list if they were read
    model = vl.load_model(hf, tokenizer=tok)
    v = torch.ones(model.cfg.d_model)
    assert lens_scores(v, model).numel() == len(tok)
    assert logit_lens(v, model, k=3).token_id.max() < len(tok)


def test_errors_name_the_fix():
    _, _, model, axis, _ = _setup(tied=True)
    with pytest.raises(vl.InputError, match="one of"):
        logit_lens(axis, model, 1, mode="logits")  # type: ignore[arg-type]
    with pytest.raises(vl.InputError, match="layer"):
        logit_lens(axis, model)
    with pytest.raises(vl.InputError, match="d_model"):
        logit_lens(torch.ones(7), model)
    with pytest.raises(vl.InputError, match="at least 1"):
        logit_lens(axis, model, 1, k=0)
    with pytest.raises(vl.InputError, match="load_model"):
        logit_lens(axis, object(), 1)
