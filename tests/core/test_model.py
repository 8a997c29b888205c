"""Loading paths, default model, errors, and the generate-vs-recompute guard of the transformers pin."""

import copy

import pytest
import torch

import value_lens as vl
from value_lens.core.model import load_model, model_id, parse_dtype, to_token_ids
from value_lens.errors import InputError, ModelNotFoundError
from value_lens.testing import tiny_qwen3, tiny_qwen3_hf


def _logits(model, ids):
    with torch.no_grad():
        return model(ids[None])


def test_hf_objects_are_not_mutated():
    hf, tok = tiny_qwen3_hf()
    before = copy.deepcopy(hf.state_dict())
    layer_type = type(hf.model.layers[0])
    bos = tok.bos_token
    model = load_model(hf, tokenizer=tok)
    assert type(hf.model.layers[0]) is layer_type  # TL swaps modules in what it boots
    assert tok.bos_token == bos
    for k, v in hf.state_dict().items():
        assert torch.equal(v, before[k])
    ids = torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        ref = hf(ids[None]).logits
    assert torch.equal(_logits(model, ids), ref)
    # the same in-memory tokenizer can be booted twice
    load_model(hf, tokenizer=tok)


def test_directory_path_matches_in_memory(tmp_path):
    a = tiny_qwen3(path=tmp_path / "m")
    b = tiny_qwen3()
    ids = torch.tensor([10, 20, 30])
    assert torch.equal(_logits(a, ids), _logits(b, ids))


def test_hub_id_resolves_from_local_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snap = tmp_path / "models--acme--tiny" / "snapshots" / "0123abcd"
    hf, tok = tiny_qwen3_hf()
    hf.save_pretrained(snap)
    tok.save_pretrained(snap)
    (tmp_path / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "models--acme--tiny" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = load_model("acme/tiny")
    assert model_id(model) == "acme/tiny"
    assert model.cfg.n_layers == 2


def test_missing_model_names_every_place_and_the_fetch_command(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_model("Qwen/Qwen3-8B")
    msg = str(err.value)
    assert "local directory" in msg and str(tmp_path) in msg and "hf download Qwen/Qwen3-8B" in msg


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model(tmp_path)


def test_hf_object_without_tokenizer():
    hf, _ = tiny_qwen3_hf()
    with pytest.raises(InputError, match="tokenizer"):
        load_model(hf)


def test_dtype_and_n_ctx_overrides():
    hf, tok = tiny_qwen3_hf()
    model = load_model(hf, tokenizer=tok, dtype="bf16", n_ctx=16)
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(InputError, match="context is 16"):
        to_token_ids(model, torch.arange(17))
    assert to_token_ids(model, torch.arange(17), truncate=True).numel() == 16
    with pytest.raises(InputError, match="unknown dtype"):
        parse_dtype("float8")


def test_empty_text_is_rejected(tiny):
    with pytest.raises(InputError, match="empty"):
        to_token_ids(tiny, "")


def test_kv_cache_generate_equals_full_recompute(tiny):
    """Guards the transformers<5.24 pin: 5.24 silently breaks KV-cache generation via the bridge."""
    ids = torch.tensor([[5, 9, 17, 33, 60]])
    out = tiny.generate(ids, max_new_tokens=6, do_sample=False, verbose=False, output_logits=True)
    with torch.no_grad():
        full = tiny(out.sequences)
    for i, lg in enumerate(out.logits):
        assert torch.allclose(lg[0], full[0, ids.shape[1] - 1 + i], atol=1e-4)


@pytest.mark.slow
def test_default_model_is_smollm2(smollm):
    assert model_id(smollm) == vl.core.DEFAULT_MODEL_ID
    assert (smollm.cfg.n_layers, smollm.cfg.d_model) == (30, 576)
    text = smollm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = to_token_ids(smollm, text)
    assert ids[0].item() == smollm.tokenizer.bos_token_id  # no double BOS for chat text
    assert (ids == smollm.tokenizer.bos_token_id).sum() == text.count("<|im_start|>")
    out = smollm.generate(ids[None], max_new_tokens=8, do_sample=False, verbose=False)
    reply = smollm.tokenizer.decode(out[0, ids.numel() :], skip_special_tokens=True)
    assert "Paris" in reply


def test_qwen3_8b_real_config_on_meta_device():
    """The real Qwen3-8B shapes boot and expose the hooks value_lens uses (no weights needed)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from value_lens.core.conventions import hook_name
    from value_lens.testing import QWEN3_8B_SHAPES, tiny_tokenizer

    cfg = Qwen3Config(**QWEN3_8B_SHAPES, rope_theta=1e6)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        hf = Qwen3ForCausalLM(cfg)
    model = TransformerBridge.boot_transformers(
        "Qwen/Qwen3-8B", hf_model=hf, tokenizer=tiny_tokenizer()
    )
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_ctx) == (36, 4096, 40960)
    assert all(hook_name(i) in model.hook_dict for i in range(36))
    assert hook_name(36) not in model.hook_dict
    _, cache = model.run_with_cache(
        torch.tensor([[1, 2, 3]], device="meta"), names_filter=hook_name(20)
    )
    assert cache[hook_name(20)].shape == (1, 3, 4096)
    n_params = sum(p.numel() for p in hf.parameters())
    assert n_params == 8_190_735_360


@pytest.mark.slow
def test_loading_is_quiet_by_default_and_restores_progress_settings(capfd):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from value_lens.core.model import load_hf

    bar, enabled = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    load_hf(None)
    assert "de-quantizing" not in capfd.readouterr().err
    assert gguf_utils.tqdm is bar and hf_logging.is_progress_bar_enabled() == enabled
