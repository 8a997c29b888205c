"""Structural reward-token labelling of ICRL conversations.

For each chosen turn (the successful attempt at the first paragraph after discovery, or every
successful attempt), the assistant message is located through the chat template's message spans;
its body is the text after ``</thinking>``. The criterion's character spans in that body are
mapped to tokens with the tokenizer's offsets on the exact formatted text. Body tokens strictly
before the first reward token are ``BEFORE``, strictly after the last are ``AFTER``, reward tokens
are ``REWARD``; everything else (system and user turns, thinking, template tokens) is ``IGNORE``.
Nothing is ever found by searching the conversation for a string.

Example:
    >>> from value_lens.testing import tiny_tokenizer
    >>> from value_lens.data.icrl import generate_scripted
    >>> corpus = [f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCDEFGH"]
    >>> convs = generate_scripted(1, seed=0, criteria=["semicolon"], corpus=corpus)
    >>> data = label(convs, tiny_tokenizer())
    >>> data.groups, sorted(data.label_counts())
    (['semicolon'], [0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import torch

from value_lens.core.chat import context_through, format_chat
from value_lens.data.icrl.conversation import Conversation, split_thinking
from value_lens.data.icrl.registry import CRITERIA
from value_lens.data.placebo import DEFAULT_TOLERANCE, PlaceboMatch, match_sequence
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, REWARD, LabelledTokens
from value_lens.errors import InputError

__all__ = ["LabelReport", "SpanFn", "label", "label_with_report", "tokenize_with_offsets"]

Span = tuple[int, int]
# (conversation, paragraph_position, body text) -> character spans inside the body
SpanFn = Callable[[Conversation, int, str], list[Span]]


@dataclass
class LabelReport:
    """What :func:`label` kept and dropped (``dropped`` holds ``(conversation_id, position, reason)``)."""

    kept: int = 0
    dropped: list[tuple[str, int, str]] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, r in self.dropped:
            key = r.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out


def _criterion_spans(conv: Conversation, _pos: int, body: str) -> list[Span]:
    if conv.reward_fn not in CRITERIA:
        raise InputError(
            f"conversation {conv.conversation_id!r} uses criterion {conv.reward_fn!r}, which is "
            "not in CRITERIA; pass spans=... to label it"
        )
    return CRITERIA[conv.reward_fn].spans(body)


def tokenize_with_offsets(
    tokenizer: Any, text: str, *, prepend_bos: bool
) -> tuple[list[int], list[Span]]:
    """Token ids and character offsets of ``text`` (a BOS, if prepended, gets offset ``(0, 0)``)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise InputError(
            f"this tokenizer cannot return character offsets ({exc}); load a fast tokenizer "
            "(use_fast=True) so reward spans can be aligned to tokens"
        ) from None
    ids = list(enc["input_ids"])
    offs = [tuple(o) for o in enc["offset_mapping"]]
    if prepend_bos:
        ids, offs = [tokenizer.bos_token_id, *ids], [(0, 0), *offs]
    return ids, offs  # type: ignore[return-value]


def _targets(conv: Conversation, every_success: bool) -> list[tuple[int, int]]:
    """``(paragraph_position, attempt)`` of each turn to label."""
    out = []
    for p in conv.paragraphs:
        if not every_success and (
            conv.discovery_paragraph is None or p.paragraph_position != conv.discovery_paragraph + 1
        ):
            continue
        good = next((a for a in p.attempts if a.reward), None)
        if good is not None:
            out.append((p.paragraph_position, good.attempt))
    return out


