"""value_lens relies only on the shared TransformerLens hook API, not on the bridge.

``MiniHooked`` is a small causal model built on ``HookedRootModule``/``HookPoint`` (the base of
TransformerLens 3.x ``HookedTransformer``), with the same hook names. Collection, readout and
steering must work on it exactly as on the bridge.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule

from tests._oracle import random_data
from value_lens import ValueAxis, collect_stats, steer, trace
from value_lens.testing import hook_count, tiny_tokenizer


class MiniBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.hook_resid_pre = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        steps = torch.arange(1, x.shape[1] + 1, device=x.device)[None, :, None]
        causal_mean = x.cumsum(dim=1) / steps  # each position sees only its prefix
        return self.hook_resid_post(x + self.mlp(causal_mean))


class MiniHooked(HookedRootModule):
    def __init__(self, n_layers: int = 3, d: int = 32) -> None:
        super().__init__()
        self.tokenizer = tiny_tokenizer()
        vocab = len(self.tokenizer)
        self.cfg = SimpleNamespace(
            n_layers=n_layers,
            d_model=d,
            n_ctx=256,
            model_name="mini-hooked",
            default_prepend_bos=False,
            device="cpu",
        )
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([MiniBlock(d) for _ in range(n_layers)])
        self.unembed = nn.Linear(d, vocab)
        self.setup()

    def forward(self, tokens: torch.Tensor, **_: object) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.unembed(x)


@pytest.fixture(scope="module")
def mini():
    torch.manual_seed(0)
    return MiniHooked().eval()


def _resid(model, ids, layer):
    with torch.no_grad():
        _, cache = model.run_with_cache(ids[None], names_filter=f"blocks.{layer}.hook_resid_post")
    return cache[f"blocks.{layer}.hook_resid_post"][0]


def test_collect_and_trace_match_the_models_own_cache(mini):
    data = random_data(6, len(mini.tokenizer), seed=4)
    axis = ValueAxis.fit(collect_stats(mini, data, batch_size=3, progress=False))
    for layer in range(3):
        diffs = []
        for g in data.group_names:
            a = [
                _resid(mini, x, layer)[lab == 1]
                for x, lab, gg in zip(data.input_ids, data.labels, data.groups, strict=True)
                if gg == g
            ]
            b = [
                _resid(mini, x, layer)[lab == 0]
                for x, lab, gg in zip(data.input_ids, data.labels, data.groups, strict=True)
                if gg == g
            ]
            diffs.append(torch.cat(a).double().mean(0) - torch.cat(b).double().mean(0))
        torch.testing.assert_close(
            axis.directions[layer].double(), torch.stack(diffs).mean(0), atol=1e-5, rtol=1e-4
        )
    tr = trace(mini, data.input_ids[0], axis, layers=[1])
    h = _resid(mini, data.input_ids[0], 1)
    torch.testing.assert_close(tr.projection[0], h @ axis.direction(1), atol=1e-5, rtol=1e-5)


def test_steering_adds_exactly_alpha_v_and_cleans_up(mini):
    ids = torch.tensor([5, 9, 17, 33, 60])
    axis = ValueAxis(
        torch.randn(3, 32, generator=torch.Generator().manual_seed(3)), model_id="mini-hooked"
    )
    mini(ids[None])
    start = hook_count(mini)
    base = _resid(mini, ids, 1)
    with steer(mini, axis, layers=1, alpha=2.5):
        steered = _resid(mini, ids, 1)
        assert hook_count(mini) > start
    torch.testing.assert_close(
        steered - base, (2.5 * axis.direction(1)).expand_as(base), atol=1e-5, rtol=0
    )
    assert hook_count(mini) == start
    with pytest.raises(RuntimeError, match="boom"), steer(mini, axis, layers=1, alpha=1.0):
        raise RuntimeError("boom")
    assert hook_count(mini) == start
    torch.testing.assert_close(_resid(mini, ids, 1), base)


def test_steering_with_legacy_add_hook_that_returns_nothing(mini, monkeypatch):
    """TransformerLens < 4 ``HookPoint.add_hook`` returns None; steering must still clean up."""
    original = HookPoint.add_hook

    def legacy_add_hook(self, *args, **kwargs):
        original(self, *args, **kwargs)

    monkeypatch.setattr(HookPoint, "add_hook", legacy_add_hook)
    ids = torch.tensor([5, 9, 17])
    axis = ValueAxis(
        torch.randn(3, 32, generator=torch.Generator().manual_seed(4)), model_id="mini-hooked"
    )
    start = hook_count(mini)
    base = _resid(mini, ids, 2)
    with steer(mini, axis, layers=2, alpha=-1.5):
        torch.testing.assert_close(
            _resid(mini, ids, 2) - base,
            (-1.5 * axis.direction(2)).expand_as(base),
            atol=1e-5,
            rtol=0,
        )
    assert hook_count(mini) == start
    assert all(not hp.fwd_hooks for hp in mini.hook_dict.values())
