"""The demo's settings: :class:`DemoConfig` and its presets (:data:`QUICK` for CI,
:data:`FULL` the default, :data:`PAPER` on GPUs), chosen by :func:`demo_config`.

Example:
    >>> demo_config(device="cuda:0") is PAPER, demo_config(quick=True).n_splits
    (True, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from value_lens.errors import InputError

__all__ = ["FULL", "PAPER", "QUICK", "DemoConfig", "demo_config"]


@dataclass(frozen=True)
class DemoConfig:
    """How much the demo does. ``n_train`` is the fraction of criteria used for training."""

    criteria: str = "first:12"
    n_per_criterion: int = 3
    keep_per_criterion: int | None = 1  # keep the shortest labelled turns (None: all)
    n_splits: int = 5
    train_fraction: float = 0.7
    heatmap_layer: int | None = None  # None: the best held-out layer
    dose_layers: tuple[int, ...] = ()  # (): the heatmap layer
    dose_alphas: tuple[float, ...] = (-16.8, -8.4, 0.0, 8.4, 16.8)
    dose_prompts: int = 4
    dose_seeds: int = 1
    max_new_tokens: int = 40
    temperature: float = 0.0
    batch_size: int = 4
    enable_thinking: bool = False  # the paper's chat-template setting (recorded in run.json)
    code_problems: int = 12  # stdlib functions of the code suite (each x every corruption)
    code_boot: int = 2000  # bootstrap resamples (over problems) of the code suite's Cohen's d
    memory_budget_gb: float = 2.0  # one forward pass for statistics and sweep when they fit


#: about 1-2 minutes on a 2-core CPU with SmolLM2 (CI).
QUICK = DemoConfig(
    criteria="first:5",
    n_per_criterion=2,
    n_splits=2,
    train_fraction=0.6,
    dose_alphas=(-16.8, 0.0, 16.8),
    dose_prompts=2,
    max_new_tokens=12,
    code_problems=4,
)
#: the default: within 10 minutes on a 2-core CPU with SmolLM2.
FULL = DemoConfig()
#: paper scale (GPU): all 50 criteria, ~400 conversations, 35 training criteria per split,
#: layer 20 (the paper's 21), the paper's grid of +-8.4/16.8% of the residual norm.
PAPER = DemoConfig(
    criteria="all",
    n_per_criterion=8,
    keep_per_criterion=None,
    n_splits=10,
    train_fraction=0.7,
    heatmap_layer=20,
    dose_layers=(20, 22, 24),
    dose_prompts=16,
    dose_seeds=2,
    max_new_tokens=256,
    temperature=0.7,
    batch_size=8,
    code_problems=225,
)


def demo_config(
    *, quick: bool = False, paper: bool | None = None, device: str = "cpu"
) -> DemoConfig:
    """The setting for these switches (``paper=None``: paper scale on CUDA, else the default)."""
    if quick and paper:
        raise InputError("choose --quick or --paper, not both")
    if quick:
        return QUICK
    if paper is None:
        paper = str(device).startswith("cuda")
    return PAPER if paper else FULL
