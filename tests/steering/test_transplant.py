"""Value transplant against a two-run oracle: the donors' projections recorded in separate,
unsteered runs, then each host steered by hand in a plain HF forward pass. Also: donor == host is
a no-op, left padding (longer and shorter hosts) and the KV cache change nothing, a pair stops at
either row's stop token, and the matched constant-push control."""

from __future__ import annotations

import pytest
import torch

import value_lens as vl
import value_lens.core.generate as gen_mod
from value_lens.errors import InputError
from value_lens.steering.transplant import Transplant, transplant

DONORS = ["An honest answer is always", "Hi"]
HOSTS = ["Hi", "Once upon a time there was a small robot who wanted to"]  # shorter, longer
N_NEW = 6
LAYERS = [0, 1]
LAM = 0.7


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(13)
    return vl.ValueAxis(torch.randn(2, 64, generator=g) * 3, model_id=tiny.cfg.model_name)


def _donor_values(tiny, axis, prompt):
    """Run 1: the donor alone, unsteered; its projection at every layer and position."""
    mon = vl.monitor(axis, LAYERS, metric="projection")
    g = vl.generate(tiny, prompt, monitor=mon, max_new_tokens=N_NEW, stop_at_eos=False)[0]
    return g, g.trace.projection.double()  # [layers, P + n]


def _oracle(tiny_hf, axis, host, donor_vals, p_donor, positions):
    """Run 2: the host's tokens teacher-forced through HF, moved by hand at each layer."""
    hf, _ = tiny_hf
    seq = torch.cat([host.prompt_ids, host.output_ids])[None]
    p_host = host.prompt_ids.numel()
    pushes = {layer: [] for layer in LAYERS}

    def make(k, layer):
        u = axis.direction(layer)

        def hook(module, args, out):  # noqa: ARG001
            h = out[0] if isinstance(out, tuple) else out
            h = h.clone()
            for t in range(h.shape[1]):
                j = t - p_host + p_donor  # the donor position paired with host position t
                if (positions == "generated" and t < p_host) or j < 0:
                    continue
                push = LAM * (float(donor_vals[k, j]) - float(h[0, t] @ u))
                h[0, t] += push * u
                if t >= p_host:
                    pushes[layer].append(push)
            return (h, *out[1:]) if isinstance(out, tuple) else h

        return hook

    handles = [
        hf.model.layers[layer].register_forward_hook(make(k, layer))
        for k, layer in enumerate(LAYERS)
    ]
    try:
        with torch.no_grad():
            logits = hf(seq).logits[0, p_host - 1 : -1].double()
    finally:
        for h in handles:
            h.remove()
    return torch.log_softmax(logits, -1), pushes


@pytest.mark.parametrize("positions", ["generated", "all"])
def test_transplant_equals_the_two_run_oracle(tiny, tiny_hf, axis, positions):
    out = transplant(
        tiny,
        axis,
        DONORS,
        HOSTS,
        layers=LAYERS,
        lam=LAM,
        positions=positions,
        max_new_tokens=N_NEW,
        stop_at_eos=False,
        token_stats=True,
    )
    assert len(out) == len(out.donors) == 2
    for k, (donor_prompt, host) in enumerate(zip(DONORS, out, strict=True)):
        solo, vals = _donor_values(tiny, axis, donor_prompt)
        assert out.donors[k].output_ids.tolist() == solo.output_ids.tolist()  # donors untouched
        logp, pushes = _oracle(tiny_hf, axis, host, vals, solo.prompt_ids.numel(), positions)
        assert host.output_ids.tolist() == logp.argmax(-1).tolist()  # greedy under the oracle
        chosen = logp.gather(-1, host.output_ids[:, None])[:, 0]
        torch.testing.assert_close(host.token_stats["logprob"], chosen, atol=2e-4, rtol=0)
        ent = -(logp.exp() * logp).sum(-1)
        torch.testing.assert_close(host.token_stats["entropy"], ent, atol=2e-4, rtol=0)
        for layer in LAYERS:
            row = out.pushes.query("host == @k and layer == @layer").iloc[0]
            # without stop tokens the last kept token is never fed back: N_NEW - 1 positions
            fed = pushes[layer][: N_NEW - 1]
            if positions == "generated":
                assert row["moved"] == len(fed) == N_NEW - 1
                assert row["mean_push"] == pytest.approx(sum(fed) / len(fed), abs=1e-4)
    # the transplant did something: pushes are not negligible and the hosts' log-probs moved
    assert out.pushes["mean_abs_push"].min() > 1e-3
    plain = vl.generate(tiny, HOSTS, max_new_tokens=N_NEW, stop_at_eos=False, token_stats=True)
    moved = [
        (a.token_stats["logprob"] - b.token_stats["logprob"]).abs().max()
        for a, b in zip(out, plain, strict=True)
        if a.output_ids.tolist() == b.output_ids.tolist()
    ]
    assert all(m > 1e-4 for m in moved)


