"""Where the shipped data files are (read them with :func:`value_lens.core.io.read_jsonl`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["corpus_path"]


def corpus_path(name: str) -> Path:
    """Path of a file shipped in ``value_lens/data/corpora``."""
    return Path(str(resources.files("value_lens.data") / "corpora" / name))
