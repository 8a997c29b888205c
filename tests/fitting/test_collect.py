import pytest
import torch

import value_lens.fitting.collect as collect
from tests._oracle import hidden_states, oracle_mean_diff, random_data
from value_lens import ValueAxis, collect_stats, load_model
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError, NonFiniteActivationError
from value_lens.fitting.stats import ActivationStats
from value_lens.testing import hook_count, tiny_qwen3_hf


@pytest.mark.parametrize("tied", [True, False])
def test_mean_diff_equals_hf_hidden_states_oracle(tied):
    hf, tok = tiny_qwen3_hf(n_layers=3, tied=tied)
    model = load_model(hf, tokenizer=tok)
    data = random_data(9, len(tok))
    axis = ValueAxis.fit(collect_stats(model, data, batch_size=4, progress=False))
    # the last block's HF hidden state is post-final-norm, so the oracle covers blocks 0..n-2
    for layer in range(2):
        ref = oracle_mean_diff(hf, data, layer)
        torch.testing.assert_close(axis.directions[layer].double(), ref, atol=1e-5, rtol=1e-4)


def test_counts_sums_and_norms_by_hand(tiny, tiny_hf):
    hf, _ = tiny_hf
    data = random_data(5, 300, seed=3)
    stats = collect_stats(tiny, data, batch_size=2, progress=False)
    assert stats.classes == [0, 1, 2]
    assert stats.count.sum().item() == sum(int((lab >= 0).sum()) for lab in data.labels)
    g = stats.groups.index("a")
    manual = torch.zeros(tiny.cfg.d_model, dtype=torch.float64)
    norms = 0.0
    for ids, lab, grp in zip(data.input_ids, data.labels, data.groups, strict=True):
        h = hidden_states(hf, ids)[1][0].double()
        norms += h[lab >= 0].norm(dim=-1).sum().item()
        if grp == "a":
            manual += h[lab == 1].sum(0)
    torch.testing.assert_close(stats.sum[0, g, stats.class_index(1)], manual, atol=1e-5, rtol=1e-5)
    assert stats.norm_sum[0].sum().item() == pytest.approx(norms, rel=1e-5)


def test_padding_and_batch_size_do_not_change_the_result(tiny):
    data = random_data(7, 300, seed=1)
    a = collect_stats(tiny, data, batch_size=1, progress=False)
    b = collect_stats(tiny, data, batch_size=7, progress=False)
    assert torch.equal(a.count, b.count)
    torch.testing.assert_close(a.sum, b.sum, atol=1e-5, rtol=1e-6)


def test_sharded_stats_sum_to_unsharded(tiny, tmp_path):
    data = random_data(8, 300, seed=2)
    kw = dict(batch_size=1, progress=False, moments=True, sample_per_class=6)
    full = collect_stats(tiny, data, **kw)
    parts = [collect_stats(tiny, data.subset(range(i, 8, 3)), **kw) for i in range(3)]
    total = parts[0] + parts[1] + parts[2]
    total.save(tmp_path / "s.safetensors")
    total = ActivationStats.load(tmp_path / "s.safetensors")
    order = [total.groups.index(g) for g in full.groups]
    assert torch.equal(total.count[order], full.count)
    assert torch.equal(total.sum[:, order], full.sum)
    torch.testing.assert_close(total.norm_sum[:, order], full.norm_sum)
    for a, b in zip(total.moments.tensors(), full.moments.tensors(), strict=True):
        torch.testing.assert_close(a, b)
    # the reservoir of the union is exactly the union's reservoir
    assert torch.equal(total.sample.keys, full.sample.keys)
    assert torch.equal(total.sample.x, full.sample.x)


@pytest.mark.parametrize("layers", [[0], [1], [0, 1]])
def test_only_needed_hooks_run_and_the_pass_stops_after_the_deepest(tiny, monkeypatch, layers):
    tiny(torch.tensor([[5, 6, 7]]))  # the bridge installs internal hooks on its first forward
    ran = {"block1": 0, "ln_final": 0, "unembed": 0}

    def counter(name):
        def fn(*_):
            ran[name] += 1

        return fn

    handles = [
        tiny.blocks[1].register_forward_pre_hook(counter("block1")),
        tiny.ln_final.register_forward_hook(counter("ln_final")),
        tiny.unembed.register_forward_hook(counter("unembed")),
    ]
    try:
        tiny(torch.tensor([[5, 6, 7]]))  # the counters see a full forward
        assert ran == {"block1": 1, "ln_final": 1, "unembed": 1}
        ran.update(dict.fromkeys(ran, 0))
        start = hook_count(tiny)
        reads = []  # (layer, hooks installed beyond the model's own) at each read
        real_read = collect._Accumulator.read

        def spy(self, layer, resid, b):
            reads.append((layer, hook_count(tiny) - start))
            real_read(self, layer, resid, b)

        monkeypatch.setattr(collect._Accumulator, "read", spy)
        data = random_data(6, 300)
        stats = collect_stats(tiny, data, layers=layers, batch_size=2, progress=False)
    finally:
        for h in handles:
            h.remove()
    # one hook per requested layer, each read once per batch, in depth order
    assert reads == [(layer, len(layers)) for _ in range(3) for layer in layers]
    # nothing after the deepest requested block runs: not block 1 for layers=[0], and never
    # the final norm or the unembedding
    assert ran == {"block1": 3 if max(layers) == 1 else 0, "ln_final": 0, "unembed": 0}
    assert stats.layers == layers and hook_count(tiny) == start - len(handles)


