"""The fast decoding path (HF ``generate`` on the bridge's own HF modules) equals the bridge's loop.

Oracles: the bridge's hooked loop (``backend="bridge"``), and a separate plain HF model with the
same weights (``tiny_hf``), steered through a plain torch forward hook.
"""

from __future__ import annotations

import pytest
import torch

import value_lens as vl
from value_lens.core.decoding import DecodeRequest, choose_backend, decode_batch, token_stats
from value_lens.core.fastpath import fast_path_blocker, hf_decoding
from value_lens.errors import InputError

PROMPTS = ["The value of a plan", "Hi", "Once upon a time there was a small robot who"]


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(3)
    return vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)


def _padded(model, prompts):
    ids = [torch.tensor(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    width = max(x.numel() for x in ids)
    tokens = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for j, x in enumerate(ids):
        tokens[j, width - x.numel() :] = x
        mask[j, width - x.numel() :] = 1
    return tokens, mask


def _request(model, prompts, *, temperature=0.0, use_cache=True, n=8):
    tokens, mask = _padded(model, prompts)
    return DecodeRequest(
        tokens=tokens,
        mask=mask,
        max_new_tokens=n,
        temperature=temperature,
        top_p=1.0,
        stop_ids=[],
        pad_id=0,
        use_cache=use_cache,
        logits=True,
    )


def _both(model, req, seed=0):
    out = {}
    for backend in ("bridge", "hf"):
        torch.manual_seed(seed)
        with torch.no_grad():
            out[backend] = decode_batch(model, req, backend)
    return out


@pytest.mark.parametrize("steered", ["none", "one", "all", "resid_pre"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_hf_loop_equals_bridge_loop_tokens_and_logits(tiny, axis, steered, use_cache):
    req = _request(tiny, PROMPTS, use_cache=use_cache)
    layers = {"none": [], "one": [1], "all": [0, 1], "resid_pre": [0]}[steered]
    point = "resid_pre" if steered == "resid_pre" else "resid_post"
    ctx = vl.steer(tiny, axis, layers=layers, alpha=6.0, point=point) if layers else None
    with ctx if ctx is not None else torch.no_grad():
        out = _both(tiny, req)
    (bs, bl), (hs, hl) = out["bridge"], out["hf"]
    assert torch.equal(bs, hs)
    assert len(bl) == len(hl) == 8
    for a, b in zip(bl, hl, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    if layers:  # the steering acted on both paths
        with torch.no_grad():
            plain, _ = decode_batch(tiny, req, "hf")
        assert not torch.equal(plain, hs)


def test_seeded_sampling_draws_the_same_tokens(tiny):
    req = _request(tiny, PROMPTS, temperature=2.0)
    out = _both(tiny, req, seed=11)
    assert torch.equal(out["bridge"][0], out["hf"][0])


def test_hf_loop_matches_a_separate_plain_hf_model_steered_by_a_torch_hook(tiny, tiny_hf, axis):
    hf, _ = tiny_hf
    req = _request(tiny, PROMPTS, n=6)
    vec = 5.0 * axis.direction(0)

    def add(module, args, out):  # noqa: ARG001
        return (out[0] + vec, *out[1:]) if isinstance(out, tuple) else out + vec

    from transformers import GenerationConfig

    gc = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    handle = hf.model.layers[0].register_forward_hook(add)
    try:
        with torch.no_grad():
            want = hf.generate(input_ids=req.tokens, attention_mask=req.mask, generation_config=gc)
    finally:
        handle.remove()
    with torch.no_grad(), vl.steer(tiny, axis, layers=0, alpha=5.0):
        got, _ = decode_batch(tiny, req, "hf")
    assert torch.equal(got, want)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_generate_auto_takes_the_hf_loop_and_equals_the_bridge(tiny, axis, temperature):
    steering = vl.steer(tiny, axis, layers=1, alpha=4.0, positions="generated")
    kw = dict(max_new_tokens=6, batch_size=3, temperature=temperature, seed=2, token_stats=True)
    mon = vl.monitor(axis, [0, 1])
    fast = vl.generate(tiny, PROMPTS, steer=steering, monitor=mon, **kw)
    slow = vl.generate(tiny, PROMPTS, steer=steering, monitor=mon, backend="bridge", **kw)
    assert [g.backend for g in fast] == ["hf"] * 3 and [g.backend for g in slow] == ["bridge"] * 3
    for f, s in zip(fast, slow, strict=True):
        assert f.output_ids.tolist() == s.output_ids.tolist()
        torch.testing.assert_close(f.trace.cosine, s.trace.cosine, atol=1e-5, rtol=0)
        for name in f.token_stats:
            torch.testing.assert_close(f.token_stats[name], s.token_stats[name], atol=1e-5, rtol=0)


def test_a_hook_elsewhere_sends_auto_to_the_bridge_and_hf_refuses(tiny):
    def bump(t, hook):  # noqa: ARG001
        return t * 1.5

    assert fast_path_blocker(tiny) is None
    with tiny.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", bump)]):
        assert "blocks.0.mlp.hook_out" in fast_path_blocker(tiny)
        assert choose_backend(tiny, "auto") == "bridge"
        with pytest.raises(InputError, match="mlp.hook_out"):
            choose_backend(tiny, "hf")
        hooked = vl.generate(tiny, PROMPTS[0], max_new_tokens=5)[0]
    assert hooked.backend == "bridge"
    ref = vl.generate(tiny, PROMPTS[0], max_new_tokens=5, backend="bridge")[0]
    with tiny.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", bump)]):
        ref_hooked = vl.generate(tiny, PROMPTS[0], max_new_tokens=5, backend="bridge")[0]
    assert hooked.output_ids.tolist() == ref_hooked.output_ids.tolist()
    assert vl.generate(tiny, PROMPTS[0], max_new_tokens=5)[0].backend == "hf"
    assert ref.backend == "bridge"


def test_the_swap_is_undone_even_when_a_hook_raises(tiny):
    layers = tiny.original_model.model.layers
    before = [type(x).__name__ for x in layers]

    def boom(t, hook):  # noqa: ARG001
        raise RuntimeError("boom")

    hp = tiny.hook_dict["blocks.1.hook_resid_post"]
    handle = hp.add_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"), torch.no_grad():
            decode_batch(tiny, _request(tiny, PROMPTS[:1], n=2), "hf")
    finally:
        handle.hook.remove()
        hp.fwd_hooks.remove(handle)
    assert [type(x).__name__ for x in layers] == before == ["BlockBridge", "BlockBridge"]
    assert tiny.original_model.config._attn_implementation == "eager"  # the bridge's
    with hf_decoding(tiny) as hf:
        assert hf.config._attn_implementation == "sdpa"
        assert all(type(x).__name__ == "Qwen3DecoderLayer" for x in hf.model.layers)
        assert not any("Bridge" in type(m).__name__ for m in hf.modules())
    assert not hp._forward_hooks and not layers[1]._forward_hooks
    assert tiny.original_model.config._attn_implementation == "eager"


def test_token_stats_match_a_full_forward_recompute(tiny, tiny_hf):
    hf, _ = tiny_hf
    g = vl.generate(tiny, PROMPTS[2], max_new_tokens=6, token_stats=True)[0]
    ids = torch.cat([g.prompt_ids, g.output_ids])[None]
    with torch.no_grad():
        logits = hf(ids).logits[0, g.prompt_ids.numel() - 1 : -1].double()
    logp = torch.log_softmax(logits, -1)
    v = logp.shape[-1]
    want = {
        "logprob": logp.gather(-1, g.output_ids[:, None])[:, 0],
        "entropy": -(logp.exp() * logp).sum(-1),
        "self_certainty": torch.stack(
            [(torch.full((v,), 1 / v) * (-torch.log(r.exp() * v))).sum() for r in logp]
        ).double(),
        "confidence": -logp.sort(-1, descending=True).values[:, :20].mean(-1),
    }
    assert set(g.token_stats) == set(want)
    for k, w in want.items():
        torch.testing.assert_close(g.token_stats[k], w, atol=1e-5, rtol=0)


def test_token_stats_of_a_uniform_distribution():
    s = token_stats(torch.zeros(3, 8), torch.tensor([0, 4, 7]))
    torch.testing.assert_close(
        s["entropy"], torch.full((3,), float(torch.log(torch.tensor(8.0)))).double()
    )
    torch.testing.assert_close(s["self_certainty"], torch.zeros(3, dtype=torch.float64))


def test_bad_backend_is_refused(tiny):
    import inspect

    with pytest.raises(InputError, match="backend"):
        inspect.unwrap(choose_backend)(tiny, "vllm")
    cfg = vl.GenerationConfig()
    object.__setattr__(cfg, "backend", "vllm")  # past the run-time type check of __init__
    with pytest.raises(InputError, match="backend"):
        cfg.__post_init__()


def test_stop_tokens_end_rows_alike_on_both_loops(tiny):
    req = _request(tiny, PROMPTS, n=6)
    with torch.no_grad():
        free, _ = decode_batch(tiny, req, "hf")
    width = req.tokens.shape[1]
    stop = int(free[0, width + 2])  # a token row 0 emits becomes a stop token
    out = _both(tiny, DecodeRequest(**{**req.__dict__, "stop_ids": [stop]}))
    for row in range(len(PROMPTS)):
        seqs = [out[b][0][row, width:].tolist() for b in ("bridge", "hf")]
        cut = [s[: s.index(stop) + 1] if stop in s else s for s in seqs]
        assert cut[0] == cut[1]
    row0 = out["hf"][0][0, width:].tolist()
    first = row0.index(stop)
    assert row0[: first + 1] == free[0, width : width + first + 1].tolist()
    assert set(row0[first + 1 :]) <= {req.pad_id}  # the finished row only pads


def test_no_stop_ids_ignore_the_models_own_generation_config_eos(tiny, monkeypatch):
    req = _request(tiny, PROMPTS, n=6)
    with torch.no_grad():
        free, _ = decode_batch(tiny, req, "bridge")
    width = req.tokens.shape[1]
    emitted = int(free[0, width + 1])  # HF would stop here if it read generation_config's EOS
    monkeypatch.setattr(tiny.original_model.generation_config, "eos_token_id", emitted)
    with torch.no_grad():
        fast, _ = decode_batch(tiny, req, "hf")
    assert torch.equal(fast, free) and fast.shape[1] == width + 6


def test_the_models_sampling_defaults_do_not_leak_into_the_hf_loop(tiny, monkeypatch):
    gc = tiny.original_model.generation_config
    monkeypatch.setattr(gc, "repetition_penalty", 50.0)
    monkeypatch.setattr(gc, "top_k", 2)
    for temperature in (0.0, 2.0):
        out = _both(tiny, _request(tiny, PROMPTS, temperature=temperature), seed=4)
        assert torch.equal(out["bridge"][0], out["hf"][0])
    assert tiny.original_model.generation_config is gc


def test_stop_at_eos_false_forces_the_full_length(tiny):
    eos = tiny.tokenizer.eos_token_id

    def force(logits, hook):  # noqa: ARG001
        logits = logits.clone()
        logits[:, -1, eos] = 1e4
        return logits

    with tiny.hooks(fwd_hooks=[("unembed.hook_out", force)]):
        stopped = vl.generate(tiny, PROMPTS, max_new_tokens=5)
        forced = vl.generate(tiny, PROMPTS, max_new_tokens=5, stop_at_eos=False)
    assert [g.n_tokens for g in stopped] == [0, 0, 0]
    assert [g.n_tokens for g in forced] == [5, 5, 5]
    assert all(g.output_ids.tolist() == [eos] * 5 for g in forced)


def test_smollm_greedy_chat_equal_on_both_loops_with_steering(smollm):
    d = smollm.cfg.d_model
    axis = vl.ValueAxis(
        torch.randn(smollm.cfg.n_layers, d, generator=torch.Generator().manual_seed(0)),
        model_id=smollm.cfg.model_name,
    )
    msgs = [[{"role": "user", "content": q}] for q in ("What is 2+2?", "Name a colour.")]
    steering = vl.steer(smollm, axis, layers=[10, 20], alpha=8.0)
    kw = dict(max_new_tokens=10, batch_size=2, token_stats=True)
    fast = vl.generate(smollm, msgs, steer=steering, **kw)
    slow = vl.generate(smollm, msgs, steer=steering, backend="bridge", **kw)
    assert [g.backend for g in fast] == ["hf", "hf"]
    for f, s in zip(fast, slow, strict=True):
        assert f.output_ids.tolist() == s.output_ids.tolist()
        torch.testing.assert_close(
            f.token_stats["logprob"], s.token_stats["logprob"], atol=1e-4, rtol=0
        )


def test_token_stats_of_every_row_of_a_left_padded_batch_match_an_hf_forward(tiny, tiny_hf):
    """Each row's statistics come from its own logits (not row 0's), padding and all."""
    hf, _ = tiny_hf
    gens = vl.generate(tiny, PROMPTS, max_new_tokens=5, token_stats=True, stop_at_eos=False)
    assert len({g.prompt_ids.numel() for g in gens}) == len(PROMPTS)  # really padded
    for g in gens:
        ids = torch.cat([g.prompt_ids, g.output_ids])[None]
        with torch.no_grad():
            logits = hf(ids).logits[0, g.prompt_ids.numel() - 1 : -1].double()
        logp = torch.log_softmax(logits, -1)
        torch.testing.assert_close(
            g.token_stats["logprob"],
            logp.gather(-1, g.output_ids[:, None])[:, 0],
            atol=1e-5,
            rtol=0,
        )
        torch.testing.assert_close(
            g.token_stats["entropy"], -(logp.exp() * logp).sum(-1), atol=1e-5, rtol=0
        )


def test_compatibility_mode_sends_auto_to_the_bridge_and_hf_refuses():
    from value_lens.testing import tiny_qwen3

    model = tiny_qwen3()
    model.enable_compatibility_mode(disable_warnings=True)
    assert "compatibility mode" in (fast_path_blocker(model) or "")
    got = vl.generate(model, PROMPTS[:2], max_new_tokens=4)
    ref = vl.generate(model, PROMPTS[:2], max_new_tokens=4, backend="bridge")
    assert [g.backend for g in got] == ["bridge", "bridge"]
    assert [g.output_ids.tolist() for g in got] == [g.output_ids.tolist() for g in ref]
    with pytest.raises(InputError, match="compatibility mode"):
        vl.generate(model, PROMPTS[0], max_new_tokens=2, backend="hf")


def test_routed_resid_hooks_see_the_layer_input_passed_by_keyword_or_position():
    """The decoder layer's input may arrive as ``hidden_states=``: the resid_pre hook point
    must see (and may replace) it either way, and resid_post sees the output."""
    from value_lens.core import fastpath

    class Layer(torch.nn.Module):
        def forward(self, hidden_states, scale=1.0):
            return (hidden_states * scale, "cache")

    seen = []

    def pre(x):
        seen.append(("pre", x.tolist()))
        return x + 1

    def post(x):
        seen.append(("post", x.tolist()))
        return -x

    layer = Layer()
    handles = fastpath._route([(0, "pre", pre), (0, "post", post)], [layer])
    try:
        by_kw = layer(hidden_states=torch.tensor([1.0, 2.0]), scale=2.0)
        by_pos = layer(torch.tensor([1.0, 2.0]), scale=2.0)
    finally:
        for h in handles:
            h.remove()
    for out in (by_kw, by_pos):
        assert out[0].tolist() == [-4.0, -6.0] and out[1] == "cache"
    assert seen == [("pre", [1.0, 2.0]), ("post", [4.0, 6.0])] * 2
