"""value_lens.core.generate on the tiny Qwen3: prompt forms, batching, seeds, stopping, errors."""

from __future__ import annotations

import pytest
import torch

from value_lens.core.generate import Generation, generate
from value_lens.errors import InputError

PROMPTS = ["the value of a", "a much longer prompt about code and tests here", "x"]


def test_batched_left_padded_equals_one_at_a_time(tiny):
    batched = generate(tiny, PROMPTS, max_new_tokens=6, batch_size=3)
    single = [generate(tiny, p, max_new_tokens=6)[0] for p in PROMPTS]
    assert [g.output_ids.tolist() for g in batched] == [g.output_ids.tolist() for g in single]
    for g, p in zip(batched, PROMPTS, strict=True):
        assert isinstance(g, Generation)
        assert g.prompt == p
        assert g.prompt_ids.tolist() == tiny.to_tokens(p, prepend_bos=False)[0].tolist()
        assert g.hit_limit and g.n_tokens == 6
        assert g.text == tiny.tokenizer.decode(g.output_ids.tolist(), skip_special_tokens=True)


def test_sampling_is_reproducible_from_the_seed_and_leaves_the_rng_alone(tiny):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = generate(tiny, PROMPTS, temperature=1.0, seed=7, max_new_tokens=8)
    assert torch.equal(torch.get_rng_state(), before)
    b = generate(tiny, PROMPTS, temperature=1.0, seed=7, max_new_tokens=8)
    c = generate(tiny, PROMPTS, temperature=1.0, seed=8, max_new_tokens=8)
    ids = [[g.output_ids.tolist() for g in x] for x in (a, b, c)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]
    top = generate(tiny, PROMPTS, temperature=1.0, top_p=1e-6, seed=7, max_new_tokens=4)
    greedy = generate(tiny, PROMPTS, max_new_tokens=4)
    assert [g.output_ids.tolist() for g in top] == [g.output_ids.tolist() for g in greedy]


def test_chat_messages_and_system_prompt(tiny):
    msgs = [{"role": "user", "content": "hi there"}]
    one = generate(tiny, msgs, max_new_tokens=2, system="be brief")
    many = generate(tiny, [msgs, msgs], max_new_tokens=2)
    assert one[0].prompt.startswith("<|im_start|>system\nbe brief<|im_end|>")
    # the paper's protocol: thinking off, so the reply opens after Qwen3's empty think block
    assert one[0].prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert one[0].enable_thinking is False
    assert len(many) == 2 and many[0].prompt == many[1].prompt
    assert "system" not in many[0].prompt
    on = generate(tiny, msgs, max_new_tokens=2, enable_thinking=True)[0]
    assert on.prompt.endswith("<|im_start|>assistant\n") and on.enable_thinking is True
    raw = generate(tiny, ["raw text", msgs], max_new_tokens=2)
    assert [g.enable_thinking for g in raw] == [None, False]


def test_stops_at_eos_and_strips_it(tiny):
    eos = tiny.tokenizer.eos_token_id
    calls = []

    def force_eos_on_third_step(logits, hook):  # noqa: ARG001
        calls.append(1)
        if len(calls) == 3:
            logits = logits.clone()
            logits[0, -1, eos] = 1e4
        return logits

    with tiny.hooks(fwd_hooks=[("unembed.hook_out", force_eos_on_third_step)]):
        g = generate(tiny, PROMPTS[0], max_new_tokens=10)[0]
    assert g.n_tokens == 2 and not g.hit_limit
    assert eos not in g.output_ids.tolist()


def test_bad_arguments(tiny):
    with pytest.raises(InputError, match="max_new_tokens"):
        generate(tiny, "a", max_new_tokens=0)
    with pytest.raises(InputError, match="top_p"):
        generate(tiny, "a", top_p=0.0)
    with pytest.raises(InputError, match="temperature"):
        generate(tiny, "a", temperature=float("nan"))
    with pytest.raises(InputError, match="system="):
        generate(tiny, "a", system="s")
    with pytest.raises(InputError, match="prompts must be"):
        generate(tiny, [])
    with pytest.raises(InputError, match="empty"):
        generate(tiny, [""])
    with pytest.raises(InputError, match="context"):
        generate(tiny, "a b c", max_new_tokens=10**6)


def test_one_generation_config_gives_the_same_texts_everywhere(tiny):
    """generate, dose_response's alpha=0 cell and the backtracking suite's rollouts all sample
    with one GenerationConfig: the same config (sampling, batch size, seed, system) gives the
    same texts through each, and keyword overrides equal the config."""
    from value_lens.core.generate import GenerationConfig
    from value_lens.evals.backtracking import run_backtracking_suite
    from value_lens.fitting.axis import ValueAxis
    from value_lens.steering.dose import DoseGrid, dose_response

    gen = GenerationConfig(
        max_new_tokens=6, temperature=1.0, top_p=0.95, batch_size=2, seed=11, system="Be brief."
    )
    msgs = [[{"role": "user", "content": "What is 2 + 2?"}]] * 3
    direct = [g.text for g in generate(tiny, msgs, gen)]
    assert len(set(direct)) > 1  # sampled: the rows differ, so equal lists are no accident
    kw = generate(
        tiny,
        msgs,
        max_new_tokens=6,
        temperature=1.0,
        top_p=0.95,
        batch_size=2,
        seed=11,
        system="Be brief.",
    )
    assert [g.text for g in kw] == direct
    assert [g.text for g in generate(tiny, msgs, gen, seed=12)] != direct
    axis = ValueAxis(torch.randn(2, tiny.cfg.d_model), model_id=tiny.cfg.model_name)
    grid = DoseGrid(layers=0, alphas=[0.0], unit="raw", seeds=[11])
    dose = dose_response(tiny, axis, msgs, grid=grid, gen=gen, progress=False)
    assert dose.frame.sort_values("prompt_id")["text"].tolist() == direct
    suite = run_backtracking_suite(
        tiny, axis, 0, problems=["What is 2 + 2?"], n_rollouts=3, gen=gen, progress=False
    )
    assert suite.table["response"].tolist() == direct
    assert suite.meta["temperature"] == 1.0 and suite.meta["system"] == "Be brief."
    with pytest.raises(InputError, match="max_tokens.*settings are"):
        generate(tiny, msgs, max_tokens=3)
    with pytest.raises(InputError, match="top_p"):
        GenerationConfig(top_p=0.0)


def test_format_prompts_defaults_to_thinking_off_and_keeps_a_given_system_message(tiny):
    from value_lens.core.prompts import chat_flags, format_prompts

    msgs = [{"role": "user", "content": "hi"}]
    (off,) = format_prompts(tiny, msgs)  # the paper's setting without asking for it
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert format_prompts(tiny, msgs, enable_thinking=None)[0].endswith("assistant\n")
    own = [{"role": "system", "content": "mine"}, *msgs]
    (text,) = format_prompts(tiny, own, system="other")
    assert text.count("<|im_start|>system") == 1 and "other" not in text
    assert chat_flags([msgs, "raw", msgs]) == [True, False, True]
