"""LoRA DPO and SFT end to end on a tiny random model, checked with log-probabilities computed
here from the HF models themselves; the SmolLM2 run (slow) only reports its direction."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("trl", reason="the training extra is missing: pip install 'value_lens[train]'")
pytest.importorskip("peft", reason="the training extra is missing: pip install 'value_lens[train]'")

import value_lens as vl
from value_lens.data.preference import choice_text, eval_prompts, word_pairs
from value_lens.data.sft import sft_rows
from value_lens.posttrain import (
    DPOSettings,
    LoraSettings,
    SFTSettings,
    dpo,
    recipes,
    sft,
)
from value_lens.testing import tiny_qwen3_hf

FAST = {"epochs": 2, "batch_size": 8, "lr": 5e-3, "lora": {"r": 8}}


def _ids(tok, messages, *, gen: bool) -> list[int]:
    return list(
        tok.apply_chat_template(
            messages,
            tokenize=True,
            add_generation_prompt=gen,
            enable_thinking=False,
            return_dict=True,
        )["input_ids"]
    )


@torch.no_grad()
def completion_logp(hf, tok, prompt, reply) -> float:
    """Sum of log p(reply tokens | prompt) where the templated prompt and conversation diverge."""
    head, full = _ids(tok, prompt, gen=True), _ids(tok, prompt + reply, gen=False)
    start = next((i for i, (a, b) in enumerate(zip(head, full, strict=False)) if a != b), len(head))
    x = torch.tensor([full])
    logp = torch.log_softmax(hf(x).logits[0, :-1].double(), -1)
    tgt = x[0, 1:]
    return float(logp[torch.arange(start - 1, len(full) - 1), tgt[start - 1 :]].sum())


@torch.no_grad()
def prompt_nll(hf, tok, messages) -> float:
    """Mean negative log-likelihood of the templated prompt's own tokens (after the first)."""
    hf.eval()
    x = torch.tensor([_ids(tok, messages, gen=True)])
    logp = torch.log_softmax(hf(x).logits[0, :-1].double(), -1)
    return -float(logp.gather(1, x[0, 1:, None]).mean())


def _margin(hf, tok, pairs) -> float:
    hf.eval()
    vals = [
        completion_logp(hf, tok, p["prompt"], p["chosen"])
        - completion_logp(hf, tok, p["prompt"], p["rejected"])
        for p in pairs
    ]
    return sum(vals) / len(vals)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def dpo_run():
    hf, tok = tiny_qwen3_hf(seed=1)
    before, template, pad = _state(hf), tok.chat_template, tok.pad_token
    pairs = word_pairs("kite", n=16, seed=0)
    log: list[dict] = []
    tuned = dpo(hf, tok, pairs, log=log, **FAST)
    return {
        "hf": hf,
        "tok": tok,
        "before": before,
        "template": template,
        "pad": pad,
        "pairs": pairs,
        "tuned": tuned,
        "log": log,
    }


def test_dpo_raises_the_chosen_margin_on_the_training_pairs(dpo_run):
    r = dpo_run
    base, tuned = _margin(r["hf"], r["tok"], r["pairs"]), _margin(r["tuned"], r["tok"], r["pairs"])
    assert tuned > base + 1.0, (base, tuned)
    losses = [e["loss"] for e in r["log"] if "loss" in e]
    assert losses[-1] < losses[0]


def test_dpo_leaves_the_callers_model_and_tokenizer_alone(dpo_run):
    r = dpo_run
    after = r["hf"].state_dict()
    assert set(after) == set(r["before"])
    assert all(torch.equal(after[k], v) for k, v in r["before"].items())
    assert not any(n.startswith("base_model") or "lora" in n for n, _ in r["hf"].named_modules())
    assert r["tok"].chat_template == r["template"] and r["tok"].pad_token == r["pad"]


