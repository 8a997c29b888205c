"""Offline test models: a tiny random-weight Qwen3 with a byte-level BPE trained in memory.

Nothing here touches the network. The tokenizer carries the Qwen chat specials and a chat
template that behaves like Qwen3's where it matters for the paper's protocol (see
:data:`QWEN_CHAT_TEMPLATE`): the empty think block on the final assistant turn, reasoning stripped
from earlier turns, and the ``enable_thinking`` switch after the generation prompt. So chat
formatting, labelling and generation run end to end in milliseconds, in Qwen3's contexts.

Example:
    >>> model = tiny_qwen3(n_layers=3, d_model=32)
    >>> (model.cfg.n_layers, model.cfg.d_model)
    (3, 32)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from value_lens.core.protocols import GenerativeModel, HookedModel

__all__ = [
    "QWEN3_8B_SHAPES",
    "QWEN_CHAT_TEMPLATE",
    "hook_count",
    "tiny_qwen3",
    "tiny_qwen3_hf",
    "tiny_tokenizer",
]

#: Qwen3-8B's real ``Qwen3Config`` shapes (for meta-device tests and random-weight benchmarks).
QWEN3_8B_SHAPES: dict[str, int | bool] = dict(
    vocab_size=151936,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=40960,
    tie_word_embeddings=False,
)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# The tiny tokenizer's chat template, written for value_lens from this behavioural description of
# Qwen3's template (it is not a copy of it):
#   * messages render as ChatML: ``<|im_start|>{role}\n{content}<|im_end|>\n``;
#   * an assistant message whose content holds ``</think>`` is split into reasoning (before it) and
#     visible content (after it, leading newlines dropped);
#   * assistant turns before the last user message show the visible content only (reasoning is
#     stripped);
#   * assistant turns after the last user message show ``<think>\n{reasoning}\n</think>\n\n``
#     before the content when they are the final message or carry reasoning, so the final
#     assistant turn gets the empty block ``<think>\n\n</think>\n\n`` whether thinking is on or off;
#   * ``add_generation_prompt`` appends ``<|im_start|>assistant\n``, plus the empty think block when
#     ``enable_thinking`` is false.
QWEN_CHAT_TEMPLATE = (
    "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- set body = m['content'] -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- set reasoning = '' -%}"
    "{%- if '</think>' in body -%}"
    "{%- set reasoning = body.split('</think>')[0].split('<think>')[-1].strip('\n') -%}"
    "{%- set body = body.split('</think>')[-1].lstrip('\n') -%}"
    "{%- endif -%}"
    "{%- if loop.index0 > ns.last_user and (loop.last or reasoning) -%}"
    "{%- set body = '<think>\n' + reasoning + '\n</think>\n\n' + body -%}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + m['role'] + '\n' + body + '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}{%- endif -%}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog; then it rests by the river.",
    "Paragraph 1:\n\nThe Amazon river flows through Brazil, Peru and Colombia.",
    "<thinking>Maybe the rule is about length. Let me try adding a colon.</thinking>",
    "Feedback: +1. Feedback: -1. Moving on to the next paragraph.",
    "def add(a, b):\n    return a + b\n\nclass Stack:\n    pass",
    "Wait, actually I made a mistake. Let me reconsider: 12 + 30 = 42, so \\boxed{42}.",
    "Do you think your answer is correct? Respond only Yes or No. Yes. No.",
    "Music, violin, piano, guitar, drum; red, blue, green; January, March; dog, cat, horse.",
    "Numbers 0123456789, symbols !?\"'():;-/&%$... and emoji are all bytes.",
]


def tiny_tokenizer(vocab_size: int = 512) -> Any:
    """A byte-level BPE (any text round-trips) with Qwen specials and a Qwen3 chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(_CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        name_or_path="value_lens/tiny-qwen3",
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def tiny_qwen3_hf(
    *, n_layers: int = 2, d_model: int = 64, tied: bool = True, seed: int = 0, n_ctx: int = 2048
) -> tuple[Any, Any]:
    """The HF ``Qwen3ForCausalLM`` and tokenizer behind :func:`tiny_qwen3` (an oracle for tests).

    GQA (4 query / 2 key-value heads, head_dim ``d_model // 2``), q/k RMSNorm, rope_theta 1e6, and
    RMSNorm weights perturbed away from 1 so that norm handling is really exercised.
    """
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = tiny_tokenizer()
    cfg = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=max(d_model // 2, 8),
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        max_position_embeddings=n_ctx,
        tie_word_embeddings=tied,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    cfg._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hf = Qwen3ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.25 * torch.randn(p.shape, generator=gen))
    hf.config._name_or_path = (
        f"value_lens/tiny-qwen3-L{n_layers}-d{d_model}{'' if tied else '-untied'}"
    )
    return hf.eval(), tok


def tiny_qwen3(
    *,
    n_layers: int = 2,
    d_model: int = 64,
    tied: bool = True,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
) -> GenerativeModel:
    """A tiny random Qwen3 as a loaded ``TransformerBridge``.

    With ``path``, the model and tokenizer are first saved there with ``save_pretrained`` and
    loaded back through :func:`value_lens.load_model`'s directory path.
    """
    from value_lens.core.model import load_model

    hf, tok = tiny_qwen3_hf(n_layers=n_layers, d_model=d_model, tied=tied, seed=seed)
    if path is None:
        return load_model(hf, tokenizer=tok)
    path = Path(path)
    hf.save_pretrained(path)
    tok.save_pretrained(path)
    return load_model(path)


def hook_count(model: HookedModel) -> int:
    """Number of forward (pre-)hooks registered anywhere in ``model`` (for leak tests)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
