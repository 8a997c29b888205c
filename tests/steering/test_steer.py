"""Steering hooks on the tiny Qwen3: exact deltas, HF oracle, KV cache, padding, leaks, errors."""

from __future__ import annotations

import contextlib
import inspect

import pytest
import torch
from jaxtyping import TypeCheckError

from value_lens.core.generate import generate
from value_lens.core.model import model_id
from value_lens.errors import AxisMismatchError, CalibrationError, InputError, LayerError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.steer import steer, steering_hook
from value_lens.testing import hook_count

PROMPTS = ["the value of a", "a much longer prompt about code and tests here", "x"]
ATOL = 1e-5


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(1)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


def _tokens(model, text):
    return model.to_tokens(text, prepend_bos=False)


def _resid(model, tokens, layer):
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_resid_post")
    return cache[f"blocks.{layer}.hook_resid_post"]


@contextlib.contextmanager
def _record_logits(model):
    """Collect the last-position logits of every forward pass (one per decoding step)."""
    steps: list[torch.Tensor] = []

    def rec(t, hook):  # noqa: ARG001
        steps.append(t[:, -1].detach().clone())

    hp = model.hook_dict["unembed.hook_out"]
    handle = hp.add_hook(rec)
    try:
        yield steps
    finally:
        handle.hook.remove()
        hp.fwd_hooks.remove(handle)


@pytest.mark.parametrize("positions", ["all", "prompt", "from:2", "from:-2"])
def test_add_changes_resid_post_by_exactly_alpha_vhat_at_selected_positions(tiny, axis, positions):
    tokens = _tokens(tiny, PROMPTS[1])
    base = _resid(tiny, tokens, 0)
    with steer(tiny, axis, layers=0, alpha=3.0, positions=positions):
        steered = _resid(tiny, tokens, 0)
    delta = (steered - base)[0]
    t = tokens.shape[1]
    sel = {"all": range(t), "prompt": range(t), "from:2": range(2, t), "from:-2": range(t - 2, t)}
    expected = torch.zeros_like(delta)
    expected[list(sel[positions])] = 3.0 * axis.direction(0)
    torch.testing.assert_close(delta, expected, atol=ATOL, rtol=0)


def test_generated_mode_is_a_no_op_on_a_plain_forward(tiny, axis):
    tokens = _tokens(tiny, PROMPTS[0])
    base = tiny(tokens)
    with steer(tiny, axis, layers=[0, 1], alpha=50.0, positions="generated"):
        assert torch.equal(tiny(tokens), base)


def test_matches_hf_oracle_forward_hook(tiny, tiny_hf, axis):
    hf, tok = tiny_hf
    ids = torch.tensor([tok(PROMPTS[1], add_special_tokens=False)["input_ids"]])
    want = _hf_logits_adding(tiny_hf, ids, 1, 2.5 * axis.direction(1))
    with torch.no_grad(), steer(tiny, axis, layers=1, alpha=2.5):
        got = tiny(ids)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def _hf_logits_adding(tiny_hf, ids, layer, vec):
    """HF oracle: ``vec`` added to the output of decoder layer ``layer`` (hidden_states[layer+1])."""
    hf, _ = tiny_hf

    def add(module, args, out):  # noqa: ARG001
        return (out[0] + vec, *out[1:]) if isinstance(out, tuple) else out + vec

    h = hf.model.layers[layer].register_forward_hook(add)
    try:
        with torch.no_grad():
            return hf(ids).logits
    finally:
        h.remove()