def test_dpo_merges_lora_into_the_linear_layers_only(dpo_run):
    r = dpo_run
    tuned = r["tuned"].state_dict()
    assert set(tuned) == set(r["before"])  # merged: no lora_A/lora_B left, same names
    changed = {k for k, v in r["before"].items() if not torch.allclose(tuned[k], v)}
    assert any(k.endswith("self_attn.q_proj.weight") for k in changed)
    assert any(k.endswith("mlp.down_proj.weight") for k in changed)
    assert not any("norm" in k or "embed_tokens" in k for k in changed), sorted(changed)


def test_merged_model_boots_in_the_bridge_with_the_same_logits(dpo_run):
    r = dpo_run
    model = vl.load_model(r["tuned"], tokenizer=r["tok"])
    ids = torch.tensor([_ids(r["tok"], r["pairs"][0]["prompt"], gen=True)])
    with torch.no_grad():
        out = r["tuned"](ids, output_hidden_states=True)
        got, cache = model.run_with_cache(ids, return_type="logits")
    torch.testing.assert_close(got, out.logits, rtol=1e-4, atol=1e-4)
    # the bridge's hooks fire on the booted copy and see the merged weights' activations
    for layer in range(r["tuned"].config.num_hidden_layers - 1):
        resid = cache[f"blocks.{layer}.hook_resid_post"]
        torch.testing.assert_close(resid, out.hidden_states[layer + 1], rtol=1e-4, atol=1e-4)


def test_sft_lowers_the_answer_loss_and_copies_the_model():
    hf, tok = tiny_qwen3_hf(seed=2)
    before = _state(hf)
    rows = sft_rows([{"question": f"What is {a} + {a}?", "answer": 2 * a} for a in range(1, 17)])

    def nll(model) -> float:
        model.eval()
        return -sum(
            completion_logp(model, tok, r["messages"][:-1], r["messages"][-1:]) for r in rows
        ) / len(rows)

    tuned = sft(hf, tok, rows, **FAST)
    assert all(torch.equal(hf.state_dict()[k], v) for k, v in before.items())
    assert nll(tuned) < nll(hf) - 1.0
    assert vl.load_model(tuned, tokenizer=tok).cfg.n_layers == hf.config.num_hidden_layers
    # completion_only (the default) trains on the answer: the question's own tokens are learnt
    # far less than when the whole conversation is trained on
    whole = sft(hf, tok, rows, completion_only=False, **FAST)
    prompts = [r["messages"][:-1] for r in rows]
    q_tuned = sum(prompt_nll(tuned, tok, m) for m in prompts) / len(prompts)
    q_whole = sum(prompt_nll(whole, tok, m) for m in prompts) / len(prompts)
    q_base = sum(prompt_nll(hf, tok, m) for m in prompts) / len(prompts)
    assert q_base - q_whole > 2 * (q_base - q_tuned), (q_base, q_tuned, q_whole)


def test_a_dequantised_gguf_model_trains_and_keeps_its_flag():
    """The embedded SmolLM2 is a GGUF de-quantised to floats; the trainer refuses anything that
    reports a GGUF quantizer, so the recipe drops the flag from its copy only."""
    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
    from transformers.utils.quantization_config import GgufConfig

    hf, tok = tiny_qwen3_hf(seed=4)
    quantizer = GgufHfQuantizer(GgufConfig())
    hf.hf_quantizer, hf.is_quantized = quantizer, True
    hf.config.quantization_config = quantizer.quantization_config
    tuned = dpo(hf, tok, word_pairs("kite", n=4), epochs=1, batch_size=4, lora={"r": 4})
    assert not tuned.is_quantized
    assert hf.is_quantized and hf.hf_quantizer is quantizer