def test_hooks_are_removed_after_an_exception_mid_collection(tiny):
    tiny(torch.tensor([[5, 6, 7]]))  # the bridge installs internal hooks on its first forward
    start = hook_count(tiny)
    data = random_data(4, 300)
    calls = {"n": 0}

    def boom(resid, hook):  # noqa: ARG001
        calls["n"] += 1
        raise RuntimeError("user hook failed")

    with pytest.raises(RuntimeError, match="user hook failed"):
        with tiny.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", boom)]):
            collect_stats(tiny, data, progress=False)
    assert calls["n"] == 1
    assert hook_count(tiny) == start


def test_nan_activations_name_layer_and_batch(tiny):
    tiny(torch.tensor([[5, 6, 7]]))
    start = hook_count(tiny)
    data = random_data(4, 300)

    def poison(resid, hook):  # noqa: ARG001
        return resid * float("nan")

    with tiny.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", poison)]):
        with pytest.raises(NonFiniteActivationError, match="layer 1 in batch 0"):
            collect_stats(tiny, data, progress=False)
    assert hook_count(tiny) == start


def test_bad_inputs(tiny):
    with pytest.raises(InputError, match="empty"):
        collect_stats(tiny, LabelledTokens([], [], []), progress=False)
    only_ignored = LabelledTokens.from_lists([[5, 6]], [[-1, -1]], ["g"])
    with pytest.raises(InputError, match="IGNORE"):
        collect_stats(tiny, only_ignored, progress=False)
    too_long = LabelledTokens(
        [torch.full((3000,), 7)], [torch.zeros(3000, dtype=torch.long)], ["g"]
    )
    with pytest.raises(InputError, match="sequence 0 has 3000 tokens"):
        collect_stats(tiny, too_long, progress=False)
    stats = collect_stats(tiny, too_long, truncate=True, progress=False)
    assert stats.n_tokens == tiny.cfg.n_ctx


def _tensor_bytes(obj, seen=None) -> int:
    """Bytes of every tensor reachable from ``obj``'s attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return _tensor_bytes(vars(obj), seen)
    return 0


@pytest.mark.parametrize("n_seqs", [3, 30])
def test_accumulator_memory_is_exact_and_flat_in_tokens(tiny, monkeypatch, n_seqs):
    # fp64 sums [L, G*C, D] + fp64 norm sums [L, G*C] + int64 counts [G*C]; nothing per token
    L, G, C, D = 2, 3, 3, tiny.cfg.d_model
    expected = 8 * (L * G * C * D + L * G * C + G * C)
    sizes = []
    real_read = collect._Accumulator.read

    def spy(self, layer, resid, b):
        real_read(self, layer, resid, b)
        sizes.append(_tensor_bytes(self))

    monkeypatch.setattr(collect._Accumulator, "read", spy)
    stats = collect_stats(tiny, random_data(n_seqs, 300), batch_size=2, progress=False)
    assert len(sizes) == L * -(-n_seqs // 2)  # every read of every batch was measured
    assert set(sizes) == {expected}
    assert _tensor_bytes([stats.count, stats.sum, stats.norm_sum]) == expected


@pytest.mark.slow
def test_smollm_mean_diff_matches_hf_oracle(smollm, smollm_hf):
    hf, _ = smollm_hf
    data = random_data(3, 49152, seed=5)
    stats = collect_stats(smollm, data, layers=[4, 20], progress=False)
    axis = ValueAxis.fit(stats)
    for layer in (4, 20):
        ref = oracle_mean_diff(hf, data, layer)
        torch.testing.assert_close(axis.directions[layer].double(), ref, atol=2e-3, rtol=1e-3)


def test_plan_and_run_options_are_records_and_keywords_fold_into_them(tiny):
    """collect_stats(model, data, plan, run): what to collect and how to run it; the keyword
    shortcuts give the same statistics, and an unknown keyword names both records."""
    from value_lens.fitting.collect import CollectRun
    from value_lens.fitting.plan import CollectPlan

    data = LabelledTokens.from_lists([[10, 11, 12, 13, 14]] * 2, [[-1, 0, 0, 1, 1]] * 2, "ab")
    a = collect_stats(
        tiny, data, CollectPlan(moments=True), CollectRun(batch_size=1, progress=False)
    )
    b = collect_stats(tiny, data, moments=True, batch_size=1, progress=False)
    assert a.moments is not None and b.moments is not None
    torch.testing.assert_close(a.sum, b.sum)
    torch.testing.assert_close(a.moments.xx, b.moments.xx)
    with pytest.raises(InputError, match="CollectRun"):
        collect_stats(tiny, data, batchsize=1)
