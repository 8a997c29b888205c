"""Options of the pipeline's steps, read from strings (the command line) or chosen by default:
layers, criteria, the model and axis to load, what to collect for a fitting method and a
strength unit, the default layer, the default steering prompts.

Example:
    >>> parse_layers("0-2,5", 8), parse_layers("all", 8), parse_layers("-1", 8)
    ([0, 1, 2, 5], [0, 1, 2, 3, 4, 5, 6, 7], [7])
    >>> parse_criteria("semicolon,colon")
    ['semicolon', 'colon']
    >>> need = collect_requirements("ridge", "percent")
    >>> need["moments"], need["sample_per_class"], need["plan"].class_moments
    (True, 0, False)
    >>> collect_requirements("mean_diff", "sd")["moments"]
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from value_lens.core.conventions import default_layer, resolve_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.methods.fit_logistic import LOGISTIC_SAMPLE as _LOGISTIC_SAMPLE
from value_lens.fitting.plan import CollectPlan

if TYPE_CHECKING:
    from value_lens.steering.strength import Unit

__all__ = [
    "LOGISTIC_SAMPLE",
    "STEER_PROMPTS",
    "TINY",
    "collect_requirements",
    "layer_or_default",
    "load_axis_option",
    "load_model_option",
    "parse_criteria",
    "parse_layers",
    "parse_unit",
    "read_prompts",
]

#: default prompts of steering runs: math (backtracking, length), code (verbosity), yes/no.
STEER_PROMPTS: tuple[str, ...] = (
    "What is 17 * 24? Think step by step, then give the answer.",
    "Write a Python function that returns the n-th Fibonacci number.",
    "A train leaves at 3:40 pm and the trip takes 2 hours 35 minutes. When does it arrive?",
    "Is 91 a prime number? Answer Yes or No, then explain briefly.",
    "Write a Python function that checks whether a string is a palindrome.",
    "If a shirt costs $20 after a 20% discount, what was the original price?",
    "Do you think you can solve a hard logic puzzle correctly? Respond only Yes or No.",
    "Sort the list [5, 3, 9, 1] in Python without using sorted().",
)

#: token vectors sampled per label for ``method="logistic"`` (the probe's training set)
LOGISTIC_SAMPLE = _LOGISTIC_SAMPLE

#: the ``--model`` value that selects :func:`value_lens.testing.tiny_qwen3` (for tests).
TINY = "tiny"


def load_model_option(
    model: str | None, *, device: str = "cpu", dtype: str | None = None, n_ctx: int | None = None
) -> Any:
    """Load ``--model``: ``None`` = embedded SmolLM2, ``"tiny"`` = the tiny test model, else a
    directory or hub id (see :func:`value_lens.load_model`).

    The tiny model's context is raised to 8192 tokens (its rotary embedding has no hard limit) so
    whole ICRL conversations fit, as they do for real models.
    """
    if model == TINY:
        from value_lens.testing import tiny_qwen3

        m = tiny_qwen3()
        m.cfg.n_ctx = int(n_ctx or 8192)
        return m
    from value_lens.core.model import load_model

    return load_model(model, device=device, dtype=dtype, n_ctx=n_ctx)


def load_axis_option(path: str | os.PathLike[str], model: GenerativeModel) -> ValueAxis:
    """Load ``--axis``: a saved ValueAxis (``.safetensors``) or the paper's ``value_axis.npy``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"axis file {p} does not exist; run `value-lens build --out DIR` first")
    axis = ValueAxis.from_official(p, model) if p.suffix == ".npy" else ValueAxis.load(p)
    axis.check_compatible(model)
    return axis