def _resolve(model_or_tokenizer: Any, prepend_bos: bool | None) -> tuple[Any, int | None, bool]:
    tok = getattr(model_or_tokenizer, "tokenizer", None)
    cfg = getattr(model_or_tokenizer, "cfg", None)
    if tok is None:
        tok, limit = model_or_tokenizer, None
        bos = bool(prepend_bos)
    else:
        limit = int(getattr(cfg, "n_ctx", 0) or 0) or None
        bos = (
            bool(getattr(cfg, "default_prepend_bos", False)) if prepend_bos is None else prepend_bos
        )
    if not callable(tok) or not hasattr(tok, "apply_chat_template"):
        raise InputError(
            "label() needs a model with a .tokenizer or an HF tokenizer; got "
            f"{type(model_or_tokenizer).__name__}"
        )
    if bos and getattr(tok, "bos_token_id", None) is None:
        bos = False
    return tok, limit, bos


@dataclass(frozen=True)
class _TurnLabeller:
    """Labels one assistant turn of a conversation (see :func:`label_with_report`)."""

    tok: Any
    limit: int | None
    bos: bool
    span_fn: SpanFn
    enable_thinking: bool | None
    drop_too_long: bool
    min_side_tokens: int

    def label(self, conv: Conversation, pos: int, mi: int) -> Any:
        """``(ids, labels, chat, offsets, (turn_start, turn_end))`` of message ``mi``, or the
        reason it was dropped (a string)."""
        # render through the next user turn, as in the whole conversation: a template may
        # render a final assistant turn differently (Qwen3 adds an empty think block)
        chat = format_chat(
            self.tok, context_through(conv.full_messages, mi), enable_thinking=self.enable_thinking
        )
        span = chat.spans[mi]
        content = chat.content(mi)
        _, off = split_thinking(content)
        body = content[off:].rstrip()
        b0, b1 = span.start + off, span.start + off + len(body)
        char_spans = [(b0 + s, b0 + e) for s, e in self.span_fn(conv, pos, body) if e > s]
        if not char_spans:
            return "no reward span in the body"
        text = chat.text
        use_bos = self.bos and not (self.tok.bos_token and text.startswith(self.tok.bos_token))
        ids, offs = tokenize_with_offsets(self.tok, text, prepend_bos=use_bos)
        # keep the tokens up to the end of the labelled message: causal attention makes
        # them read exactly as in the rendered context, and nothing after them is labelled
        keep = 1 + max(j for j, (s, e) in enumerate(offs) if e > s and s < span.end)
        ids, offs = ids[:keep], offs[:keep]
        if self.limit is not None and len(ids) > self.limit:
            if self.drop_too_long:
                return f"too long: {len(ids)} tokens"
            raise InputError(
                f"conversation {conv.conversation_id!r} (up to paragraph {pos}) has {len(ids)} "
                f"tokens but the model's context is {self.limit}; drop it or load the model with "
                "a larger n_ctx"
            )
        lab = _labels(offs, (b0, b1), char_spans, conv.conversation_id, pos)
        before, after = int((lab == BEFORE).sum()), int((lab == AFTER).sum())
        if min(before, after) < self.min_side_tokens:
            return f"too few tokens: {before} before, {after} after"
        body_idx = [j for j, (s, e) in enumerate(offs) if s < b1 and e > b0]
        return ids, lab, chat, offs, (body_idx[0], body_idx[-1] + 1)