def test_rows_for_trl_turn_thinking_off_and_keep_only_the_answer_as_completion():
    pair = word_pairs("kite", n=1)[0]
    row = recipes.dpo_rows([pair])[0]
    assert row["chat_template_kwargs"] == {"enable_thinking": False}
    assert row["prompt"] == pair["prompt"] and row["chosen"] == pair["chosen"]
    assert set(row) == {"prompt", "chosen", "rejected", "chat_template_kwargs"}
    msgs = sft_rows([{"question": "q?", "answer": 1}], system="s")[0]["messages"]
    sft_row = recipes.sft_rows_for_trl([{"messages": msgs}])[0]
    assert sft_row["prompt"] == msgs[:2] and sft_row["completion"] == msgs[2:]
    assert sft_row["chat_template_kwargs"] == {"enable_thinking": False}
    whole = recipes.sft_rows_for_trl([{"messages": msgs}], completion_only=False)[0]
    assert whole["messages"] == msgs


def test_defaults_are_the_papers_protocol():
    d, s = DPOSettings(), SFTSettings()
    assert d.lora == LoraSettings(r=16, alpha=32, dropout=0.05, target="all-linear")
    assert (d.beta, d.lr, d.scheduler, d.epochs, d.batch_size, d.max_length, d.seed) == (
        0.1,
        5e-5,
        "cosine",
        6,
        8,
        512,
        42,
    )
    assert (s.lr, s.scheduler, s.epochs, s.batch_size * s.grad_accum, s.max_length) == (
        2e-5,
        "cosine",
        3,
        16,
        1024,
    )
    assert s.lora == d.lora and not d.enable_thinking and not s.enable_thinking


def test_device_arguments_follow_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert recipes._device_args(DPOSettings()) == {
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
    }
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert recipes._device_args(DPOSettings()) == {
        "use_cpu": False,
        "bf16": True,
        "gradient_checkpointing": True,
    }
    assert recipes._device_args(DPOSettings(bf16=False))["bf16"] is False


def test_errors_name_the_fix(monkeypatch):
    hf, tok = tiny_qwen3_hf()
    with pytest.raises(vl.InputError, match="known"):
        DPOSettings().replace(epoch=1)
    with pytest.raises(vl.InputError, match="r, alpha"):
        DPOSettings(lora={"rank": 8})  # type: ignore[arg-type]
    with pytest.raises(vl.InputError, match="word_pairs"):
        dpo(hf, tok, [])
    with pytest.raises(vl.InputError, match="lacks"):
        dpo(hf, tok, [{"prompt": [{"role": "user", "content": "x"}], "chosen": "a"}])
    with pytest.raises(vl.InputError, match="end with the assistant"):
        sft(hf, tok, [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(vl.InputError, match="tokenizer"):
        dpo(hf, None, word_pairs("kite", n=2))
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError, match=r"value_lens\[train\]"):
        dpo(hf, tok, word_pairs("kite", n=2))


@pytest.mark.slow
def test_smollm2_one_word_dpo_reports_its_direction(smollm_hf):
    """1 word x 32 pairs x 1 epoch (LoRA r8): prints the log-likelihood selection rate of the
    target on held-out prompts before and after; asserts only that training ran."""
    hf, tok = smollm_hf
    pairs = word_pairs("kite", n=32, seed=42)
    tuned = dpo(hf, tok, pairs, epochs=1, batch_size=8, lora={"r": 8}, precompute_ref=True)

    def selection(model) -> float:
        model.eval()
        wins = 0
        for p in eval_prompts("kite", n=16, seed=0):
            scores = {
                x: completion_logp(
                    model, tok, p["messages"], [{"role": "assistant", "content": choice_text(x)}]
                )
                for x in p["items"]
            }
            wins += max(scores, key=scores.__getitem__) == "kite"
        return wins / 16

    base, after = selection(hf), selection(tuned)
    direction = "up" if after > base else "down" if after < base else "flat"
    print(
        f"\nSmolLM2 DPO on 'kite' (32 pairs, 1 epoch): selection {base:.3f} -> {after:.3f} "
        f"({direction})"
    )
    assert not all(
        torch.equal(a, b)
        for a, b in zip(hf.state_dict().values(), tuned.state_dict().values(), strict=True)
    )
