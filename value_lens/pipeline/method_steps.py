"""The method table as a pipeline step: ``methods.csv`` and each method's sweep in a results
directory (``value-lens sweep --method all``).

Example:
    >>> from value_lens.pipeline.rundir import RESULT_FILES
    >>> RESULT_FILES["methods"], METHOD_SWEEPS
    ('methods.csv', 'methods')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from value_lens.analysis.sweep import SweepConfig
from value_lens.compare.methods import MethodTable, MethodTableConfig, method_table
from value_lens.core.model import model_id, n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError
from value_lens.pipeline.launch import from_env
from value_lens.pipeline.options import STEER_PROMPTS
from value_lens.pipeline.rundir import RESULT_FILES, update_meta
from value_lens.pipeline.steps import Log, quiet
from value_lens.pipeline.sweep_steps import train_count

__all__ = ["METHOD_SWEEPS", "methods_from_options", "methods_to_dir"]

METHOD_SWEEPS = "methods"
"""Subfolder of a results directory with each method's sweep table (``<method>_sweep.csv``)."""


def _messages(prompts: Sequence[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p}] for p in prompts]


def methods_to_dir(
    model: GenerativeModel,
    data: LabelledTokens,
    out: str | os.PathLike[str],
    *,
    prompts: Sequence[str] = (),
    config: MethodTableConfig | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 4,
    log: Log = quiet,
) -> MethodTable:
    """Run :func:`~value_lens.compare.methods.method_table` and write ``methods.csv``, each
    method's sweep (``methods/<method>_sweep.csv``) and the settings in ``run.json``."""
    cfg = config or MethodTableConfig()
    methods = cfg.resolved(data)
    log(f"method table: {len(methods)} methods ({', '.join(methods)}), one statistics pass and "
        f"one projection pass; steering on {len(prompts)} prompts")  # fmt: skip
    res = method_table(
        model,
        data,
        _messages(prompts),
        cfg,
        layers=list(layers) if layers is not None else None,
        batch_size=batch_size,
    )
    out = Path(out)
    (out / METHOD_SWEEPS).mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out / RESULT_FILES["methods"], index=False)
    for name, sw in res.sweeps.items():
        sw.table.to_csv(out / METHOD_SWEEPS / f"{name}_sweep.csv", index=False)
    update_meta(
        out,
        model=model_id(model),
        n_layers=n_layers(model),
        methods={
            "methods": list(methods),
            "alphas": list(cfg.alphas),
            "unit": "percent",
            "metrics": list(cfg.metrics),
            "prompts": len(prompts),
            "seeds": list(cfg.seeds),
            "sweep": {k: v for k, v in dataclasses.asdict(cfg.sweep).items() if k != "ci"},
        },
    )
    return res


def methods_from_options(
    model: GenerativeModel,
    data: LabelledTokens,
    out: str | os.PathLike[str],
    n_splits: int,
    n_train: int | None,
    seed: int,
    batch_size: int,
    n_prompts: int,
    *,
    layers: Sequence[int] | None = None,
    log: Log = quiet,
) -> MethodTable:
    """:func:`methods_to_dir` with the sweep command's options: ``n_train`` as
    :func:`~value_lens.pipeline.sweep_steps.train_count` picks it, and the first ``n_prompts``
    of :data:`~value_lens.pipeline.options.STEER_PROMPTS` as steering prompts."""
    if from_env() is not None:
        raise InputError("the method table runs in one process: run it without torchrun")
    n_tr = train_count(len(set(data.groups)), n_train)
    cfg = MethodTableConfig(sweep=SweepConfig(n_splits=n_splits, n_train=n_tr, seed=seed))
    prompts = STEER_PROMPTS[:n_prompts]
    return methods_to_dir(
        model, data, out, prompts=prompts, config=cfg, layers=layers, batch_size=batch_size, log=log
    )
