"""The steering operators against independent oracles: cap vs a hooked HF forward applying the
formula by hand (untouched tokens bit-identical, moved tokens counted), rotate vs a rotation
matrix from matrix_exp (norms, identity, 180 degrees), calibrate_cap vs HF hidden states, and the
registry's contract (named modes, operator objects, callables, user registration, errors)."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from value_lens.core.model import model_id
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.modes import MODES, Cap, Rotate, calibrate_cap
from value_lens.steering.operator import ModeRegistry, Operator, strength_field
from value_lens.steering.steer import steer, steering_hook
from value_lens.steering.strength import Calibration

TEXT = "a much longer prompt about code and tests here, with more words"


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(5)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


def _ids(tiny_hf, text=TEXT):
    return torch.tensor([tiny_hf[1](text, add_special_tokens=False)["input_ids"]])


def _resid(model, ids, layer):
    name = f"blocks.{layer}.hook_resid_post"
    _, cache = model.run_with_cache(ids, names_filter=name)
    return cache[name]


def _hf_logits(tiny_hf, ids, layer, fn):
    """HF oracle: decoder layer ``layer``'s output replaced by ``fn(output)``."""
    hf, _ = tiny_hf

    def hook(module, args, out):  # noqa: ARG001
        return (fn(out[0]), *out[1:]) if isinstance(out, tuple) else fn(out)

    handle = hf.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf(ids).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("side", ["floor", "ceiling", "band"])
