"""Artifact input/output: atomic writes, safetensors + JSON, and append-only JSONL logs.

Artifacts are safetensors files whose header carries one JSON document under the key
``"value_lens"`` (format name, version, metadata and a SHA-256 of the tensor payload), so a
truncated or edited file is detected on load. Nothing is ever pickled.

Long runs append one JSON line per finished item to a :class:`JsonlLog` and fsync it, so a killed
run loses at most the item in flight and resumes from :meth:`JsonlLog.done_keys`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from value_lens.errors import ArtifactError, InputError

__all__ = [
    "JsonlLog",
    "atomic_write_bytes",
    "atomic_write_text",
    "iter_jsonl",
    "load_artifact",
    "read_jsonl",
    "save_artifact",
    "tensor_digest",
]

_META_KEY = "value_lens"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` (order independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # a fresh stride-1 copy: .contiguous() keeps the stride of a size-1 dimension
        flat = torch.empty(t.numel(), dtype=t.dtype).copy_(t.reshape(-1))
        h.update(flat.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_artifact(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    *,
    kind: str,
    meta: Mapping[str, Any],
    version: int = 1,
) -> Path:
    """Atomically save ``tensors`` plus JSON ``meta`` as one safetensors file."""
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"kind": kind, "version": version, "digest": tensor_digest(clean), "meta": dict(meta)}
    data = st_save(clean, metadata={_META_KEY: json.dumps(header, sort_keys=True)})
    return atomic_write_bytes(path, data)


def load_artifact(
    path: str | os.PathLike[str], *, kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and verify a file written by :func:`save_artifact`; returns ``(tensors, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"{path} does not exist; check the path or re-run the step that writes it"
        )
    raw = path.read_bytes()
    try:
        tensors = st_load(raw)
        n = int.from_bytes(raw[:8], "little")
        header_meta = json.loads(raw[8 : 8 + n]).get("__metadata__") or {}
        header = json.loads(header_meta[_META_KEY])
    except (SafetensorError, ValueError, KeyError, json.JSONDecodeError, OverflowError) as exc:
        raise ArtifactError(
            f"{path} is not a readable value_lens {kind} file (truncated or not safetensors: {exc}); "
            "re-create it with the step that wrote it"
        ) from None
    if header.get("kind") != kind:
        raise ArtifactError(f"{path} holds a {header.get('kind')!r}, not a {kind!r}")
    if tensor_digest(tensors) != header.get("digest"):
        raise ArtifactError(
            f"{path} failed its checksum: the tensors were edited or corrupted after saving; "
            "re-create the file"
        )
    return dict(tensors), dict(header.get("meta", {}))


def iter_jsonl(
    path: str | os.PathLike[str], *, example: str | None = None, objects: bool = True
) -> Iterator[tuple[int, Any]]:
    """``(line number, record)`` of every non-blank line of a JSON-lines input file.

    The one reader of JSONL *inputs* (corpora, problem sets, conversation files, prompt files):
    a missing file, a line that is not JSON and (with ``objects``) a line that is not a JSON
    object raise :class:`~value_lens.errors.InputError` naming the file and line, quoting
    ``example`` (one valid line) when given. Append-only logs of finished work are
    :class:`JsonlLog`, which tolerates a torn last line instead.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
        >>> _ = f.write_text('{"a": 1}\\n\\n{"a": 2}\\n')
        >>> list(iter_jsonl(f))
        [(1, {'a': 1}), (3, {'a': 2})]
    """
    p = Path(path)
    like = f"; write lines like {example}" if example else ""
    if not p.is_file():
        raise InputError(f"{p} does not exist{like}")
    with p.open(encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"{p} line {no} is not valid JSON ({e.msg}); write one JSON value per line{like}"
                ) from None
            if objects and not isinstance(rec, dict):
                raise InputError(
                    f"{p} line {no} is not a JSON object{like or '; write one per line'}"
                )
            yield no, rec


def read_jsonl(
    path: str | os.PathLike[str], required: Sequence[str] = (), *, example: str | None = None
) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL input file, each with the ``required`` keys (at least one).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
        >>> _ = f.write_text('{"q": "2+2", "a": 4}\\n')
        >>> read_jsonl(f, ["q", "a"])
        [{'q': '2+2', 'a': 4}]
    """
    like = f"; write lines like {example}" if example else ""
    out = []
    for no, rec in iter_jsonl(path, example=example):
        missing = [k for k in required if k not in rec]
        if missing:
            raise InputError(
                f"{path} line {no} lacks key(s) {missing}; every line needs {list(required)}{like}"
            )
        out.append(rec)
    if not out:
        raise InputError(f"{path} holds no records{like}")
    return out


class JsonlLog:
    """An append-only JSON-lines file of finished work items, safe to kill at any moment.

    Each record is written with one ``write`` and ``fsync``. A partial last line (the process died
    mid-write) is ignored on read and cut off before the next append.

    Example:
        >>> import tempfile, pathlib
        >>> log = JsonlLog(pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl", key="id")
        >>> log.append({"id": "a", "x": 1})
        >>> sorted(log.done_keys())
        ['a']
    """

    def __init__(self, path: str | os.PathLike[str], *, key: str = "key") -> None:
        self.path = Path(path)
        self.key = key

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    return  # torn final write
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    return

    def records(self) -> list[dict[str, Any]]:
        """All complete records, in order."""
        return list(self)

    def done_keys(self) -> set[Any]:
        """Keys of all complete records (convert JSON lists back to tuples for hashing)."""
        out: set[Any] = set()
        for rec in self:
            k = rec.get(self.key)
            out.add(tuple(k) if isinstance(k, list) else k)
        return out

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(cut)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record and fsync it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        line = json.dumps(dict(record), sort_keys=True, default=_json_default) + "\n"
        with self.path.open("ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
