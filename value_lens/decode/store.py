"""A folder of finished rollout batches, so a killed decoding run resumes where it stopped.

:func:`~value_lens.decode.run.best_of_n` and :func:`~value_lens.decode.run.early_stop` take
``store=DIR`` (:func:`value_lens.decode.rollouts.rollout` takes the :class:`RolloutStore`): each finished batch of rollouts is
written there as one safetensors file (``batch-00000.safetensors``: every recorded tensor, plus
the texts and flags as JSON metadata; nothing is pickled), and a rerun with the same settings
loads the finished batches instead of generating them again. The answer and the verdict are not
stored: they are read again from the text with the task's ``answer`` and ``check``, so a fixed
checker applies to stored rollouts too. A folder that holds rollouts of other settings raises.

Example:
    >>> import tempfile, torch
    >>> from value_lens.decode.rollouts import Sample, Task
    >>> st = RolloutStore(tempfile.mkdtemp(), {"model": "m", "n": 1})
    >>> s = Sample(0, 0, "7", torch.tensor([5]), False, None, 0.0,
    ...            token_stats={"logprob": torch.tensor([-0.5], dtype=torch.float64)})
    >>> st.save(0, [s])
    >>> task = Task(check=lambda p, text: text == "7")
    >>> [(x.text, x.answer, x.correct) for x in st.load(0, ["p"], task)]
    [('7', '7', 1.0)]
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from value_lens.core.generate import GenerationConfig
from value_lens.core.io import atomic_write_text, load_artifact, save_artifact
from value_lens.core.model import model_id
from value_lens.core.protocols import GenerativeModel
from value_lens.decode.rollouts import Needs, Sample, Task
from value_lens.errors import InputError

__all__ = ["RolloutStore"]

_KIND = "value_lens.decode.rollouts"
_MAPS = ("cosine", "projection", "token_stats", "hidden_mean", "unit_mean")


def _dense(t: torch.Tensor) -> torch.Tensor:
    """A copy with standard strides (a one-element slice can keep a stride of 2, which
    ``torch.Tensor.view`` to bytes, as the checksum does, refuses)."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)


class RolloutStore:
    """Finished batches of one rollout run under ``folder`` (see the module docs).

    Args:
        folder: the directory (created when missing).
        run: what identifies the run (model, prompts, ``n``, generation settings, what is
            recorded); a folder written under another ``run`` raises :class:`InputError`.
    """

    def __init__(self, folder: str | os.PathLike[str], run: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.run = json.loads(json.dumps(run, sort_keys=True, default=str))
        self.folder.mkdir(parents=True, exist_ok=True)
        head = self.folder / "run.json"
        if head.exists():
            if json.loads(head.read_text()) != self.run:
                raise InputError(
                    f"{self.folder} holds rollouts of other settings ({head}); pass a new store "
                    "folder or delete it"
                )
        else:
            atomic_write_text(head, json.dumps(self.run, sort_keys=True, indent=1) + "\n")

    @classmethod
    def for_run(
        cls,
        folder: str | os.PathLike[str],
        model: GenerativeModel,
        problems: Sequence[Any],
        n: int,
        needs: Needs,
        task: Task,
        config: GenerationConfig,
    ) -> RolloutStore:
        """The store of one rollout run, keyed by everything that changes what is generated:
        the model, the prompts, ``n``, the axis and layers read, and the generation settings."""
        axis = None
        if needs.axis is not None:
            raw = needs.axis.directions.double().numpy().tobytes()
            axis = hashlib.sha256(raw).hexdigest()[:16]
        run = {
            "model": model_id(model),
            "prompts": [task.prompt_of(p) for p in problems],
            "n": n,
            "axis": axis,
            "value_layers": sorted(needs.value_layers),
            "hidden_layers": sorted(needs.hidden_layers),
            "token_stats": needs.token_stats,
            "generation": config.to_dict(),
        }
        return cls(folder, run)

    def _path(self, batch: int) -> Path:
        return self.folder / f"batch-{batch:05d}.safetensors"

    def has(self, batch: int) -> bool:
        """Whether batch ``batch`` finished."""
        return self._path(batch).is_file()

    def save(self, batch: int, samples: Sequence[Sample]) -> None:
        """Write one finished batch (atomic: a killed write leaves no file)."""
        tensors: dict[str, torch.Tensor] = {}
        meta = []
        for j, s in enumerate(samples):
            tensors[f"{j}/output_ids"] = _dense(s.output_ids.long())
            tensors[f"{j}/prompt_ids"] = _dense(s.prompt_ids.long())
            for what in _MAPS:
                for key, t in getattr(s, what).items():
                    tensors[f"{j}/{what}/{key}"] = _dense(t)
            meta.append(
                {"problem": s.problem, "index": s.index, "text": s.text, "hit_limit": s.hit_limit}
            )
        save_artifact(self._path(batch), tensors, kind=_KIND, meta={"samples": meta})

    def load(self, batch: int, problems: Sequence[Any], task: Task) -> list[Sample]:
        """A finished batch, its answers and verdicts read again with ``task``."""
        tensors, meta = load_artifact(self._path(batch), kind=_KIND)
        out = []
        for j, m in enumerate(meta["samples"]):
            maps: dict[str, dict[Any, torch.Tensor]] = {w: {} for w in _MAPS}
            for name, t in tensors.items():
                row, _, rest = name.partition("/")
                what, _, key = rest.partition("/")
                if int(row) == j and what in maps:
                    maps[what][key if what == "token_stats" else int(key)] = t
            text = str(m["text"])
            out.append(
                Sample(
                    problem=int(m["problem"]),
                    index=int(m["index"]),
                    text=text,
                    output_ids=tensors[f"{j}/output_ids"],
                    hit_limit=bool(m["hit_limit"]),
                    answer=task.answer_of(text),
                    correct=float(task.check(problems[int(m["problem"])], text)),
                    prompt_ids=tensors[f"{j}/prompt_ids"],
                    **maps,  # type: ignore[arg-type]
                )
            )
        return out