def test_cap_equals_a_hooked_hf_forward_and_leaves_other_tokens_bit_identical(
    tiny, tiny_hf, axis, side
):
    ids = _ids(tiny_hf)
    u = axis.direction(1)
    base = _resid(tiny, ids, 1)
    p = (base.double() @ u.double())[0]
    srt = p.sort().values  # thresholds halfway between tokens: no token sits on a boundary
    k_lo, k_hi = int(0.3 * p.numel()), int(0.7 * p.numel())
    lo, hi = float(srt[k_lo : k_lo + 2].mean()), float(srt[k_hi : k_hi + 2].mean())
    kw = {"floor": {"floor": lo}, "ceiling": {"ceiling": hi}, "band": {"floor": lo, "ceiling": hi}}
    bounds = kw[side]

    def by_hand(h):
        q = (h @ u)[..., None]
        f, c = bounds.get("floor"), bounds.get("ceiling")
        if f is not None:
            h = h + torch.clamp(f - q, min=0.0) * u
        if c is not None:
            h = h - torch.clamp(q - c, min=0.0) * u
        return h

    want = _hf_logits(tiny_hf, ids, 1, by_hand)
    s = steer(tiny, axis, layers=1, mode="cap", **bounds)
    with torch.no_grad(), s:
        got = tiny(ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with s:
        capped = _resid(tiny, ids, 1)[0]
    inside = torch.ones_like(p, dtype=torch.bool)
    if "floor" in bounds:
        inside &= p >= lo
    if "ceiling" in bounds:
        inside &= p <= hi
    assert 0 < int(inside.sum()) < p.numel()
    assert torch.equal(capped[inside], base[0][inside])  # untouched, bit for bit
    q = capped.double() @ u.double()
    assert (q[~inside] >= lo - 1e-4).all() if "floor" in bounds else True
    assert (q[~inside] <= hi + 1e-4).all() if "ceiling" in bounds else True
    # the steering counted exactly the moved tokens (two activations: logits, then the cache)
    assert s.moved_tokens() == {1: 2 * int((~inside).sum())}


def test_cap_alpha_is_the_floor_or_the_ceiling_and_units_scale_tau(tiny, axis):
    assert MODES.build("cap", alpha=2.0) == Cap(floor=2.0)
    assert MODES.build("cap", alpha=2.0, params={"ceiling": None}) == Cap(floor=2.0)
    assert Cap(ceiling=1.0).with_strength(3.0) == Cap(ceiling=3.0)
    cal = Calibration(proj_std={0: 4.0, 1: 2.0})
    s = steer(tiny, axis, layers=[0, 1], mode="cap", floor=1.5, unit="sd", calibration=cal)
    assert [x.op.floor for x in s.steers] == [6.0, 3.0]
    assert s.alphas == [1.5, 1.5] and s.raw_alphas == [6.0, 3.0]
    per = steer(tiny, axis, layers=[0, 1], mode="cap", ceiling={0: 1.0, -1: 2.0})
    assert [x.op.ceiling for x in per.steers] == [1.0, 2.0]
    with pytest.raises(InputError, match="floor=tau and/or ceiling=tau"):
        steer(tiny, axis, layers=0, mode="cap")
    with pytest.raises(InputError, match="above its ceiling"):
        steer(tiny, axis, layers=0, mode="cap", floor=2.0, ceiling=1.0)
    with pytest.raises(InputError, match="once"):
        steer(tiny, axis, layers=0, mode="cap", alpha=1.0, floor=1.0)


def test_calibrate_cap_is_the_quantile_of_hf_hidden_state_projections(tiny, tiny_hf, axis):
    hf, tok = tiny_hf
    texts = ["the first neutral text about nothing", "another one, a little longer than that"]
    taus = calibrate_cap(tiny, axis, texts, quantile=0.2, layers=[0, 1])
    for layer in (0, 1):
        u = axis.direction(layer).double()
        pool = []
        for t in texts:  # decoder layer `layer`'s output (hidden_states[-1] is post-norm)
            ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"]])
            seen = []
            handle = hf.model.layers[layer].register_forward_hook(
                lambda _m, _a, out, seen=seen: seen.append(
                    out[0] if isinstance(out, tuple) else out
                )
            )
            try:
                with torch.no_grad():
                    hf(ids)
            finally:
                handle.remove()
            pool.append(seen[0][0, 1:].double() @ u)
        want = float(torch.quantile(torch.cat(pool), 0.2))
        assert taus[layer] == pytest.approx(want, abs=1e-4)
    assert taus[0] != taus[1]
    with pytest.raises(InputError, match="quantile"):
        calibrate_cap(tiny, axis, texts, quantile=1.0)
    with pytest.raises(InputError, match="no texts"):
        calibrate_cap(tiny, axis, [])


def _rotation_oracle(h, u, degrees):
    """R h with R = matrix_exp(t (e1 e2^T - e2 e1^T)) in the plane of e1 = u and h (float64)."""
    out = torch.empty_like(h, dtype=torch.float64)
    e1 = (u / u.norm()).double()
    for idx in range(h.shape[0]):
        x = h[idx].double()
        rest = x - (x @ e1) * e1
        e2 = rest / rest.norm()
        gen = torch.outer(e1, e2) - torch.outer(e2, e1)
        out[idx] = torch.linalg.matrix_exp(math.radians(degrees) * gen) @ x
    return out


@pytest.mark.parametrize("degrees", [0.0, 17.0, 90.0, -45.0, 180.0, 300.0])
def test_rotate_matches_a_matrix_exponential_and_preserves_norms(degrees):
    g = torch.Generator().manual_seed(int(degrees) % 97)
    u = torch.randn(64, generator=g)
    h = torch.randn(3, 5, 64, generator=g) * 20 + 7 * u / u.norm()
    out = Rotate(angle=degrees)(h, u / u.norm())
    want = _rotation_oracle(h.reshape(-1, 64), u, degrees).reshape(h.shape)
    torch.testing.assert_close(out.double(), want, atol=2e-4, rtol=1e-5)
    ratio = out.double().norm(dim=-1) / h.double().norm(dim=-1)
    assert (ratio - 1).abs().max() < 2e-6  # the norm is kept up to float32 rounding
    if degrees == 0.0:
        assert torch.equal(out, h)
    if degrees == 180.0:
        uh = u / u.norm()
        torch.testing.assert_close(out @ uh, -(h @ uh), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(out, -h, atol=1e-4, rtol=1e-5)


def test_rotate_turns_toward_u_and_leaves_tokens_on_the_u_line_alone():
    u = torch.tensor([0.0, 1.0, 0.0])
    h = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0]]])
    out = Rotate(angle=90.0)(h, 5 * u)  # normalised inside: a scaled direction gives the same
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 2.0, 0.0]), atol=1e-6, rtol=0)
    assert torch.equal(out[0, 1], h[0, 1])
    cos = float(out[0, 2] @ u / out[0, 2].norm())
    # 45 degrees from u, turned 90 degrees toward it: 45 degrees past it, on the other side
    assert cos == pytest.approx(math.cos(math.radians(45.0 - 90.0)), abs=1e-6)
    assert float(out[0, 2, 0]) < 0 < float(out[0, 2, 1])


