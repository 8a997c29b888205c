"""The main job: the whole value-axis story in one resumable call (``value-lens demo``).

Steps, each saved under ``out`` as it finishes so that a rerun resumes where a killed run
stopped (``steps.jsonl`` lists the finished ones):

1. ``data``: scripted ICRL conversations (``conversations.jsonl``), labelled structurally, with
   placebo turns (failed attempts cut at a pseudo-reward) for the sweep's controls.
2. ``stats``: per-criterion statistics at every layer. When the labelled tokens' residuals fit
   ``memory_budget_gb`` (2 GB by default), one
   forward pass keeps them and gives both the statistics and the held-out sweep (step 4 then
   reuses it); above the budget, a streaming collection pass here and a projection pass in
   step 4. The log says which path was taken.
3. ``axis``: fit the value axis on all criteria (``axis.safetensors``).
4. ``sweep``: held-out layer sweep by criterion with its controls: the difference-in-differences
   axis, the AUROC matched on distance to the turn end, the AUROC on placebo turns, position
   scores, sign-aligned random directions (``sweep.csv``, ``layer_cosine.csv``).
5. ``code``: the correct-vs-corrupted code suite at the best held-out layer, data without the
   within-turn position confound: Cohen's d with a bootstrap CI over problems (``code.csv``,
   ``code_summary.csv``, ``run.json`` ``code_suite``).
6. ``heatmaps``: token heatmaps of a successful turn and a failed turn of a conversation whose
   criterion the heatmap axis never saw (``trace-*.json``).
7. ``dose``: a small steering dose-response at the best held-out layer (``dose.csv``,
   ``dose_slopes.csv``).
8. ``report``: ``report.html``, one offline file; its first section answers whether the axis
   reads more than position (:func:`value_lens.analysis.confounds.value_beyond_position`).

Settings (:class:`DemoConfig`):

* default (:data:`FULL`): 12 criteria (6 syntactic, 6 semantic), the shortest labelled turn of 3
  conversations each (about 13k SmolLM2 tokens), 5 held-out splits of 8 training criteria, a
  5-strength dose-response (-16.8 to +16.8% of the residual norm) on 4 prompts x 40 tokens,
  12 stdlib functions x 4 corruptions for the code suite.
  Meant to finish within 10 minutes on a 2-core CPU with the embedded SmolLM2-135M
  (``benchmarks/bench_demo.py`` measures it).
* ``quick=True`` (:data:`QUICK`): 5 criteria, 2 splits, 3 strengths on 2 prompts x 12 tokens,
  4 code problems; the reduced setting CI runs.
* ``paper=True`` (:data:`PAPER`, the default on CUDA devices): all 50 criteria, 8
  conversations each (about the paper's 380), every labelled turn, 10 splits of 35 training
  criteria, heatmaps at layer 20 (the paper's 21), steering at layers 20, 22 and 24 with the
  paper's strengths, 16 prompts x 256 sampled tokens (T=0.7) and 2 seeds, 225 code problems
  (the paper's DebugBench count, here stdlib functions). For example
  ``value-lens demo --model Qwen/Qwen3-8B --device cuda``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from value_lens.core.conventions import resolve_layers
from value_lens.core.io import JsonlLog
from value_lens.core.model import model_id, n_layers
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.stats import ActivationStats
from value_lens.pipeline import read_steps, steer_steps, steps, sweep_steps
from value_lens.pipeline.demo_config import FULL, PAPER, QUICK, DemoConfig, demo_config
from value_lens.pipeline.options import (
    STEER_PROMPTS,
    load_model_option,
    parse_criteria,
    parse_layers,
)
from value_lens.pipeline.rundir import read_meta, update_meta
from value_lens.steering.dose import DOSE_GENERATION

__all__ = ["FULL", "PAPER", "QUICK", "DemoConfig", "demo_config", "run_demo"]


STEPS = ("data", "stats", "axis", "sweep", "code", "heatmaps", "dose", "report")


class _Demo:
    """The demo's state: data, statistics and axis, each made (or reused) when a step needs it."""

    def __init__(
        self,
        model: GenerativeModel,
        out: Path,
        cfg: DemoConfig,
        *,
        seed: int,
        layers: list[int] | None,
        corpus: str | os.PathLike[str] | None,
        log: Callable[[str], None],
    ) -> None:
        self.model, self.out, self.cfg, self.seed = model, out, cfg, seed
        self.layers, self.corpus, self.log = layers, corpus, log
        self.done: dict[str, dict[str, Any]] = {}

    def say(self, msg: str) -> None:
        self.log(f"[demo] {msg}")

    @cached_property
    def data(self) -> steps.Data:
        cfg = self.cfg
        return steps.build_data(
            self.model,
            self.out,
            n_per_criterion=cfg.n_per_criterion,
            criteria=parse_criteria(cfg.criteria),
            seed=self.seed,
            corpus=self.corpus,
            placebo=True,
            keep_per_criterion=cfg.keep_per_criterion,
        )

    @cached_property
    def stats(self) -> ActivationStats:
        """Saved statistics when they match; else the sweep's own pass makes them (one forward
        pass for both when the residuals fit the memory budget); else a collection pass."""
        want = resolve_layers(self.layers, n_layers(self.model))
        saved = steps.saved_stats(self.out, self.data.tokens, want)
        if saved is not None:
            return saved
        made = self._sweep(keep_stats=True).result.stats
        if made is not None:
            return made
        return steps.collect(
            self.model,
            self.data.tokens,
            self.out,
            layers=self.layers,
            batch_size=self.cfg.batch_size,
            log=self.say,
        )

    def _sweep(self, *, keep_stats: bool = False) -> sweep_steps.Sweep:
        cfg = self.cfg
        return sweep_steps.sweep(
            self.model,
            self.data.tokens,
            self.out,
            layers=self.layers,
            n_splits=cfg.n_splits,
            train_fraction=cfg.train_fraction,
            seed=self.seed,
            batch_size=cfg.batch_size,
            memory_budget_gb=cfg.memory_budget_gb,
            keep_stats=keep_stats,
            log=self.say,
        )

    @cached_property
    def axis(self) -> ValueAxis:
        path = self.out / steps.AXIS_FILE
        if "axis" in self.done and path.exists():
            return ValueAxis.load(path)
        return steps.fit(self.stats, self.out)

    @property
    def best(self) -> int:
        return int(self.done["sweep"]["best_layer"])

    @property
    def heatmap_layer(self) -> int:
        layer = self.cfg.heatmap_layer
        return layer if layer is not None and layer in self.axis.layers else self.best

    # ------------------------------------------------------------------ the steps
    def data_step(self) -> dict[str, Any]:
        d = self.data
        return {
            "conversations": len(d.conversations),
            "turns": len(d.tokens),
            "tokens": d.tokens.n_tokens,
            "dropped": d.report.reasons(),
        }

    def stats_step(self) -> dict[str, Any]:
        return {"layers": len(self.stats.layers)}

    def axis_step(self) -> dict[str, Any]:
        return {"layers": len(self.axis.layers)}

    def sweep_step(self) -> dict[str, Any]:
        sw = self._sweep()
        self.say(sw.summary().splitlines()[-1])  # the position verdict
        return {
            "best_layer": sw.best_layer,
            "best_auroc": float(sw.table["token_auroc_mean"].max()),
            "forward_passes": sw.result.timings.get("passes", 0),
        }

    def code_step(self) -> dict[str, Any]:
        cfg = self.cfg
        self.say(f"code suite at layer {self.best}: {cfg.code_problems} problems")
        ev = read_steps.evaluate(
            self.model,
            self.axis,
            self.out,
            suite="code",
            layer=self.best,
            n=cfg.code_problems,
            seed=self.seed,
            enable_thinking=cfg.enable_thinking,
            n_boot=cfg.code_boot,
            progress=False,
        )
        head = ev.headline or {"layer": ev.layer}
        return {k: head[k] for k in ("layer", "d", "d_ci_lo", "d_ci_hi", "n_pairs") if k in head}

    def heatmaps_step(self) -> dict[str, Any]:
        return read_steps.heatmaps(self.model, self.stats, self.data, self.heatmap_layer, self.out)

    def dose_step(self) -> dict[str, Any]:
        cfg = self.cfg
        layers = [x for x in cfg.dose_layers if x in self.axis.layers] or [self.heatmap_layer]
        gen = DOSE_GENERATION.with_overrides(
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            batch_size=cfg.batch_size,
            enable_thinking=cfg.enable_thinking,
            seed=self.seed,
        )
        prompts = STEER_PROMPTS[: cfg.dose_prompts]
        steer_steps.dose(
            self.model,
            self.axis,
            prompts,
            self.out,
            layers=layers,
            alphas=cfg.dose_alphas,
            unit="percent",
            seeds=cfg.dose_seeds,
            gen=gen,
        )
        return {"layers": layers}

    def report_step(self) -> dict[str, Any]:
        title = f"value_lens demo: {model_id(self.model)}"
        return {"path": str(steps.report(self.out, title=title, intro=_INTRO))}

    def plan(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """The steps in order, each a name (``steps.jsonl``) and what runs it."""
        return [(name, getattr(self, f"{name}_step")) for name in STEPS]


def run_demo(
    model: GenerativeModel | str | None = None,
    out: str | os.PathLike[str] = "value_lens_out/demo",
    *,
    device: str = "cpu",
    dtype: str | None = None,
    seed: int = 0,
    quick: bool = False,
    paper: bool | None = None,
    config: DemoConfig | None = None,
    layers: str | None = None,
    criteria: str | None = None,
    corpus: str | os.PathLike[str] | None = None,
    memory_budget_gb: float | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or resume) the demo and return the path of ``report.html``.

    Args:
        model: ``None`` (embedded SmolLM2), ``"tiny"``, a directory or hub id, or a loaded model.
        out: the results folder; finished steps there are reused.
        device / dtype: where and how to load the model.
        seed: seeds the data, the splits and the sampling.
        quick / paper / config: the setting (see :func:`demo_config`); ``config`` overrides.
        layers: layers to collect and sweep (``"all"`` by default).
        criteria: overrides the setting's ICRL criteria.
        corpus: your own paragraph file (default: the packaged corpus).
        memory_budget_gb: overrides the setting's budget for the one-pass path.
        log: where progress lines go.
    """
    cfg = config or demo_config(quick=quick, paper=paper, device=device)
    if criteria is not None:
        cfg = dataclasses.replace(cfg, criteria=criteria)
    if memory_budget_gb is not None:
        cfg = dataclasses.replace(cfg, memory_budget_gb=memory_budget_gb)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    m = model
    if m is None or isinstance(m, str):
        log(f"[demo] loading {m or 'the embedded SmolLM2-135M-Instruct'} on {device}")
        m = load_model_option(m, device=device, dtype=dtype)
    settings = {
        "config": dataclasses.asdict(cfg),
        "seed": seed,
        "layers": layers,
        "model": model_id(m),
        "corpus": None if corpus is None else str(corpus),
    }
    old = read_meta(out).get("demo")
    if old is not None and old != _jsonable(settings):
        raise InputError(
            f"{out} holds a demo run with other settings ({old.get('model')}, {old.get('config')}); "
            "pass a new --out folder or delete this one"
        )
    update_meta(out, demo=settings, model=model_id(m), seed=seed)
    demo = _Demo(
        m, out, cfg, seed=seed, layers=parse_layers(layers, n_layers(m)), corpus=corpus, log=log
    )
    finished = JsonlLog(out / "steps.jsonl", key="step")
    demo.done = {r["step"]: r for r in finished}
    for name, run in demo.plan():
        if name in demo.done:
            continue
        record = {"step": name, **run()}
        record["seconds"] = round(time.perf_counter() - t0, 1)
        finished.append(record)
        demo.done[name] = record
        demo.say(f"{name} done ({time.perf_counter() - t0:.0f} s): {record}")
    path = out / "report.html"
    log(f"[demo] finished in {time.perf_counter() - t0:.0f} s: {path}")
    return path


_INTRO = (
    "The value axis is the mean difference, per criterion, between residual-stream activations "
    "after and before the token where the model's reply first satisfies a hidden rewarded "
    "criterion (Jiang, Kauvar and Lindsey 2026). AFTER tokens are also later in the turn, so "
    "closeness to the turn end separates them too: the controls below say how much of the "
    "held-out AUROC survives it (the axis matched on distance to the turn end, the axis on "
    "placebo turns, i.e. failed attempts cut at a pseudo-reward, and the difference-in-"
    "differences axis that subtracts the placebo contrast), next to position scores and "
    "sign-aligned random directions, each at the best held-out layer with its interval. The "
    "code suite tests the axis where both versions sit at the same position. The heatmaps use "
    "an axis fitted without the shown criterion. Steering strengths are in percent of the "
    "layer's mean residual norm."
)


def _jsonable(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x, default=str))