@pytest.mark.parametrize("as_tensor", [False, True])
def test_resid_pre_steers_the_same_stream_as_resid_post_and_hf(tiny, tiny_hf, axis, as_tensor):
    """Layer L means hidden_states[L+1] at either point, for a ValueAxis and a bare vector."""
    _, tok = tiny_hf
    ids = torch.tensor([tok(PROMPTS[1], add_special_tokens=False)["input_ids"]])
    src = axis.direction(0) if as_tensor else axis
    want = _hf_logits_adding(tiny_hf, ids, 0, 4.0 * axis.direction(0))
    with torch.no_grad(), steer(tiny, src, layers=0, alpha=4.0, point="resid_pre"):
        pre = tiny(ids)
    with torch.no_grad(), steer(tiny, src, layers=0, alpha=4.0, point="resid_post"):
        post = tiny(ids)
    assert not torch.allclose(post, tiny(ids), atol=1e-2)
    torch.testing.assert_close(pre, post, atol=ATOL, rtol=0)
    torch.testing.assert_close(pre, want, atol=ATOL, rtol=0)
    # the resid_pre hook leaves block 0's own output (a hook_resid_post cache) unsteered
    base = _resid(tiny, ids, 0)
    with steer(tiny, src, layers=0, alpha=4.0, point="resid_pre"):
        assert torch.equal(_resid(tiny, ids, 0), base)


def test_resid_pre_names_the_next_blocks_input_and_refuses_the_last_layer(tiny, axis):
    assert steering_hook(axis, 0, 1.0, point="resid_pre")[0] == "blocks.1.hook_resid_pre"
    assert steering_hook(torch.ones(64), 5, 1.0, point="resid_pre")[0] == (
        "blocks.6.hook_resid_pre"
    )
    for bad in (axis, axis.directions, axis.directions[1]):
        with pytest.raises(LayerError, match="point='resid_post'"):
            steer(tiny, bad, layers=-1, alpha=1.0, point="resid_pre")
    with pytest.raises(LayerError, match="point='resid_post'"):
        steering_hook(axis, 1, 1.0, point="resid_pre")


def test_steering_hooks_are_named_by_the_layer_conventions_hook_name(tiny, axis):
    from value_lens.core import conventions
    from value_lens.steering import _resolve

    assert _resolve.hook_name is conventions.hook_name and _resolve.POINTS is conventions.POINTS
    hook_name = conventions.hook_name
    for point in ("resid_post", "resid_pre"):
        assert steering_hook(axis, 0, 1.0, point=point)[0] == hook_name(0, point, 2)
        assert hook_name(0, point) in tiny.hook_dict
    assert hook_name(1) == hook_name(1, "resid_post", 2) == "blocks.1.hook_resid_post"
    assert hook_name(0, "resid_pre", 2) == "blocks.1.hook_resid_pre"
    assert hook_name(-2, "resid_pre", 2) == "blocks.1.hook_resid_pre"  # counted from the end
    assert hook_name(1, "resid_pre") == "blocks.2.hook_resid_pre"  # no depth: not checked
    with pytest.raises(LayerError, match="point='resid_post'"):
        hook_name(1, "resid_pre", 2)
    with pytest.raises(LayerError, match="out of range"):
        hook_name(2, "resid_post", 2)
    with pytest.raises((InputError, TypeCheckError)):  # TypeCheckError under the test hook
        hook_name(0, "resid_mid", 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["ablate", "clamp"])
def test_ablate_and_clamp_in_bf16_are_exact_up_to_rounding_the_output(axis, mode):
    """The projection after the hook is off only by bf16 rounding of the output entries."""
    u32 = axis.direction(0)
    g = torch.Generator().manual_seed(3)
    big = torch.tensor([300.0, -170.0, 90.0, 41.0, -23.0])[None, :, None]
    resid = (torch.randn(2, 5, 64, generator=g) + big * u32).to(torch.bfloat16)
    alpha = 2.5 if mode == "clamp" else None  # ablate's strength is the share removed (1)
    _, fn = steering_hook(axis, 0, alpha, mode=mode, positions="from:1")
    out = fn(resid)
    assert out.dtype == torch.bfloat16
    u = u32.double()
    before, after = resid.double() @ u, out.double() @ u
    target = 0.0 if mode == "ablate" else 2.5
    # each output entry is the exact fp32 result rounded to bf16 (relative error <= 2**-8)
    bound = 2.0**-8 * 1.01 * (out.double().abs() @ u.abs()) + 1e-6 * before.abs()
    err = (after[:, 1:] - target).abs()
    assert (err <= bound[:, 1:]).all(), (err / before[:, 1:].abs()).max()
    assert (err < 1e-3 * before[:, 1:].abs()).all()
    assert torch.equal(out[:, 0], resid[:, 0])