def label_with_report(
    conversations: Iterable[Conversation],
    model_or_tokenizer: Any,
    *,
    every_success: bool = False,
    min_side_tokens: int = 3,
    enable_thinking: bool | None = False,
    prepend_bos: bool | None = None,
    spans: SpanFn | None = None,
    allow_empty: bool = False,
    drop_too_long: bool = False,
    placebo: bool = False,
    placebo_tolerance: int = DEFAULT_TOLERANCE,
) -> tuple[LabelledTokens, LabelReport]:
    """Label reward tokens of ICRL conversations for :func:`value_lens.fitting.collect.collect_stats`.

    Args:
        conversations: scripted, on-policy or imported conversations.
        model_or_tokenizer: a bridge (its ``.tokenizer``; ``n_ctx`` and BOS handling are then
            checked against the model) or a plain HF fast tokenizer.
        every_success: label every successful attempt, not only the first post-discovery one.
        min_side_tokens: drop turns with fewer BEFORE or AFTER tokens than this.
        enable_thinking: Qwen3 template switch (the paper uses ``False``).
        prepend_bos: put a BOS id first; ``None`` follows the model's ``default_prepend_bos``
            (never for a bare tokenizer), skipped when the text already starts with it.
        spans: custom ``(conversation, position, body) -> spans`` (default: the criterion's).
        allow_empty: return empty data instead of raising when nothing could be labelled.
        drop_too_long: drop (and report) turns longer than the model's context instead of
            raising.
        placebo: also label the failed attempts (pre-discovery failures included) that precede
            each labelled turn, around a pseudo-reward span of the real reward's length placed so
            that the tokens before and after it match the labelled turn of the same sequence in
            number (:func:`value_lens.data.placebo.matched_cut`): ``PLACEBO_BEFORE`` /
            ``PLACEBO_AFTER``. They sit in the same sequences, so they cost no extra forward
            pass; ``meta["placebo_turns"]`` records every candidate turn with its ``cut``
            (``None`` for one that could not be matched; the report counts them).
        placebo_tolerance: the largest difference in tokens between a placebo side and the real
            side it is matched to.

    Returns:
        One sequence per kept turn: the tokens of the whole conversation up to the end of the
        labelled turn, rendered as in the full conversation (through the next user message, so
        a template that treats a final assistant turn specially, as Qwen3's does, renders the
        labelled turn as the paper's whole-conversation pass did), group = criterion, ``meta`` with ``conversation_id``, ``paragraph_position``,
        ``attempt``, ``turn_start`` and ``turn_end`` (token index one past the body).

    Raises:
        InputError: for an unknown criterion, a conversation longer than the model's context,
            spans that cannot be aligned to tokens, or when nothing could be labelled.
    """
    tok, limit, bos = _resolve(model_or_tokenizer, prepend_bos)
    one = _TurnLabeller(
        tok, limit, bos, spans or _criterion_spans, enable_thinking, drop_too_long, min_side_tokens
    )
    report = LabelReport()
    ids_out: list[torch.Tensor] = []
    labels_out: list[torch.Tensor] = []
    groups: list[str] = []
    metas: list[dict[str, Any]] = []
    pending: list[tuple[int, str, list[tuple[int, int, int]]]] = []
    for conv in conversations:
        where = _targets(conv, every_success)
        if not where:
            report.dropped.append((conv.conversation_id, 0, "no successful post-discovery turn"))
            continue
        index = conv.assistant_index()
        failed = sorted(index[k] for k in _failed(conv) if k in index)
        for pos, att in where:
            mi = index.get((pos, att))
            got = "assistant message not found" if mi is None else one.label(conv, pos, mi)
            if isinstance(got, str):
                report.dropped.append((conv.conversation_id, pos, got))
                continue
            assert mi is not None
            ids, lab, chat, offs, (t0, t1) = got
            if placebo:
                earlier = [j for j in failed if j < mi]
                failed = [j for j in failed if j > mi]
                turns = [(j, *_body_tokens(chat, j, offs)) for j in earlier]
                pending.append((len(ids_out), conv.conversation_id, turns))
            ids_out.append(torch.tensor(ids, dtype=torch.long))
            labels_out.append(lab)
            groups.append(conv.reward_fn)
            metas.append(
                {
                    "conversation_id": conv.conversation_id,
                    "reward_fn": conv.reward_fn,
                    "paragraph_position": pos,
                    "attempt": att,
                    "message_index": mi,
                    "turn_start": t0,
                    "turn_end": t1,
                    "source": conv.meta.get("source", ""),
                }
            )
            report.kept += 1
    if placebo:
        _add_placebo(labels_out, metas, pending, report, min_side_tokens, placebo_tolerance)
    if not ids_out and not allow_empty:
        raise InputError(
            f"no turn could be labelled ({report.reasons() or 'no conversations'}); generate more "
            "conversations or lower min_side_tokens"
        )
    return LabelledTokens(ids_out, labels_out, groups, meta=metas), report


