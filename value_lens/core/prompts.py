"""Prompts as the model reads them: raw text as is, chat messages through the chat template.

:func:`format_prompts` normalises what :func:`value_lens.core.generate.generate` and
:func:`value_lens.steering.dose.dose_response` accept (a str, a list of str, one message list or
a list of message lists) to a list of prompt texts, rendered with Qwen3's ``enable_thinking``
switch off by default (the paper's setting).

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> format_prompts(tiny_qwen3(), ["a", "b"])
    ['a', 'b']
    >>> chat_flags([[{"role": "user", "content": "hi"}], "raw"])
    [True, False]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from value_lens.core.chat import format_chat
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["chat_flags", "format_prompts"]


def _is_message_list(x: Any) -> bool:
    return (
        isinstance(x, Sequence)
        and not isinstance(x, str)
        and all(isinstance(m, Mapping) for m in x)
    )


def format_prompts(
    model: HookedModel,
    prompts: Any,
    *,
    enable_thinking: bool | None = False,
    system: str | None = None,
) -> list[str]:
    """Normalise ``prompts`` to a list of prompt texts (chat template applied to message lists).

    ``enable_thinking`` defaults to ``False``, the paper's setting: on Qwen3 the reply then opens
    after an empty think block instead of with reasoning. ``None`` leaves the template's default.

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> format_prompts(tiny_qwen3(), "a")
        ['a']
    """
    if isinstance(prompts, str):
        items: list[Any] = [prompts]
    elif _is_message_list(prompts) and len(prompts) > 0:
        items = [list(prompts)]
    elif isinstance(prompts, Sequence) and len(prompts) > 0:
        items = list(prompts)
    else:
        raise InputError(
            "prompts must be a str, a non-empty list of str, one message list "
            "[{'role':..,'content':..}], or a list of message lists"
        )
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if system is not None:
                raise InputError(
                    "system= only applies to chat messages; pass message lists, or put the "
                    "system text into the raw prompt yourself"
                )
            out.append(item)
        elif _is_message_list(item) and len(item) > 0:
            msgs = [dict(m) for m in item]
            if system is not None and msgs[0].get("role") != "system":
                msgs.insert(0, {"role": "system", "content": system})
            chat = format_chat(
                model.tokenizer, msgs, add_generation_prompt=True, enable_thinking=enable_thinking
            )
            out.append(chat.text)
        else:
            raise InputError(
                f"prompt {i} is neither a str nor a list of message dicts: {item!r:.80}"
            )
    return out


def chat_flags(prompts: Any) -> list[bool]:
    """For each prompt (as :func:`format_prompts` orders them): was it a message list?"""
    if isinstance(prompts, str):
        return [False]
    if _is_message_list(prompts):
        return [True]
    return [not isinstance(p, str) for p in prompts]