def _steered_ids(model, vec, alpha, **kw):
    with _record_logits(model) as steps:
        gens = generate(
            model,
            PROMPTS,
            steer=steer(model, vec, layers=0, alpha=alpha, normalize=False, **kw),
            max_new_tokens=6,
        )
    return [g.output_ids.tolist() for g in gens], torch.cat(steps)


def test_greedy_algebra(tiny, axis):
    v = axis.directions[0]
    ids_a, log_a = _steered_ids(tiny, v, 2 * 1.5)
    ids_b, log_b = _steered_ids(tiny, 2 * v, 1.5)
    assert ids_a == ids_b
    torch.testing.assert_close(log_a, log_b, atol=1e-4, rtol=0)
    ids_c, log_c = _steered_ids(tiny, -v, 1.5)
    ids_d, log_d = _steered_ids(tiny, v, -1.5)
    assert ids_c == ids_d
    torch.testing.assert_close(log_c, log_d, atol=1e-4, rtol=0)
    # and the steering really did something
    ids_0, log_0 = _steered_ids(tiny, v, 0.0)
    assert (log_a - log_0).abs().max() > 1e-2
    # the ValueAxis arithmetic gives the same as scaling alpha
    with _record_logits(tiny) as s1:
        generate(tiny, PROMPTS, steer=steer(tiny, axis * 2, layers=0, alpha=1.5, normalize=False))
    with _record_logits(tiny) as s2:
        generate(tiny, PROMPTS, steer=steer(tiny, axis, layers=0, alpha=3.0, normalize=False))
    torch.testing.assert_close(torch.cat(s1), torch.cat(s2), atol=1e-4, rtol=0)


def _oracle_step_logits(model, axis, gen, alpha, positions, layer=0):
    """Teacher-forced full forward over one unpadded row with an explicit real-position mask."""
    seq = torch.cat([gen.prompt_ids, gen.output_ids])[None]
    p, n = gen.prompt_ids.numel(), seq.shape[1]
    start = {"all": 0, "generated": p, "from:-1": p - 1, "prompt": 0}[positions]
    end = p if positions == "prompt" else n
    mask = torch.zeros(n, dtype=torch.bool)
    mask[start:end] = True
    with torch.no_grad(), steer(model, axis, layers=layer, alpha=alpha, positions=mask):
        logits = model(seq)[0]
    return logits[p - 1 : p - 1 + gen.output_ids.numel()]


