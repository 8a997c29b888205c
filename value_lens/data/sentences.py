"""Natural sentences that use a word, for reading the value of that word outside the training
format (the paper's Fig 7b prefills 20 such sentences per word as the assistant's reply).

A shipped set has 20 sentences for each of 10 everyday nouns (all in the preference item pool);
your own sentences come as a mapping or as JSONL lines ``{"word": ..., "sentence": ...}``. Every
sentence must contain its word as a whole word (any case); :func:`word_span` finds it.

Example:
    >>> s = word_sentences(["kite"])
    >>> len(s["kite"])
    20
    >>> text = s["kite"][0]
    >>> text[slice(*word_span(text, "kite"))]
    'kite'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from value_lens.core.io import read_jsonl
from value_lens.data._jsonl import corpus_path
from value_lens.errors import InputError

__all__ = ["check_sentences", "load_word_sentences", "shipped_words", "word_sentences", "word_span"]

_EXAMPLE = '{"word": "kite", "sentence": "The kite rose over the hill."}'


def word_span(sentence: str, word: str) -> tuple[int, int]:
    """Character span ``(start, end)`` of the first whole-word, any-case use of ``word``."""
    m = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", sentence, flags=re.IGNORECASE)
    if m is None:
        raise InputError(
            f"{sentence!r} does not contain the word {word!r}; every sentence must use its word"
        )
    return m.start(), m.end()


def check_sentences(sentences: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Validated copy of a ``{word: [sentence, ...]}`` mapping (each sentence uses its word)."""
    if not sentences:
        raise InputError("no sentences; pass {word: [sentence, ...]} with at least one word")
    out: dict[str, list[str]] = {}
    for word, texts in sentences.items():
        if isinstance(texts, str):
            raise InputError(f"the sentences of {word!r} must be a list of strings, not one string")
        if not word.strip() or not texts:
            raise InputError(f"word {word!r} needs a non-empty name and at least one sentence")
        for t in texts:
            word_span(t, word)
        out[word] = list(texts)
    return out


def _shipped() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in read_jsonl(
        corpus_path("word_sentences.jsonl"), ["word", "sentence"], example=_EXAMPLE
    ):
        out.setdefault(r["word"], []).append(r["sentence"])
    return out


def shipped_words() -> tuple[str, ...]:
    """The words the shipped set covers."""
    return tuple(sorted(_shipped()))


def word_sentences(words: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Shipped sentences for ``words`` (default: all shipped words)."""
    data = _shipped()
    if words is None:
        return data
    missing = [w for w in words if w not in data]
    if missing:
        raise InputError(
            f"no shipped sentences for {missing}; shipped words are {sorted(data)}. Pass your "
            "own with load_word_sentences(path) or check_sentences({word: [...]})"
        )
    return {w: data[w] for w in words}


def load_word_sentences(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Sentences from a JSONL file of ``{"word": ..., "sentence": ...}`` lines, validated."""
    out: dict[str, list[str]] = {}
    for no, r in enumerate(read_jsonl(path, ["word", "sentence"], example=_EXAMPLE), 1):
        word, text = r["word"], r["sentence"]
        if not isinstance(word, str) or not isinstance(text, str):
            raise InputError(
                f"{path}: record {no}: word and sentence must be strings; e.g. {_EXAMPLE}"
            )
        try:
            word_span(text, word)
        except InputError:
            raise InputError(
                f"{path}: record {no}: the sentence {text!r} does not use the word {word!r}; fix "
                "the sentence or the word (whole word, any case)"
            ) from None
        out.setdefault(word, []).append(text)
    return out
