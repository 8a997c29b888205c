"""ICRL conversations in the paper's released field layout, with versioned JSONL storage.

A :class:`Conversation` has exactly the fields of the released conversation files
(``conversation_id``, ``reward_fn``, ``num_paragraphs``, ``discovery_paragraph`` (1-based),
``trajectory`` (attempts per paragraph), ``paragraphs[].attempts[]`` and ``full_messages``), plus
a free ``meta`` dict. Saved files carry a format name and version on every line and are
validated on load.

Example:
    >>> import tempfile, pathlib
    >>> from value_lens.data.icrl import generate_scripted
    >>> convs = generate_scripted(1, seed=0, criteria=["colon"], corpus=_DOC_CORPUS)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.jsonl"
    >>> _ = save_conversations(convs, path)
    >>> load_conversations(path)[0] == convs[0]
    True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from value_lens.core.io import atomic_write_text, iter_jsonl
from value_lens.errors import InputError

__all__ = [
    "FORMAT",
    "VERSION",
    "Attempt",
    "Conversation",
    "ParagraphResult",
    "assistant_message",
    "load_conversations",
    "save_conversations",
    "split_thinking",
]

FORMAT = "value_lens/icrl-conversation"
VERSION = 1
THINK_OPEN, THINK_CLOSE = "<thinking>", "</thinking>"
_PARA_RX = re.compile(r"^Paragraph (\d+):")

_DOC_CORPUS = [
    f"Topic {i} is a subject of study. It has a long history and many uses." for i in range(8)
]


def assistant_message(thinking: str, modified_text: str) -> str:
    """The assistant turn: ``<thinking>...</thinking>`` then the modified paragraph."""
    return f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n\n{modified_text}"


def split_thinking(content: str) -> tuple[str, int]:
    """``(thinking, body_offset)``: the body is ``content[body_offset:]`` (after ``</thinking>``).

    Content without a closing tag is all body. Leading whitespace of the body is skipped.
    """
    k = content.rfind(THINK_CLOSE)
    if k < 0:
        start = 0
        thinking = ""
    else:
        start = k + len(THINK_CLOSE)
        o = content.find(THINK_OPEN)
        thinking = content[(o + len(THINK_OPEN)) if 0 <= o < k else 0 : k].strip()
    while start < len(content) and content[start].isspace():
        start += 1
    return thinking, start


@dataclass
class Attempt:
    """One assistant attempt at a paragraph."""

    attempt: int
    thinking: str
    modified_text: str
    reward: bool
    intended_pass: bool | None = None
    validation_matched: bool | None = None


@dataclass
class ParagraphResult:
    """All attempts at one paragraph (``paragraph_position`` is 1-based)."""

    paragraph_position: int
    paragraph_index: Any
    original_text: str
    attempts: list[Attempt]
    success: bool
    rounds_to_success: int | None


@dataclass
class Conversation:
    """One game: a hidden criterion, 3-8 paragraphs, and every message exchanged."""

    conversation_id: str
    reward_fn: str
    num_paragraphs: int
    discovery_paragraph: int | None
    trajectory: list[int]
    paragraphs: list[ParagraphResult]
    full_messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "conversation") -> Conversation:
        """Build and validate a conversation from a released-format dict.

        Raises:
            InputError: naming ``where`` and the conversation id for a missing or bad field.
        """
        if not isinstance(d, Mapping):
            raise InputError(f"{where} is a {type(d).__name__}, not a JSON object")
        cid = d.get("conversation_id", "?")
        need = ("conversation_id", "reward_fn", "paragraphs", "full_messages")
        missing = [k for k in need if k not in d]
        if missing:
            raise InputError(f"{where} ({cid}) is missing field(s) {missing}")
        try:
            paras = []
            for i, p in enumerate(d["paragraphs"]):
                atts = [
                    Attempt(
                        int(a.get("attempt", j + 1)),
                        str(a.get("thinking", "")),
                        str(a["modified_text"]),
                        bool(a["reward"]),
                        a.get("intended_pass"),
                        a.get("validation_matched"),
                    )
                    for j, a in enumerate(p["attempts"])
                ]
                success = bool(p.get("success", any(a.reward for a in atts)))
                rounds = p.get("rounds_to_success", len(atts) if success else None)
                paras.append(
                    ParagraphResult(
                        int(p.get("paragraph_position", i + 1)),
                        p.get("paragraph_index"),
                        str(p.get("original_text", "")),
                        atts,
                        success,
                        rounds,
                    )
                )
            msgs = [
                {"role": str(m["role"]), "content": str(m["content"])} for m in d["full_messages"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(
                f"{where} ({cid}) has a malformed paragraph or message: {exc!r}"
            ) from None
        disc = d.get("discovery_paragraph")
        conv = cls(
            str(cid),
            str(d["reward_fn"]),
            int(d.get("num_paragraphs", len(paras))),
            None if disc is None else int(disc),
            [int(x) for x in d.get("trajectory", [len(p.attempts) for p in paras])],
            paras,
            msgs,
            dict(d.get("meta", {})),
        )
        conv.validate(where=where)
        return conv

    def validate(self, *, where: str = "conversation") -> None:
        """Check internal consistency (counts, roles, positions, messages)."""
        tag = f"{where} ({self.conversation_id})"
        if self.num_paragraphs != len(self.paragraphs):
            raise InputError(
                f"{tag}: num_paragraphs={self.num_paragraphs} but "
                f"{len(self.paragraphs)} paragraphs recorded"
            )
        if self.trajectory != [len(p.attempts) for p in self.paragraphs]:
            raise InputError(f"{tag}: trajectory {self.trajectory} does not match the attempts")
        if self.discovery_paragraph is not None and not 1 <= self.discovery_paragraph <= len(
            self.paragraphs
        ):
            raise InputError(f"{tag}: discovery_paragraph {self.discovery_paragraph} out of range")
        for m in self.full_messages:
            if m["role"] not in ("system", "user", "assistant"):
                raise InputError(f"{tag}: unknown message role {m['role']!r}")
        n_asst = sum(m["role"] == "assistant" for m in self.full_messages)
        if n_asst != sum(self.trajectory):
            raise InputError(
                f"{tag}: {n_asst} assistant messages but {sum(self.trajectory)} attempts"
            )

    def assistant_index(self) -> dict[tuple[int, int], int]:
        """Map ``(paragraph_position, attempt)`` to the index of its message in ``full_messages``.

        Found structurally: a user message starting ``Paragraph k:`` opens paragraph ``k``, and
        each following assistant message is the next attempt at it.
        """
        out: dict[tuple[int, int], int] = {}
        pos, att = 0, 0
        for i, m in enumerate(self.full_messages):
            if m["role"] == "user":
                hit = _PARA_RX.match(m["content"])
                if hit:
                    pos, att = int(hit.group(1)), 0
            elif m["role"] == "assistant" and pos:
                att += 1
                out[(pos, att)] = i
        return out


def save_conversations(convs: Iterable[Conversation], path: str | os.PathLike[str]) -> Path:
    """Write conversations as versioned JSONL (atomically)."""
    lines = [json.dumps(record(c), ensure_ascii=False, sort_keys=True) for c in convs]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def record(conv: Conversation) -> dict[str, Any]:
    """The JSONL record of one conversation (with the format name and version)."""
    return {"format": FORMAT, "version": VERSION, **conv.to_dict()}


def from_record(rec: Mapping[str, Any], *, where: str) -> Conversation:
    """Validate the format/version of a saved record and rebuild the conversation."""
    if rec.get("format") != FORMAT:
        raise InputError(
            f"{where} is not a value_lens conversation record (format {rec.get('format')!r})"
        )
    if rec.get("version") != VERSION:
        raise InputError(
            f"{where} has format version {rec.get('version')!r}; this value_lens reads "
            f"version {VERSION}"
        )
    body = {k: v for k, v in rec.items() if k not in ("format", "version")}
    return Conversation.from_dict(body, where=where)


def load_conversations(path: str | os.PathLike[str]) -> list[Conversation]:
    """Load and validate a file written by :func:`save_conversations` (or a generation log).

    Raises:
        InputError: naming the line for a non-JSON line, another format, another version or an
            inconsistent conversation.
    """
    return [from_record(rec, where=f"{path} line {n}") for n, rec in iter_jsonl(path)]