@pytest.mark.parametrize("positions", ["generated", "from:-1", "all", "prompt"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_generation_matches_unpadded_full_recompute(tiny, axis, positions, use_cache):
    """KV cache or not, left-padded batch or not: every step's logits equal the oracle's."""
    s = steer(tiny, axis, layers=0, alpha=6.0, positions=positions)
    with _record_logits(tiny) as steps:
        gens = generate(tiny, PROMPTS, steer=s, max_new_tokens=5, use_cache=use_cache)
    per_step = torch.stack(steps, dim=1)  # [B, steps, V]
    for b, g in enumerate(gens):
        want = _oracle_step_logits(tiny, axis, g, 6.0, positions)
        torch.testing.assert_close(per_step[b, : want.shape[0]], want, atol=1e-4, rtol=0)


def test_generated_mode_leaves_the_prompt_untouched_under_cache_and_padding(tiny, axis):
    """The first new token depends only on prompt positions, so its logits must be unsteered."""
    with _record_logits(tiny) as base:
        generate(tiny, PROMPTS, max_new_tokens=3)
    with _record_logits(tiny) as steered:
        generate(
            tiny,
            PROMPTS,
            max_new_tokens=3,
            steer=steer(tiny, axis, layers=[0, 1], alpha=40.0, positions="generated"),
        )
    assert torch.equal(base[0], steered[0])
    assert (base[1] - steered[1]).abs().max() > 1e-2


def test_unsteered_kv_cache_generate_matches_full_recompute(tiny):
    """Guards the transformers>=5.24 bridge KV-cache break (see notes/transformerlens.md §3)."""
    ids = _tokens(tiny, PROMPTS[1])
    out = tiny.generate(ids, max_new_tokens=5, do_sample=False, verbose=False, output_logits=True)
    full = tiny(out.sequences)
    for i, lg in enumerate(out.logits):
        torch.testing.assert_close(lg[0], full[0, ids.shape[1] - 1 + i], atol=1e-4, rtol=0)


def test_hooks_are_removed_after_an_exception(tiny, axis):
    tiny(_tokens(tiny, "warm up"))
    start = hook_count(tiny)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(tiny, axis, layers=[0, 1], alpha=1.0):
            assert hook_count(tiny) == start + 2
            raise RuntimeError("boom")
    assert hook_count(tiny) == start
    assert all(not hp.fwd_hooks for hp in tiny.hook_dict.values())
    # a hook that raises inside generate also leaves nothing behind
    bad = torch.ones(65)
    with pytest.raises(AxisMismatchError):
        with tiny.hooks(fwd_hooks=[steering_hook(bad, 0, 1.0)]):
            tiny(_tokens(tiny, "warm up"))
    assert hook_count(tiny) == start


def test_nested_contexts_compose_and_unwind(tiny, axis):
    tokens = _tokens(tiny, PROMPTS[0])
    base = _resid(tiny, tokens, 0)
    v = axis.direction(0)
    outer = steer(tiny, axis, layers=0, alpha=2.0)
    with outer:
        with steer(tiny, axis, layers=0, alpha=-5.0, positions="from:1"):
            both = _resid(tiny, tokens, 0)
            with outer:  # the same object re-entered owns a second set of handles
                thrice = _resid(tiny, tokens, 0)
            again = _resid(tiny, tokens, 0)
        only_outer = _resid(tiny, tokens, 0)
    after = _resid(tiny, tokens, 0)
    exp = torch.zeros_like(base[0])
    exp[:] = 2.0 * v
    exp[1:] += -5.0 * v
    torch.testing.assert_close((both - base)[0], exp, atol=ATOL, rtol=0)
    torch.testing.assert_close((thrice - both)[0], (2.0 * v).expand_as(exp), atol=ATOL, rtol=0)
    torch.testing.assert_close(again, both)
    torch.testing.assert_close((only_outer - base)[0], (2.0 * v).expand_as(exp), atol=ATOL, rtol=0)
    assert torch.equal(after, base)


def test_ablate_and_clamp(tiny, axis):
    tokens = _tokens(tiny, PROMPTS[1])
    u = axis.direction(0)
    with steer(tiny, axis, layers=0, mode="ablate"):
        abl = _resid(tiny, tokens, 0)
    torch.testing.assert_close(abl @ u, torch.zeros(abl.shape[:2]), atol=ATOL, rtol=0)
    base = _resid(tiny, tokens, 0)
    with steer(tiny, axis, layers=0, mode="clamp", alpha=7.0, positions="from:3"):
        cl = _resid(tiny, tokens, 0)
    proj = cl @ u
    torch.testing.assert_close(proj[0, 3:], torch.full_like(proj[0, 3:], 7.0), atol=ATOL, rtol=0)
    assert torch.equal(cl[0, :3], base[0, :3])
    # the orthogonal complement is untouched
    rest = (cl - base) - ((cl - base) @ u)[..., None] * u
    assert rest.abs().max() < ATOL


def test_per_layer_alphas(tiny, axis):
    tokens = _tokens(tiny, PROMPTS[0])
    with steer(tiny, axis, layers=[0, 1], alpha={0: 1.0, 1: -2.0}):
        a = tiny(tokens)
    with steer(tiny, axis, layers=[0, 1], alpha=[1.0, -2.0]):
        b = tiny(tokens)
    with steer(tiny, axis, layers=0, alpha=1.0), steer(tiny, axis, layers=1, alpha=-2.0):
        c = tiny(tokens)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, c)
    s = steer(tiny, axis, layers=[0, 1], alpha={0: 1.0, -1: -2.0})
    assert s.alphas == [1.0, -2.0]


def test_bad_inputs_raise_clear_errors(tiny, axis):
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(InputError, match="finite"):
            steer(tiny, axis, layers=0, alpha=bad)
    with pytest.raises(InputError, match="finite"):
        steer(tiny, axis, layers=[0, 1], alpha={0: 1.0, 1: float("nan")})
    with pytest.raises(LayerError, match="out of range"):
        steer(tiny, axis, layers=2, alpha=1.0)
    with pytest.raises(LayerError, match="out of range"):
        steering_hook(axis, -3, 1.0)
    other = ValueAxis(torch.randn(2, 32), model_id=model_id(tiny))
    with pytest.raises(AxisMismatchError, match="d_model"):
        steer(tiny, other, layers=0, alpha=1.0)
    with pytest.raises(AxisMismatchError, match="d_model"):
        steer(tiny, torch.randn(32), layers=0, alpha=1.0)
    foreign = ValueAxis(torch.randn(2, 64), model_id="Qwen/Qwen3-8B")
    with pytest.raises(AxisMismatchError, match="fitted on"):
        steer(tiny, foreign, layers=0, alpha=1.0)
    with pytest.raises(InputError, match="unknown positions spec"):
        steer(tiny, axis, layers=0, alpha=1.0, positions="generated_only")
    # a mode is a registry name: an unknown one is an InputError naming the registered modes
    for call in (steer, inspect.unwrap(steer)):
        with pytest.raises(InputError, match="unknown steering mode.*'cap', 'rotate'"):
            call(tiny, axis, layers=0, alpha=1.0, mode="multiply")
    with pytest.raises(InputError, match="unknown steering mode"):
        steering_hook(axis, 0, 1.0, mode="multiply")
    # unit and point are Literal types: the suite's runtime checks refuse a bad one at the
    # call; untyped callers (the CLI, notebooks) get the InputError that names the choices
    unchecked = inspect.unwrap(steer)
    for bad_option, msg in (
        ({"unit": "furlongs"}, "unknown strength unit"),
        ({"point": "resid_mid"}, "unknown hook point"),
    ):
        with pytest.raises(TypeCheckError):
            steer(tiny, axis, layers=0, alpha=1.0, **bad_option)
        with pytest.raises(InputError, match=msg):
            unchecked(tiny, axis, layers=0, alpha=1.0, **bad_option)
        with pytest.raises(InputError, match=msg):
            inspect.unwrap(steering_hook)(axis, 0, 1.0, **bad_option)
    with pytest.raises(CalibrationError, match="calibrat"):
        steer(tiny, axis, layers=0, alpha=5.0, unit="percent")
    with pytest.raises(CalibrationError, match="calibrat"):
        steer(tiny, axis, layers=0, alpha=1.0, unit="sd")
    with pytest.raises(InputError, match="2 layers"):
        steer(tiny, axis, layers=[0, 1], alpha=[1.0])
    partial = ValueAxis(torch.randn(2, 64), layers=(1,), model_id=model_id(tiny))
    with pytest.raises(LayerError, match="no fitted direction"):
        steer(tiny, partial, layers=0, alpha=1.0)
    with pytest.raises(InputError, match="Steering"):  # untyped callers get the friendly error
        inspect.unwrap(generate)(
            tiny,
            "a",
            steer=("blocks.0.hook_resid_post", lambda t, hook: t),  # noqa: ARG005
        )


def test_plain_bridge_generate_inside_the_context_infers_the_prompt(tiny, axis):
    """Without value_lens.core.generate the first pass is taken as the prompt (single, unpadded)."""
    ids = _tokens(tiny, PROMPTS[1])
    with _record_logits(tiny) as ours:
        generate(
            tiny,
            PROMPTS[1],
            max_new_tokens=4,
            steer=steer(tiny, axis, layers=0, alpha=6.0, positions="generated"),
        )
    with _record_logits(tiny) as plain:
        with steer(tiny, axis, layers=0, alpha=6.0, positions="generated"):
            tiny.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
    torch.testing.assert_close(torch.cat(plain), torch.cat(ours), atol=1e-5, rtol=0)
    with _record_logits(tiny) as unsteered:
        tiny.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
    assert torch.equal(unsteered[0], plain[0])
    assert (unsteered[1] - plain[1]).abs().max() > 1e-2


def test_a_steering_for_another_model_is_refused(tiny, axis):
    from value_lens.testing import tiny_qwen3

    other = tiny_qwen3()
    with pytest.raises(InputError, match="another model"):
        generate(other, "a", steer=steer(tiny, axis, layers=0, alpha=1.0))


def test_the_axis_is_converted_once_at_the_door(tiny, axis):
    """A ValueAxis, its [L, d] tensor and its per-layer [d] rows give the same per-layer steers."""
    want = {layer: axis.direction(layer) for layer in (0, 1)}
    for src in (axis, axis.directions):
        s = steer(
            tiny,
            src,
            layers=[1, 0],
            alpha={-1: 2.0, 0: -1.0},
        )
        assert [x.layer for x in s.steers] == [0, 1]
        assert [x.hook for x in s.steers] == [f"blocks.{i}.hook_resid_post" for i in (0, 1)]
        assert s.alphas == s.raw_alphas == [-1.0, 2.0]
        for x in s.steers:
            torch.testing.assert_close(x.direction, want[x.layer], atol=1e-6, rtol=0)
    row = steer(tiny, axis.directions[1], layers=1, alpha=3.0).steers[0]
    torch.testing.assert_close(row.direction, want[1], atol=1e-6, rtol=0)
    # a [L, d] tensor from a model of another depth is refused, not silently indexed
    with pytest.raises(AxisMismatchError, match="3 rows"):
        steer(tiny, torch.randn(3, 64), layers=0, alpha=1.0)


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("spec", ["all", "generated", "prompt", "from:1"])
def test_first_pass_leaves_left_padding_alone_and_decoding_steps_follow_the_spec(spec, padded):
    """Hand-built masks: padding is never steered on the padded prompt pass, whatever the spec
    (and whether "all" skips building a mask), and one-token decoding steps are steered as the
    spec says."""
    u = torch.tensor([0.0, 1.0, 0.0])
    lens = torch.tensor([2, 4]) if padded else torch.tensor([4, 4])
    _, fn = steering_hook(u, 0, alpha=3.0, positions=spec, prompt_lens=lens, pads=4 - lens)
    prefill = fn(torch.zeros(2, 4, 3))[..., 1]
    real = [[0, 0, 1, 1] if padded else [1] * 4, [1] * 4]  # not padding
    want = {
        "all": real,
        "prompt": real,
        "generated": [[0] * 4] * 2,
        "from:1": [[0, 0, 0, 1] if padded else [0, 1, 1, 1], [0, 1, 1, 1]],  # prompt index >= 1
    }[spec]
    assert prefill.tolist() == [[3.0 * x for x in row] for row in want]
    for _ in range(2):
        step = fn(torch.zeros(2, 1, 3))[..., 1]
        assert step.tolist() == ([[0.0], [0.0]] if spec == "prompt" else [[3.0], [3.0]])
