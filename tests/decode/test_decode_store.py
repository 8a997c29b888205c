"""Rollouts kept in a store folder: a killed decoding run resumes without regenerating the
batches it finished, and reads back exactly what it recorded."""

from __future__ import annotations

import pytest
import torch

import value_lens as vl
from value_lens.decode import best_of_n, rollouts
from value_lens.decode import scorers as S
from value_lens.decode.rollouts import Sample, Task
from value_lens.decode.store import RolloutStore
from value_lens.errors import InputError

PROMPTS = ["The fox", "hello there", "Once upon a time"]


def parity(_problem, text):
    return len(text) % 2 == 0


def _same(a: Sample, b: Sample) -> None:
    assert (a.problem, a.index, a.text, a.hit_limit, a.answer, a.correct) == (
        b.problem,
        b.index,
        b.text,
        b.hit_limit,
        b.answer,
        b.correct,
    )
    assert torch.equal(a.output_ids, b.output_ids) and torch.equal(a.prompt_ids, b.prompt_ids)
    for what in ("cosine", "projection", "token_stats", "hidden_mean", "unit_mean"):
        x, y = getattr(a, what), getattr(b, what)
        assert x.keys() == y.keys()
        for k in x:
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=0, equal_nan=True)


def test_a_killed_run_resumes_from_its_finished_batches(tiny, tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(3)
    axis = vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name)
    scorers = {"v": S.value(axis, 1), "lp": S.mean_logprob(), "probe": S.probe(1, folds=2)}
    kw = dict(check=parity, max_new_tokens=5, batch_size=4, answer=lambda t: t[:1])
    full = best_of_n(tiny, PROMPTS, 4, scorers, **kw)  # 12 rows, 3 batches
    real, calls = rollouts.generate, []

    def dies_after_two(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the third batch
        return real(*a, **k)

    monkeypatch.setattr(rollouts, "generate", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        best_of_n(tiny, PROMPTS, 4, scorers, store=tmp_path, **kw)
    assert sorted(p.name for p in tmp_path.glob("batch-*")) == [
        "batch-00000.safetensors",
        "batch-00001.safetensors",
    ]
    calls.clear()
    monkeypatch.setattr(rollouts, "generate", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    again = best_of_n(tiny, PROMPTS, 4, scorers, store=tmp_path, **kw)
    assert len(calls) == 1  # only the unfinished batch is generated
    for a, b in zip(full.samples, again.samples, strict=True):
        _same(a, b)
    for name in scorers:
        torch.testing.assert_close(
            torch.as_tensor(full.scores[name]), torch.as_tensor(again.scores[name])
        )
    calls.clear()
    best_of_n(tiny, PROMPTS, 4, scorers, store=tmp_path, **kw)
    assert calls == []  # everything read back
    with pytest.raises(InputError, match="other settings"):
        best_of_n(tiny, PROMPTS, 4, scorers, store=tmp_path, **(kw | {"max_new_tokens": 6}))


def test_store_reads_the_verdict_again_and_keeps_one_token_slices(tmp_path):
    wide = torch.arange(10.0, dtype=torch.float64)[::2][:1]  # one element, stride 2
    s = Sample(0, 0, "42", torch.tensor([7]), True, None, 0.0, cosine={3: wide})
    st = RolloutStore(tmp_path, {"n": 1})
    st.save(0, [s])
    back = st.load(0, [{"answer": 42}], Task(check=lambda p, t: t == str(p["answer"])))[0]
    assert back.correct == 1.0 and back.answer == "42" and back.hit_limit
    assert torch.equal(back.cosine[3], wide)