def parse_layers(spec: str | None, n_layers: int) -> list[int] | None:
    """``"all"``/None -> every layer (None if spec is None); ``"20"``, ``"-1"``, ``"10-20"``,
    ``"3,5,7"`` and mixtures -> a sorted list (checked against ``n_layers``)."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.lower() == "all":
        return list(range(n_layers))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a, b = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                lo, hi = resolve_layers([int(a), int(b)], n_layers)
                out.extend(range(lo, hi + 1))
            else:
                out.extend(resolve_layers([int(part)], n_layers))
        except ValueError:
            raise InputError(
                f"cannot read layers {spec!r}; use e.g. 20, -1, 10-20, 3,5,7 or all"
            ) from None
    return sorted(set(out))


def parse_criteria(spec: str | None) -> list[str] | None:
    """``None``/``"all"`` -> all 50; ``"syntactic"``/``"semantic"``; ``"first:N"``; or names."""
    if spec is None or spec.strip().lower() == "all":
        return None
    from value_lens.data.icrl import CRITERIA

    spec = spec.strip()
    if spec in {"syntactic", "semantic"}:
        return [n for n, c in CRITERIA.items() if c.kind == spec]
    if spec.startswith("first:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"cannot read {spec!r}; use first:N with an integer N") from None
        if k < 2:
            raise InputError("first:N needs N >= 2 criteria")
        return _interleaved(CRITERIA)[:k]
    return [s.strip() for s in spec.split(",") if s.strip()]


def _interleaved(criteria: Any) -> list[str]:
    """Criterion names alternating syntactic and semantic (so ``first:N`` mixes both kinds)."""
    syn = [n for n, c in criteria.items() if c.kind == "syntactic"]
    sem = [n for n, c in criteria.items() if c.kind == "semantic"]
    out = []
    for i in range(max(len(syn), len(sem))):
        out += ([syn[i]] if i < len(syn) else []) + ([sem[i]] if i < len(sem) else [])
    return out


def collect_requirements(
    method: str = "mean_diff", unit: str = "percent", *, per_split: bool = False
) -> dict[str, Any]:
    """What :func:`~value_lens.fitting.collect.collect_stats` must keep so that the axis can be
    fitted with ``method`` and later steered in ``unit``: its keyword arguments ``moments``,
    ``sample_per_class`` and ``plan`` (the whole :class:`~value_lens.fitting.plan.CollectPlan`).

    The method's needs come from its registered :class:`~value_lens.fitting.methods.Fitter`
    (``ridge``: second moments; ``logistic``: a token sample of :data:`LOGISTIC_SAMPLE` per
    label; ``lda``: per-criterion class moments; ``erased``: those plus position cross-moments;
    ``standardized``: squared sums); ``per_split`` adds what refits on some criteria need (a
    sweep's). The ``sd`` unit needs the second moments that give each layer's projection sd;
    ``percent`` (the mean residual norm) and ``raw`` need nothing extra.

    Raises:
        InputError: for an unknown method or unit.
    """
    from value_lens.fitting.methods import needs
    from value_lens.steering.strength import UNITS

    if unit not in UNITS:
        raise InputError(f"unknown strength unit {unit!r}; use one of {list(UNITS)}")
    plan = needs(method, per_split=per_split)
    if unit == "sd" and not plan.class_moments:
        plan = plan | CollectPlan(moments=True)
    return {"moments": plan.moments, "sample_per_class": plan.sample_per_class, "plan": plan}


def layer_or_default(
    model: GenerativeModel, available: Sequence[int], layer: int | None = None
) -> int:
    """``layer``, or when None :func:`~value_lens.core.conventions.default_layer` among
    ``available`` (e.g. an axis's layers): the paper's layer 20 on a 36-block model, else the
    layer closest to the middle block."""
    from value_lens.core.model import n_layers

    return int(layer) if layer is not None else default_layer(n_layers(model), available)


def read_prompts(
    prompts: list[str] | None = None, file: str | os.PathLike[str] | None = None
) -> list[str]:
    """``prompts`` plus the non-empty lines of ``file``; :data:`STEER_PROMPTS` if both are empty.

    Example:
        >>> read_prompts(["hi"]), len(read_prompts()) == len(STEER_PROMPTS)
        (['hi'], True)
    """
    out = list(prompts or [])
    if file is not None:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
        out += [line.strip() for line in lines if line.strip()]
    return out or list(STEER_PROMPTS)


def parse_unit(unit: str) -> Unit:
    """A strength unit (:data:`value_lens.steering.strength.UNITS`) read from a string.

    Example:
        >>> parse_unit("sd")
        'sd'
    """
    from value_lens.steering.strength import UNITS

    if unit not in UNITS:
        raise InputError(f"unknown strength unit {unit!r}; use one of {list(UNITS)}")
    return cast("Unit", unit)
