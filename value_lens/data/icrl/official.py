"""Import of the paper's released ICRL data, relabelled structurally.

Reads the released conversation JSON files (one conversation per file, or a list) and, if
given, ``reward_token_labels.json`` (entries with ``reward_fn``, ``conversation_idx``,
``paragraph_position``, ``modified`` and ``reward_words``). Each labelled entry is matched to its
conversation by ``{reward_fn}__conv{conversation_idx:02d}``, the assistant turn is found through
the chat template's message spans, and the reward words are located inside that turn's body only.
Entries that cannot be used are dropped with a reason.

The release names its criteria differently from :data:`~value_lens.data.icrl.CRITERIA`
(``contains_colon`` for ``colon``); :data:`~value_lens.data.icrl.registry.RELEASED_NAMES` maps
them, so without a labels file the criteria with a registry equivalent are labelled by its spans.

Reward words: by default a word matches case-sensitively and as a whole word (``"violin"`` does
not match ``"Violin"`` or ``"violins"``). The released extraction code matched each labelled word
as a case-insensitive substring of the paragraph (``"oak"`` matches inside ``"soak"``);
``ignore_case=True, whole_words=False`` does the same. For syntactic criteria the released code
did not use the words at all: it marked every token whose own text passes a per-token checker.

Example:
    >>> word_spans("Violin and violins.", ["violin"])
    []
    >>> word_spans("Violin and violins.", ["violin"], ignore_case=True, whole_words=False)
    [(0, 6), (11, 17)]
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from value_lens.data.icrl.conversation import Conversation
from value_lens.data.icrl.label import label_with_report
from value_lens.data.icrl.registry import CRITERIA, RELEASED_NAMES
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError

__all__ = ["OfficialImport", "import_official", "load_official_conversations", "word_spans"]

_LABEL_KEYS = ("reward_fn", "conversation_idx", "paragraph_position", "modified", "reward_words")


@dataclass
class OfficialImport:
    """Result of :func:`import_official`."""

    conversations: list[Conversation]
    data: LabelledTokens | None
    dropped: list[tuple[str, int, str]] = field(default_factory=list)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for _, _, r in self.dropped:
            k = r.split(":")[0]
            reasons[k] = reasons.get(k, 0) + 1
        kept = 0 if self.data is None else len(self.data)
        return (
            f"{len(self.conversations)} conversations, {kept} labelled turns, "
            f"{len(self.dropped)} dropped {reasons}"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a readable JSON file: {exc}") from None


def load_official_conversations(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Conversation]:
    """Conversations from a directory of ``*.json`` files, one file, or a list of files.

    Raises:
        InputError: naming the file for a missing path or a malformed conversation.
    """
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(p.glob("*.json"))
        elif p.is_file():
            files = [p]
        else:
            raise InputError(f"{p} does not exist; pass the released conversations directory")
    else:
        files = [Path(f) for f in source]
    if not files:
        raise InputError(f"no conversation .json files found in {source}")
    out = []
    for f in files:
        raw = _read_json(f)
        items = raw if isinstance(raw, list) else [raw]
        for i, item in enumerate(items):
            out.append(
                Conversation.from_dict(
                    item, where=f"{f}" + (f" item {i}" if len(items) > 1 else "")
                )
            )
    return out


def word_spans(
    body: str, words: Iterable[str], *, ignore_case: bool = False, whole_words: bool = True
) -> list[tuple[int, int]]:
    """Character spans of each reward word in ``body``.

    Args:
        body: the assistant's paragraph.
        words: the labelled reward words or phrases.
        ignore_case: match regardless of case (the released code did).
        whole_words: a word that starts/ends with a letter or digit must not continue a longer
            word there; ``False`` matches anywhere, as the released code did.
    """
    spans: set[tuple[int, int]] = set()
    flags = re.IGNORECASE if ignore_case else 0
    for w in words:
        w = str(w).strip()
        if not w:
            continue
        pre = r"(?<![A-Za-z0-9])" if whole_words and w[0].isalnum() else ""
        post = r"(?![A-Za-z0-9])" if whole_words and w[-1].isalnum() else ""
        spans.update(m.span() for m in re.finditer(pre + re.escape(w) + post, body, flags))
    return sorted(spans)


def _load_labels(path: Path) -> list[dict[str, Any]]:
    raw = _read_json(path)
    if not isinstance(raw, list):
        raise InputError(f"{path} must hold a JSON list of label entries, got {type(raw).__name__}")
    for i, e in enumerate(raw):
        missing = [k for k in _LABEL_KEYS if not isinstance(e, dict) or k not in e]
        if missing:
            raise InputError(f"{path} entry {i} is missing field(s) {missing}")
        if not isinstance(e["reward_words"], list):
            raise InputError(f"{path} entry {i}: reward_words must be a list of strings")
    return raw


def _entries_to_label(
    entries: list[dict[str, Any]],
    by_id: Mapping[str, Conversation],
    dropped: list[tuple[str, int, str]],
) -> tuple[list[Conversation], dict[tuple[str, int], list[str]]]:
    """The conversations the released labels point at, and their reward words per
    ``(conversation_id, paragraph)``; every entry left out is appended to ``dropped``."""
    words: dict[tuple[str, int], list[str]] = {}
    chosen: list[Conversation] = []
    for e in entries:
        cid = f"{e['reward_fn']}__conv{int(e['conversation_idx']):02d}"
        pos = int(e["paragraph_position"])
        conv = by_id.get(cid)
        why = None if conv is None else _entry_problem(conv, pos, e)
        if conv is None:
            why = "no conversation with this id"
        elif why is None and (cid, pos) in words:
            why = "duplicate entry for this paragraph"
        if why is not None:
            dropped.append((cid, pos, why))
            continue
        assert conv is not None
        words[(cid, pos)] = [str(w) for w in e["reward_words"]]
        chosen.append(conv)
    return chosen, words


def _entry_problem(conv: Conversation, pos: int, e: Mapping[str, Any]) -> str | None:
    """Why a released label entry cannot be used for ``conv`` (None: it can)."""
    if conv.discovery_paragraph is None or pos != conv.discovery_paragraph + 1:
        return "entry is not the first post-discovery paragraph"
    good = next(
        (a for p in conv.paragraphs if p.paragraph_position == pos for a in p.attempts if a.reward),
        None,
    )
    if good is None:
        return "paragraph has no successful attempt"
    if good.modified_text.strip() != str(e["modified"]).strip():
        return "label text differs from the successful attempt"
    if not e["reward_words"]:
        return "no reward words"
    return None


def import_official(
    conversations: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    labels: str | os.PathLike[str] | None = None,
    model_or_tokenizer: Any = None,
    *,
    min_side_tokens: int = 3,
    enable_thinking: bool | None = False,
    ignore_case: bool = False,
    whole_words: bool = True,
    aliases: Mapping[str, str] = RELEASED_NAMES,
) -> OfficialImport:
    """Import the released conversations and (optionally) label them structurally.

    Args:
        conversations: the released conversations directory, a file, or a list of files.
        labels: ``reward_token_labels.json``; its reward words are located in the assistant's
            own paragraph. Without it, each conversation whose criterion is in :data:`CRITERIA`
            under its own name or through ``aliases`` is labelled by that criterion's spans;
            the others are dropped with a reason.
        model_or_tokenizer: if given, also label (else only the conversations are returned).
        min_side_tokens: as in :func:`~value_lens.data.icrl.label.label`.
        enable_thinking: chat-template switch (the paper used ``False``).
        ignore_case / whole_words: how reward words match (see :func:`word_spans`);
            ``ignore_case=True, whole_words=False`` is what the released code did.
        aliases: released criterion name -> registry name (default
            :data:`~value_lens.data.icrl.registry.RELEASED_NAMES`).

    Returns:
        An :class:`OfficialImport` with the conversations, the labelled tokens and every dropped
        entry with its reason (``.summary()`` counts them). Groups keep the released names.
    """
    convs = load_official_conversations(conversations)
    if model_or_tokenizer is None:
        return OfficialImport(convs, None)
    by_id = {c.conversation_id: c for c in convs}
    dropped: list[tuple[str, int, str]] = []
    if labels is None:

        def registry_name(name: str) -> str | None:
            return name if name in CRITERIA else aliases.get(name)

        known = [c for c in convs if registry_name(c.reward_fn) in CRITERIA]
        dropped = [
            (
                c.conversation_id,
                0,
                f"criterion {c.reward_fn!r} has no registry equivalent: pass the release's "
                "reward_token_labels.json as labels",
            )
            for c in convs
            if registry_name(c.reward_fn) not in CRITERIA
        ]

        def criterion_spans(conv: Conversation, _pos: int, body: str) -> list[tuple[int, int]]:
            return CRITERIA[str(registry_name(conv.reward_fn))].spans(body)

        data, rep = label_with_report(
            known,
            model_or_tokenizer,
            min_side_tokens=min_side_tokens,
            enable_thinking=enable_thinking,
            spans=criterion_spans,
            allow_empty=True,
        )
        return OfficialImport(convs, data if len(data) else None, dropped + rep.dropped)
    chosen, words = _entries_to_label(_load_labels(Path(labels)), by_id, dropped)

    def spans(conv: Conversation, pos: int, body: str) -> list[tuple[int, int]]:
        found = words.get((conv.conversation_id, pos), [])
        return word_spans(body, found, ignore_case=ignore_case, whole_words=whole_words)

    out: LabelledTokens | None = None
    if chosen:
        data, rep = label_with_report(
            chosen,
            model_or_tokenizer,
            min_side_tokens=min_side_tokens,
            enable_thinking=enable_thinking,
            spans=spans,
            allow_empty=True,
        )
        dropped.extend(rep.dropped)
        out = data if len(data) else None
    return OfficialImport(convs, out, dropped)