@overload
def label(
    conversations: Iterable[Conversation],
    model_or_tokenizer: Any,
    *,
    return_report: Literal[False] = False,
    **kwargs: Any,
) -> LabelledTokens: ...


@overload
def label(
    conversations: Iterable[Conversation],
    model_or_tokenizer: Any,
    *,
    return_report: Literal[True],
    **kwargs: Any,
) -> tuple[LabelledTokens, LabelReport]: ...


def label(
    conversations: Iterable[Conversation],
    model_or_tokenizer: Any,
    *,
    return_report: bool = False,
    **kwargs: Any,
) -> LabelledTokens | tuple[LabelledTokens, LabelReport]:
    """Label reward tokens; see :func:`label_with_report` for every option.

    Returns the :class:`~value_lens.data.tokens.LabelledTokens`, or ``(data, report)`` when
    ``return_report=True``.
    """
    data, report = label_with_report(conversations, model_or_tokenizer, **kwargs)
    return (data, report) if return_report else data


def _labels(
    offs: Sequence[Span], body: Span, spans: Sequence[Span], cid: str, pos: int
) -> torch.Tensor:
    b0, b1 = body
    lab = torch.full((len(offs),), IGNORE, dtype=torch.long)
    in_body = [j for j, (s, e) in enumerate(offs) if e > s and s < b1 and e > b0]
    reward = [j for j in in_body if any(offs[j][0] < se and offs[j][1] > ss for ss, se in spans)]
    covered = {(ss, se) for ss, se in spans for j in reward if offs[j][0] < se and offs[j][1] > ss}
    if not reward or len(covered) != len(set(spans)):
        raise InputError(
            f"conversation {cid!r}, paragraph {pos}: reward span(s) "
            f"{sorted(set(spans) - covered)} do not line up with any token of the body; the "
            "tokenizer's offsets do not match the formatted text"
        )
    first, last = reward[0], reward[-1]
    for j in in_body:
        if j < first:
            lab[j] = BEFORE
        elif j > last:
            lab[j] = AFTER
    lab[reward] = REWARD
    return lab


def _failed(conv: Conversation) -> list[tuple[int, int]]:
    """``(paragraph_position, attempt)`` of every attempt that missed the criterion."""
    return [
        (p.paragraph_position, a.attempt)
        for p in conv.paragraphs
        for a in p.attempts
        if not a.reward
    ]


def _body_tokens(chat: Any, mi: int, offs: Sequence[Span]) -> tuple[int, int]:
    """Token span ``[start, end)`` of message ``mi``'s body (the text after ``</thinking>``)."""
    span = chat.spans[mi]
    content = chat.content(mi)
    _, off = split_thinking(content)
    b0 = span.start + off
    b1 = b0 + len(content[off:].rstrip())
    idx = [j for j, (s, e) in enumerate(offs) if e > s and s < b1 and e > b0]
    return (idx[0], idx[-1] + 1) if idx else (0, 0)


def _add_placebo(
    labels: list[torch.Tensor],
    metas: list[dict[str, Any]],
    pending: list[tuple[int, str, list[tuple[int, int, int]]]],
    report: LabelReport,
    min_side_tokens: int,
    tolerance: int,
) -> None:
    for k, cid, turns in pending:
        metas[k]["placebo_turns"] = [
            {"message_index": mi, "turn_start": s, "turn_end": e} for mi, s, e in turns if e > s
        ]
        match = PlaceboMatch()
        metas[k]["placebo_turns"] = match_sequence(
            labels[k], metas[k], tolerance=tolerance, min_side_tokens=min_side_tokens, report=match
        )
        pos = int(metas[k]["paragraph_position"])
        report.dropped.extend(
            (cid, pos, f"placebo not matched: {why}")
            for why, n in match.dropped.items()
            for _ in range(n)
        )