def test_donor_equal_to_host_is_a_no_op(tiny, axis):
    prompts = ["The value of a plan", "Hi"]
    out = transplant(
        tiny,
        axis,
        prompts,
        prompts,
        layers=LAYERS,
        lam=1.0,
        positions="all",
        max_new_tokens=N_NEW,
        token_stats=True,
    )
    same = vl.generate(
        tiny,
        [p for p in prompts for _ in (0, 1)],
        max_new_tokens=N_NEW,
        batch_size=4,
        token_stats=True,
    )[1::2]
    for a, b in zip(out, same, strict=True):
        assert a.output_ids.tolist() == b.output_ids.tolist()
        torch.testing.assert_close(
            a.token_stats["logprob"], b.token_stats["logprob"], atol=1e-6, rtol=0
        )
    assert out.pushes["mean_abs_push"].abs().max() < 1e-5


def test_the_kv_cache_and_the_loop_change_nothing(tiny, axis):
    runs = [
        transplant(
            tiny,
            axis,
            DONORS,
            HOSTS,
            layers=LAYERS,
            lam=LAM,
            positions="all",
            max_new_tokens=N_NEW,
            stop_at_eos=False,
            token_stats=True,
            **kw,
        )
        for kw in ({}, {"use_cache": False}, {"backend": "bridge"})
    ]
    ref = runs[0]
    assert [g.backend for g in ref] == ["hf", "hf"] and runs[2][0].backend == "bridge"
    for other in runs[1:]:
        for a, b in zip(ref, other, strict=True):
            assert a.output_ids.tolist() == b.output_ids.tolist()
            torch.testing.assert_close(
                a.token_stats["logprob"], b.token_stats["logprob"], atol=1e-4, rtol=0
            )
        torch.testing.assert_close(
            ref.pushes["mean_push"], other.pushes["mean_push"], atol=1e-4, rtol=0
        )
        assert ref.pushes["moved"].tolist() == other.pushes["moved"].tolist()


def test_a_pair_stops_at_either_rows_stop_token(tiny, axis, monkeypatch):
    free = transplant(
        tiny, axis, DONORS, HOSTS, layers=1, lam=LAM, max_new_tokens=N_NEW, stop_at_eos=False
    )
    stop = int(free.donors[0].output_ids[2])  # plant: the first donor "ends" at its third token
    monkeypatch.setattr(gen_mod, "_stop_ids", lambda _model: [stop])
    out = transplant(tiny, axis, DONORS, HOSTS, layers=1, lam=LAM, max_new_tokens=N_NEW)
    ends = []
    for d, h in zip(out.donors, out, strict=True):
        ids_d, ids_h = d.output_ids.tolist(), h.output_ids.tolist()
        ends.append(
            min(
                len(ids_d) if len(ids_d) < N_NEW else N_NEW,
                len(ids_h) if len(ids_h) < N_NEW else N_NEW,
            )
        )
    assert out.donors[0].n_tokens <= 2
    assert out.pushes.sort_values("host")["moved"].tolist() == ends


def test_the_control_is_a_constant_push_of_the_mean_transplant(tiny, axis):
    out = transplant(
        tiny,
        axis,
        DONORS,
        HOSTS,
        layers=1,
        lam=LAM,
        max_new_tokens=N_NEW,
        stop_at_eos=False,
        control=True,
        token_stats=True,
    )
    assert out.control is not None and len(out.control) == 2
    for k, host_prompt in enumerate(HOSTS):
        a = float(out.pushes.query("host == @k")["mean_push"].iloc[0])
        got = out.control[k].token_stats["logprob"]
        for mult, close in ((1.0, True), (2.0, False)):  # the push of the mean, not another
            st = vl.steer(tiny, axis, layers=1, alpha=mult * a, positions="generated")
            alone = vl.generate(
                tiny,
                host_prompt,
                max_new_tokens=N_NEW,
                stop_at_eos=False,
                steer=st,
                token_stats=True,
            )[0]
            assert out.control[k].output_ids.tolist() == alone.output_ids.tolist()
            gap = float((alone.token_stats["logprob"] - got).abs().max())
            assert (gap < 1e-5) == close, (mult, gap)


def test_bad_pairs_are_refused(tiny, axis):
    with pytest.raises(InputError, match="one donor per host"):
        transplant(tiny, axis, DONORS, HOSTS + ["x"], layers=1)
    with pytest.raises(InputError, match="at least one host"):
        transplant(tiny, axis, DONORS, [], layers=1)
    one = transplant(tiny, axis, ["a donor"], HOSTS, layers=1, max_new_tokens=2)
    assert [d.prompt for d in one.donors] == ["a donor", "a donor"]
    with pytest.raises(InputError, match="pairs"):
        Transplant(lam=1.0)(torch.zeros(3, 2, 64), axis.direction(0))
    h = torch.randn(2, 3, 64)
    u = axis.direction(0)
    out = Transplant(lam=1.0)(h, u)  # a plain forward: the host takes the donor's projection
    torch.testing.assert_close(out[1] @ u, h[0] @ u, atol=1e-5, rtol=0)
    assert torch.equal(out[0], h[0])
