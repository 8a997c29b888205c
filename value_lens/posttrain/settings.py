"""Settings of the post-training recipes: the paper's protocol as defaults, every field
overridable to shrink a run for a CPU.

Example:
    >>> s = DPOSettings().replace(epochs=1, lora={"r": 8})
    >>> (s.epochs, s.lora.r, s.lora.alpha, s.beta)
    (1, 8, 32, 0.1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from value_lens.errors import InputError

__all__ = ["DPOSettings", "LoraSettings", "SFTSettings"]


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter: rank ``r``, scaling ``alpha``, ``dropout`` and the modules it targets
    (``"all-linear"`` = every linear layer but the output head; no bias is trained)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target: str | tuple[str, ...] = "all-linear"

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise InputError(
                f"LoRA needs r >= 1, alpha > 0 and 0 <= dropout < 1; got r={self.r}, "
                f"alpha={self.alpha}, dropout={self.dropout}"
            )


def _lora(value: LoraSettings | dict[str, Any]) -> LoraSettings:
    if isinstance(value, LoraSettings):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {f.name for f in dataclasses.fields(LoraSettings)}
        if unknown:
            raise InputError(
                f"unknown LoRA setting(s) {sorted(unknown)}; use r, alpha, dropout, target"
            )
        return LoraSettings(**value)
    raise InputError(f"lora must be a LoraSettings or a dict, got {type(value).__name__}")


@dataclass(frozen=True)
class _Common:
    """Fields shared by both recipes. ``batch_size`` is per step; the effective batch is
    ``batch_size * grad_accum``. ``bf16``/``gradient_checkpointing`` ``None`` = automatic: on
    when CUDA is available (bf16 only where supported), off on a CPU, where trl's own defaults
    (both on) fail or crawl. ``max_steps`` > 0 stops early (a smoke run). ``output_dir`` ``None``
    = a temporary folder, deleted afterwards. ``enable_thinking=False`` is passed to the chat
    template (as the paper did for Qwen3; templates without the switch ignore it). ``progress``: a
    bar over the optimiser steps with the time left (:func:`value_lens.core.progress.progress`;
    None = in a notebook or a terminal only; True also shows datasets' preprocessing bars)."""

    lora: LoraSettings | dict[str, Any] = field(default_factory=LoraSettings)
    lr: float = 5e-5
    scheduler: str = "cosine"
    warmup_ratio: float = 0.0  # fraction of the steps, in [0, 1)
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    seed: int = 42
    max_steps: int = -1
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    enable_thinking: bool = False
    output_dir: str | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora", _lora(self.lora))  # a dict becomes LoraSettings
        if self.lr <= 0 or self.epochs <= 0 or self.batch_size < 1 or self.grad_accum < 1:
            raise InputError(
                "lr and epochs must be positive and batch_size, grad_accum at least 1; got "
                f"lr={self.lr}, epochs={self.epochs}, batch_size={self.batch_size}, "
                f"grad_accum={self.grad_accum}"
            )
        if self.max_length < 8:
            raise InputError(f"max_length {self.max_length} is too short for a chat turn; use >= 8")

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` (unknown names raise an error listing the known ones)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DPOSettings(_Common):
    """Sigmoid DPO, the paper's word-preference run (Fig 12): LoRA r16/α32/dropout 0.05 on all
    linear layers, β 0.1, lr 5e-5 cosine, 6 epochs, batch 8, max length 512, seed 42.
    ``precompute_ref`` computes the reference log-probs once before training (faster on CPU)."""

    beta: float = 0.1
    epochs: float = 6.0
    precompute_ref: bool = False


@dataclass(frozen=True)
class SFTSettings(_Common):
    """Supervised fine-tuning, the paper's domain runs (Fig 9): LoRA r16/α32/dropout 0.05,
    3 epochs, lr 2e-5 cosine, effective batch 16, max length 1024. ``completion_only`` trains on
    the last assistant message only (value_lens's choice; the paper does not say)."""

    lr: float = 2e-5
    epochs: float = 3.0
    batch_size: int = 16
    max_length: int = 1024
    completion_only: bool = True
