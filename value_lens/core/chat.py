"""Chat formatting that remembers where every message landed in the text.

:func:`format_chat` renders messages with the tokenizer's own chat template and returns the text
together with the character span of each message's content, so token labels can be aligned to a
specific turn later (never by searching the whole conversation for a string).

Example:
    >>> from value_lens.testing import tiny_tokenizer
    >>> chat = format_chat(tiny_tokenizer(), [
    ...     {"role": "user", "content": "Paragraph 1:\\n\\nHello."},
    ...     {"role": "assistant", "content": "Hello!"},
    ... ])
    >>> chat.content(1)
    'Hello!'
    >>> chat.spans[1].role
    'assistant'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from value_lens.errors import InputError

__all__ = ["ChatText", "MessageSpan", "context_through", "format_chat"]


@dataclass(frozen=True)
class MessageSpan:
    """Where one message's content sits in the formatted text: ``text[start:end]``."""

    role: str
    start: int
    end: int


@dataclass(frozen=True)
class ChatText:
    """A chat-formatted text plus the span of every message (same order as the messages)."""

    text: str
    spans: tuple[MessageSpan, ...]

    def content(self, i: int) -> str:
        s = self.spans[i]
        return self.text[s.start : s.end]

    def turns(self, role: str) -> list[int]:
        """Indices of the messages with this role."""
        return [i for i, s in enumerate(self.spans) if s.role == role]


def format_chat(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    *,
    add_generation_prompt: bool = False,
    enable_thinking: bool | None = None,
) -> ChatText:
    """Render ``messages`` with the tokenizer's chat template and locate each message.

    Args:
        tokenizer: an HF tokenizer with a ``chat_template``.
        messages: ``[{"role": ..., "content": ...}, ...]``.
        add_generation_prompt: append the assistant header (to generate the next turn).
        enable_thinking: Qwen3's switch; ``False`` gives the empty ``<think></think>`` block.
            ``None`` leaves the template's default. Templates without the switch ignore it.

    Messages are located in order: each content is searched for only after the end of the
    previous one, so a paragraph quoted in a user turn can never be mistaken for the
    assistant's copy. Where a Qwen3-style template strips an earlier assistant turn's reasoning
    (the text up to ``</think>``), that message's span covers the reply the template shows. Any
    other rewrite of a message's content raises an error.
    """
    if not messages:
        raise InputError("no messages to format; pass at least one {'role', 'content'} dict")
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(
            "this tokenizer has no chat_template; format the text yourself and pass a string"
        )
    msgs = []
    for i, m in enumerate(messages):
        if "role" not in m or "content" not in m:
            raise InputError(f"message {i} needs 'role' and 'content' keys, got {sorted(m)}")
        msgs.append({"role": str(m["role"]), "content": str(m["content"])})
    kwargs: dict[str, Any] = {}
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    text = tokenizer.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )
    spans = []
    cursor = 0
    for i, m in enumerate(msgs):
        shown = m["content"]
        start = text.find(shown, cursor)
        if start < 0 and m["role"] == "assistant" and "</think>" in shown:
            # Qwen3-style templates drop the reasoning of earlier turns and show only the reply
            shown = shown.split("</think>")[-1].lstrip("\n")
            start = text.find(shown, cursor)
        if start < 0:
            raise InputError(
                f"message {i} ({m['role']}) does not appear verbatim in the chat template's "
                "output (the template rewrites it); labels cannot be aligned to this template"
            )
        end = start + len(shown)
        spans.append(MessageSpan(m["role"], start, end))
        cursor = end
    return ChatText(text, tuple(spans))


def context_through(messages: Sequence[Mapping[str, str]], index: int) -> list[Mapping[str, str]]:
    """The messages to render so that message ``index`` reads as it does in the whole conversation.

    Chat templates can render a message differently when it is the last one: Qwen3's inserts an
    empty ``<think></think>`` block into a final assistant turn. Rendering through the next user
    message (or the whole conversation, when none follows) puts message ``index`` in the same
    context as the full conversation; causal attention keeps its activations identical to it.

    Example:
        >>> msgs = [{"role": r, "content": c} for r, c in
        ...         [("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")]]
        >>> [m["content"] for m in context_through(msgs, 1)]
        ['a', 'b', 'c']
        >>> [m["content"] for m in context_through(msgs, 3)]
        ['a', 'b', 'c', 'd']
    """
    if not 0 <= index < len(messages):
        raise InputError(f"message index {index} is out of range for {len(messages)} messages")
    for j in range(index + 1, len(messages)):
        if messages[j].get("role") == "user":
            return list(messages[: j + 1])
    return list(messages)
