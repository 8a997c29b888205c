"""Every registered steering mode decodes correctly on both loops (the bridge's and the fast
path), with and without the KV cache, on a left-padded batch: each step's logits equal those of a
teacher-forced, unpadded, single-row forward pass steered at the same real positions."""

from __future__ import annotations

import pytest
import torch

from value_lens.core.decoding import DecodeRequest, decode_batch
from value_lens.core.model import model_id
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.modes import MODES
from value_lens.steering.steer import steer

PROMPTS = ["The value of a plan", "Hi", "Once upon a time there was a small robot who"]
N_NEW = 5

#: one setting per registered mode, strong enough to change greedy tokens on the tiny model
SETTINGS = {
    "add": {"alpha": 6.0},
    "ablate": {},
    "clamp": {"alpha": 3.0},
    "cap": {"floor": 0.02},
    "rotate": {"angle": 60.0},
}


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(7)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


def test_every_registered_mode_has_a_setting_here():
    assert set(SETTINGS) == set(MODES), "add the new mode to SETTINGS so both loops are checked"


def _batch(model):
    ids = [torch.tensor(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    lens = torch.tensor([x.numel() for x in ids])
    width = int(lens.max())
    tokens = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for j, x in enumerate(ids):
        tokens[j, width - x.numel() :] = x
        mask[j, width - x.numel() :] = 1
    return ids, tokens, mask, lens, width - lens


def _decode(model, steering, backend, use_cache):
    ids, tokens, mask, lens, pads = _batch(model)
    req = DecodeRequest(tokens, mask, N_NEW, 0.0, 1.0, [], 0, use_cache, logits=True)
    with torch.no_grad(), steering.activate(prompt_lens=lens, pads=pads):
        seqs, logits = decode_batch(model, req, backend)
    return ids, seqs[:, tokens.shape[1] :], torch.stack(logits, 1)


def _oracle(model, axis, mode, kw, prompt, new, positions):
    seq = torch.cat([prompt, new])[None]
    p, n = prompt.numel(), seq.shape[1]
    sel = torch.zeros(n, dtype=torch.bool)
    sel[p if positions == "generated" else 0 :] = True
    with torch.no_grad(), steer(model, axis, layers=[0, 1], mode=mode, positions=sel, **kw):
        logits = model(seq)[0]
    return logits[p - 1 : p - 1 + new.numel()]


@pytest.mark.parametrize("mode", sorted(SETTINGS))
@pytest.mark.parametrize("positions", ["all", "generated"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_both_loops_equal_the_unpadded_full_recompute(tiny, axis, mode, positions, use_cache):
    kw = SETTINGS[mode]
    s = steer(tiny, axis, layers=[0, 1], mode=mode, positions=positions, **kw)
    out = {b: _decode(tiny, s, b, use_cache) for b in ("hf", "bridge")}
    ids, new_hf, log_hf = out["hf"]
    _, new_br, log_br = out["bridge"]
    assert torch.equal(new_hf, new_br)
    torch.testing.assert_close(log_hf, log_br, atol=1e-5, rtol=0)
    for b, prompt in enumerate(ids):
        want = _oracle(tiny, axis, mode, kw, prompt, new_hf[b], positions)
        torch.testing.assert_close(log_hf[b, : want.shape[0]], want, atol=1e-4, rtol=0)
    # and the mode did steer: the unsteered logits differ
    with torch.no_grad():
        plain = steer(tiny, axis, layers=0, mode="add", alpha=0.0)
        _, _, log_0 = _decode(tiny, plain, "hf", use_cache)
    assert (log_0 - log_hf).abs().max() > 1e-3
    assert sum(s.moved_tokens().values()) > 0
