"""The paragraph corpus the game is played on.

The default corpus (``value_lens/data/corpora/paragraphs.jsonl``, one
``{"id", "topic", "text"}`` object per line) ships with the package. Users can pass their own:
a list of strings or dicts, a ``.txt`` file with paragraphs separated by blank lines, or a
``.jsonl`` file in the packaged layout.

Example:
    >>> corpus = load_corpus(["The Nile flows north through Egypt.", "Granite is an igneous rock."] * 2)
    >>> len(corpus), corpus[0].id
    (4, 'p0000')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from value_lens.core.io import iter_jsonl
from value_lens.errors import InputError

__all__ = ["MIN_CORPUS", "Paragraph", "load_corpus"]

MIN_CORPUS = 3  # a conversation needs at least three paragraphs
MIN_WORDS = 5


@dataclass(frozen=True)
class Paragraph:
    """One corpus paragraph."""

    id: str
    topic: str
    text: str


CorpusSource = str | os.PathLike[str] | Sequence[str | Mapping[str, Any] | Paragraph] | None


def _packaged() -> Path:
    return Path(str(resources.files("value_lens.data") / "corpora" / "paragraphs.jsonl"))


def _from_item(i: int, item: Any, where: str) -> Paragraph:
    if isinstance(item, Paragraph):
        return item
    if isinstance(item, str):
        return Paragraph(f"p{i:04d}", "", item)
    if isinstance(item, Mapping):
        if not isinstance(item.get("text"), str):
            raise InputError(
                f"{where} item {i} has no string 'text' field; got keys {sorted(item)}"
            )
        return Paragraph(str(item.get("id", f"p{i:04d}")), str(item.get("topic", "")), item["text"])
    raise InputError(f"{where} item {i} is a {type(item).__name__}; pass str or dict items")


def _read_file(path: Path) -> list[Any]:
    if not path.is_file():
        raise InputError(f"corpus file {path} does not exist")
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [item for _, item in iter_jsonl(path, objects=False)]
    if path.suffix in (".txt", ""):
        blocks = [b.strip() for b in raw.replace("\r\n", "\n").split("\n\n")]
        return [" ".join(b.split()) for b in blocks if b]
    raise InputError(f"corpus file {path} must end in .txt (blank-line separated) or .jsonl")


def load_corpus(source: CorpusSource = None) -> list[Paragraph]:
    """Load and validate a paragraph corpus.

    Args:
        source: ``None`` for the packaged corpus; a list of strings / ``{"text": ...}`` dicts /
            :class:`Paragraph`; or a path to a ``.txt`` or ``.jsonl`` file.

    Raises:
        InputError: for a missing or malformed file, an empty paragraph, duplicate ids, or a
            corpus with fewer than three usable paragraphs.
    """
    if source is None:
        path = _packaged()
        if not path.is_file():
            raise InputError(
                f"the packaged corpus {path} is missing; reinstall value_lens or pass corpus=..."
            )
        items, where = _read_file(path), str(path)
    elif isinstance(source, (str, os.PathLike)):
        items, where = _read_file(Path(source)), str(source)
    else:
        items, where = list(source), "corpus"
    paras = [_from_item(i, it, where) for i, it in enumerate(items)]
    seen: set[str] = set()
    for p in paras:
        if len(p.text.split()) < MIN_WORDS:
            raise InputError(
                f"{where}: paragraph {p.id!r} has fewer than {MIN_WORDS} words ({p.text!r}); "
                "remove it or write a longer paragraph"
            )
        if p.id in seen:
            raise InputError(f"{where}: paragraph id {p.id!r} appears twice; ids must be unique")
        seen.add(p.id)
    if len(paras) < MIN_CORPUS:
        raise InputError(
            f"{where} has {len(paras)} paragraph(s); the game needs at least {MIN_CORPUS} "
            "(and up to 8 per conversation)"
        )
    return paras
