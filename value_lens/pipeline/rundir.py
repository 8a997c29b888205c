"""The results directory of a run: its file names, ``run.json`` and saved traces.

Every command of ``value-lens`` (and the demo) writes tidy tables under one ``--out`` folder with
the fixed names of :data:`RESULT_FILES` (:func:`result_files` adds the registered suites'),
plus ``run.json`` (model, layers, seeds, ...; :func:`read_meta`, :func:`update_meta`) and saved
traces for heatmaps (:func:`save_trace`, :func:`load_trace`). This is the contract every step
writes to; :mod:`value_lens.pipeline.report` turns any such folder into ``report.html``.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> update_meta(out, model="tiny", seed=0)["model"], RESULT_FILES["sweep"]
    ('tiny', 'sweep.csv')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from value_lens.analysis.readout import ValueTrace
from value_lens.core.io import atomic_write_text
from value_lens.errors import ArtifactError
from value_lens.evals.registry import suites

__all__ = [
    "META_FILE",
    "RESULT_FILES",
    "TRACE_GLOB",
    "load_trace",
    "read_meta",
    "result_files",
    "save_trace",
    "update_meta",
]

#: result name -> file name inside a results directory.
RESULT_FILES = {
    "sweep": "sweep.csv",
    "methods": "methods.csv",
    "cosine": "layer_cosine.csv",
    "dose": "dose.csv",
    "slopes": "dose_slopes.csv",
    "per_prompt": "dose_per_prompt.csv",
    "reliability": "dose_reliability.csv",
    "selection": "compare_selection.csv",
    "selection_summary": "compare_selection_summary.csv",
    "rank_assistant": "compare_rank_assistant.csv",
    "rank_assistant_summary": "compare_rank_assistant_summary.csv",
    "rank_user": "compare_rank_user.csv",
    "rank_user_summary": "compare_rank_user_summary.csv",
    "word_delta": "compare_word_delta.csv",
    "word_delta_summary": "compare_word_delta_summary.csv",
}


def result_files() -> dict[str, str]:
    """:data:`RESULT_FILES` and the tables of every registered evaluation suite
    (:func:`value_lens.evals.suites`, read now, so suites registered later are included)."""
    return RESULT_FILES | {n: t.file for s in suites().values() for n, t in s.tables.items()}


RESULT_FILES.update(result_files())  # the built-in suites' tables, for direct lookups

META_FILE = "run.json"
TRACE_GLOB = "trace-*.json"


def read_meta(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The run metadata in ``out/run.json`` (empty if none)."""
    p = Path(out) / META_FILE
    if not p.exists():
        return {}
    try:
        return dict(json.loads(p.read_text()))
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{p} is not valid JSON ({exc}); delete it and re-run") from None


def update_meta(out: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``out/run.json`` (atomic) and return the result."""
    meta = read_meta(out)
    meta.update(fields)
    atomic_write_text(Path(out) / META_FILE, json.dumps(meta, indent=1, default=str) + "\n")
    return meta


def save_trace(trace: ValueTrace, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Save a trace as JSON (tokens, layers, cosine, projection) for later reports."""
    rec = {
        "title": title,
        "tokens": trace.tokens,
        "token_ids": trace.token_ids.tolist(),
        "layers": list(trace.layers),
        "cosine": trace.cosine.tolist(),
        "projection": trace.projection.tolist(),
        "model_id": trace.model_id,
    }
    return atomic_write_text(path, json.dumps(rec))


def load_trace(path: str | os.PathLike[str]) -> tuple[ValueTrace, str]:
    """Load a trace written by :func:`save_trace`; returns ``(trace, title)``."""
    try:
        rec = json.loads(Path(path).read_text())
        n = len(rec["tokens"])
        tr = ValueTrace(
            list(rec["tokens"]),
            torch.tensor(rec["token_ids"], dtype=torch.long),
            list(rec["layers"]),
            torch.tensor(rec["cosine"], dtype=torch.float32).reshape(len(rec["layers"]), n),
            torch.tensor(rec["projection"], dtype=torch.float32).reshape(len(rec["layers"]), n),
            torch.full((n, 2), -1, dtype=torch.long),
            "",
            str(rec.get("model_id", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is not a saved value_lens trace ({exc})") from None
    return tr, str(rec.get("title", ""))