def test_rotate_in_a_model_equals_the_hooked_hf_forward_and_takes_degrees(tiny, tiny_hf, axis):
    ids = _ids(tiny_hf)
    u = axis.direction(0)
    want = _hf_logits(
        tiny_hf,
        ids,
        0,
        lambda h: _rotation_oracle(h[0], u, 40.0).float()[None],
    )
    with torch.no_grad(), steer(tiny, axis, layers=0, mode="rotate", angle=40.0) as s:
        got = tiny(ids)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert s.raw_alphas == [40.0] and repr(s).startswith("Steering(mode='rotate', angle=")
    with pytest.raises(InputError, match="leave unit='raw'"):
        steer(tiny, axis, layers=0, mode="rotate", angle=10.0, unit="percent")


def test_named_modes_operator_objects_and_callables_steer_the_same(tiny, tiny_hf, axis):
    ids = _ids(tiny_hf)
    u = axis.direction(1)

    def run(**kw):
        with torch.no_grad(), steer(tiny, axis, layers=1, **kw):
            return tiny(ids)

    named = run(mode="clamp", alpha=2.0)
    torch.testing.assert_close(run(mode=MODES["clamp"](alpha=2.0)), named, atol=0, rtol=0)
    by_fn = run(mode=lambda h, v: h + (2.0 - (h @ v)[..., None]) * v)
    torch.testing.assert_close(by_fn, named, atol=1e-5, rtol=0)
    want = _hf_logits(tiny_hf, ids, 1, lambda h: h + (2.0 - (h @ u)[..., None]) * u)
    torch.testing.assert_close(named, want, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="shape"):
        run(mode=lambda h, v: h[..., :3])  # noqa: ARG005
    with pytest.raises(InputError, match="carries its own strengths"):
        steer(tiny, axis, layers=1, mode=Cap(floor=1.0), alpha=2.0)
    with pytest.raises(InputError, match="takes"):
        steer(tiny, axis, layers=1, mode="rotate", degrees=3.0)


def test_a_user_mode_is_one_class_and_one_registration(tiny, tiny_hf, axis):
    @dataclass(frozen=True)
    class Flip(Operator):
        name: ClassVar[str] = "flip_test"
        neutral: ClassVar[float | None] = 1.0
        scale: float = strength_field(1.0)

        def __call__(self, h, u):
            return h - (1.0 + self.scale) * (h @ u)[..., None] * u

    reg = ModeRegistry()
    assert reg.register(Flip) is Flip and list(reg) == ["flip_test"]
    with pytest.raises(InputError, match="new, non-empty name"):
        reg.register(Flip)
    with pytest.raises(InputError, match="Operator subclass"):
        inspect.unwrap(ModeRegistry.register)(reg, dict)
    op = reg.build("flip_test", alpha=1.0)
    ids = _ids(tiny_hf)
    u = axis.direction(0)
    with torch.no_grad(), steer(tiny, axis, layers=0, mode=op):
        got = tiny(ids)
    want = _hf_logits(tiny_hf, ids, 0, lambda h: h - 2.0 * (h @ u)[..., None] * u)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_only_unit_strengths_are_converted(tiny, axis):
    """A mode with a unit strength and a unit-free one: sd scales the first, not the second."""

    @dataclass(frozen=True)
    class PushTurn(Operator):
        name: ClassVar[str] = "push_turn_test"
        alpha: float = strength_field(0.0)
        angle: float = strength_field(0.0, unit=False)

        def __call__(self, h, u):
            return Rotate(angle=self.angle)(h + self.alpha * u, u)

    cal = Calibration(proj_std={0: 4.0})
    s = steer(
        tiny, axis, layers=0, mode=PushTurn(alpha=1.5, angle=30.0), unit="sd", calibration=cal
    )
    assert (s.steers[0].op.alpha, s.steers[0].op.angle) == (6.0, 30.0)
    assert s.alphas == [1.5] and s.raw_alphas == [6.0]


def test_steering_hook_takes_every_mode_and_its_parameters(axis):
    h = torch.randn(1, 4, 64) * 3
    u = axis.direction(0)
    for mode, kw in (("cap", {"floor": 0.5}), ("rotate", {"angle": 30.0}), ("ablate", {})):
        _, fn = steering_hook(axis, 0, mode=mode, **kw)
        torch.testing.assert_close(fn(h), MODES.build(mode, None, kw)(h, u), atol=1e-6, rtol=0)
