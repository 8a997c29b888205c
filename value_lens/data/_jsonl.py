"""Reading shipped and user JSONL files with errors that say which line to fix and how."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from value_lens.errors import InputError

__all__ = ["corpus_path", "read_jsonl"]


def corpus_path(name: str) -> Path:
    """Path of a file shipped in ``value_lens/data/corpora``."""
    return Path(str(resources.files("value_lens.data") / "corpora" / name))


def read_jsonl(
    path: str | os.PathLike[str], required: Sequence[str], *, example: str
) -> list[dict[str, Any]]:
    """Records of a JSONL file, each an object with the ``required`` keys.

    ``example`` is one valid line, quoted in every error message.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist; pass a JSONL file with lines like {example}")
    out = []
    with p.open(encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"{p}:{no} is not valid JSON ({e.msg}); write one object per line, e.g. "
                    f"{example}"
                ) from None
            if not isinstance(rec, dict):
                raise InputError(f"{p}:{no} is not a JSON object; write lines like {example}")
            missing = [k for k in required if k not in rec]
            if missing:
                raise InputError(
                    f"{p}:{no} lacks key(s) {missing}; every line needs {list(required)}, e.g. "
                    f"{example}"
                )
            out.append(rec)
    if not out:
        raise InputError(f"{p} holds no records; add lines like {example}")
    return out
