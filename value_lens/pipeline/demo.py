"""The main job: the whole value-axis story in one resumable call (``value-lens demo``).

Steps, each saved under ``out`` as it finishes so that a rerun resumes where a killed run
stopped (``steps.jsonl`` lists the finished ones):

1. ``data``: scripted ICRL conversations (``conversations.jsonl``), labelled structurally, with
   placebo turns (failed attempts cut at a pseudo-reward) for the sweep's controls.
2. ``stats``: one streaming pass collects per-criterion statistics at every layer.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from value_lens.core.io import JsonlLog
from value_lens.errors import InputError

__all__ = ["FULL", "PAPER", "QUICK", "DemoConfig", "code_headline", "demo_config", "run_demo"]


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


#: about 1-2 minutes on a 2-core CPU with SmolLM2 (CI).
QUICK = DemoConfig(criteria="first:5", n_per_criterion=2, n_splits=2, train_fraction=0.6,
                   dose_alphas=(-16.8, 0.0, 16.8), dose_prompts=2, max_new_tokens=12,
                   code_problems=4)  # fmt: skip
#: the default: within 10 minutes on a 2-core CPU with SmolLM2.
FULL = DemoConfig()
#: paper scale (GPU): all 50 criteria, ~400 conversations, 35 training criteria per split,
#: layer 20 (the paper's 21), the paper's grid of +-8.4/16.8% of the residual norm.
PAPER = DemoConfig(criteria="all", n_per_criterion=8, keep_per_criterion=None, n_splits=10,
                   train_fraction=0.7,
                   heatmap_layer=20, dose_layers=(20, 22, 24), dose_prompts=16, dose_seeds=2,
                   max_new_tokens=256, temperature=0.7, batch_size=8,
                   code_problems=225)  # fmt: skip

STEPS = ("data", "stats", "axis", "sweep", "code", "heatmaps", "dose", "report")


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


def _slice(tr: Any, lo: int, hi: int) -> Any:
    """The tokens ``lo:hi`` of a trace (the turn to show)."""
    return dataclasses.replace(
        tr, tokens=tr.tokens[lo:hi], token_ids=tr.token_ids[lo:hi], cosine=tr.cosine[:, lo:hi],
        projection=tr.projection[:, lo:hi], offsets=tr.offsets[lo:hi],
    )  # fmt: skip


def _turn_traces(
    model: Any, axis: Any, messages: list[dict[str, str]], indices: list[int]
) -> list[Any]:
    """Traces of messages ``indices``, cut to each message's tokens, from ONE forward pass over
    the conversation through the user turn after the last of them: every message then reads as
    in the whole conversation (none is a final turn that a template renders specially), and
    causal attention keeps later text out of it."""
    from value_lens.analysis.readout import trace
    from value_lens.core.chat import context_through, format_chat

    context = context_through(messages, max(indices))
    chat = format_chat(model.tokenizer, context, enable_thinking=False)
    tr = trace(model, chat.text, axis)
    out = []
    for index in indices:
        span = chat.spans[index]
        pos = torch.nonzero(tr.char_span_mask(span.start, span.end)).flatten()
        if pos.numel() == 0:
            raise InputError(f"message {index} has no tokens in the traced text")
        out.append(_slice(tr, int(pos[0]), int(pos[-1]) + 1))
    return out


def shortest_per_group(data: Any, keep: int | None) -> Any:
    """The ``keep`` shortest sequences of every group (all if ``keep`` is None), in data order."""
    if keep is None:
        return data
    by_group: dict[str, list[tuple[int, int]]] = {}
    for i, (ids, g) in enumerate(zip(data.input_ids, data.groups, strict=True)):
        by_group.setdefault(g, []).append((ids.numel(), i))
    chosen = sorted(i for rows in by_group.values() for _, i in sorted(rows)[:keep])
    return data.subset(chosen)


def _heatmaps(model: Any, stats: Any, data: Any, convs: list[Any], layer: int, out: Path) -> dict:
    """Fit an axis without one criterion, then trace a success and a failure of that criterion."""
    from value_lens.fitting.axis import ValueAxis
    from value_lens.pipeline.rundir import save_trace

    groups = sorted(set(data.groups))
    held = groups[-1]
    axis = ValueAxis.fit(stats.select_groups([g for g in groups if g != held]))
    meta = next(mt for mt, g in zip(data.meta, data.groups, strict=True) if g == held)
    conv = next(c for c in convs if c.conversation_id == meta["conversation_id"])
    index = conv.assistant_index()
    ok = int(meta["message_index"])
    by_pos = {p.paragraph_position: p for p in conv.paragraphs}
    bad = [mi for (p, a), mi in sorted(index.items(), key=lambda kv: kv[1])
           if not by_pos[p].attempts[a - 1].reward and mi < ok]  # fmt: skip
    shown = {"success": ok}
    if bad:
        shown["failure"] = bad[-1]
    traces = _turn_traces(model, axis, conv.full_messages, list(shown.values()))
    for (name, _), tr in zip(shown.items(), traces, strict=True):
        what = "rewarded (+1) turn" if name == "success" else "failed (-1) turn"
        save_trace(tr, out / f"trace-{1 if name == 'success' else 2}-{name}.json",
                   title=f"Held-out criterion '{held}': a {what} ({conv.conversation_id})")  # fmt: skip
    return {"held_out_criterion": held, "conversation": conv.conversation_id, "layer": layer}


def code_headline(
    table: Any, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Cohen's d (unpaired, pooled sd) of the whole-code readout, correct minus corrupted, over
    every pair of ``table`` (:func:`~value_lens.evals.run_code_suite`'s rows), with a percentile
    bootstrap CI that resamples whole problems (all corruptions of a drawn problem together).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"problem_id": [0, 0, 1, 1, 2, 2], "kind": ["a", "b"] * 3,
        ...                   "correct_whole": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
        ...                   "corrupted_whole": [0.5, 0.0, 1.0, 1.5, 2.0, 2.5]})
        >>> h = code_headline(t, n_boot=200)
        >>> round(h["d"], 3), h["n_problems"], h["n_pairs"], h["pct_correct_higher"]
        (0.82, 3, 6, 100.0)
    """
    from value_lens.analysis.metrics import bootstrap_ci, cohens_d

    t = table.dropna(subset=["correct_whole", "corrupted_whole"])
    a, b = t["correct_whole"].to_numpy(float), t["corrupted_whole"].to_numpy(float)
    d = cohens_d(a, b)
    lo, hi = bootstrap_ci(lambda x, y: float(cohens_d(x, y)), a, b, paired=True,
                          groups=t["problem_id"].to_numpy(), n_boot=n_boot, seed=seed,
                          ci=level)  # fmt: skip
    return {"d": float(d), "d_kind": d.kind, "d_ci_lo": float(lo), "d_ci_hi": float(hi),
            "level": level, "n_boot": n_boot, "ci_cluster": "problem",
            "n_problems": int(t["problem_id"].nunique()), "n_pairs": len(t),
            "pct_correct_higher": 100.0 * float((a > b).mean()),
            "readout": "mean cosine over the whole code"}  # fmt: skip


def _code_suite(model: Any, axis: Any, layer: int, cfg: DemoConfig, seed: int, out: Path) -> dict:
    """Run the code suite at ``layer`` (resumable pair by pair through ``code.jsonl``) and save
    its table, per-kind summary and headline (``run.json`` ``code_suite``)."""
    from value_lens.evals.code import run_code_suite
    from value_lens.pipeline.rundir import RESULT_FILES, update_meta

    res = run_code_suite(model, axis, layer, n_problems=cfg.code_problems, seed=seed,
                         enable_thinking=cfg.enable_thinking, log=out / "code.jsonl",
                         progress=False)  # fmt: skip
    res.table.to_csv(out / RESULT_FILES["code"], index=False)
    res.summary.to_csv(out / RESULT_FILES["code_summary"], index=False)
    head = {"layer": layer, **code_headline(res.table, n_boot=cfg.code_boot, seed=seed)}
    update_meta(out, code_suite=head)
    return {k: head[k] for k in ("layer", "d", "d_ci_lo", "d_ci_hi", "n_pairs")}


def run_demo(
    model: Any = None,
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
        log: where progress lines go.
    """
    from value_lens.core.model import model_id, n_layers
    from value_lens.fitting.axis import ValueAxis
    from value_lens.fitting.stats import ActivationStats
    from value_lens.pipeline.rundir import RESULT_FILES, read_meta, report_from_dir, update_meta
    from value_lens.pipeline.workflow import (
        build_icrl_data,
        load_model_option,
        parse_criteria,
        parse_layers,
    )
    from value_lens.viz.controls import best_layer

    cfg = config or demo_config(quick=quick, paper=paper, device=device)
    if criteria is not None:
        cfg = dataclasses.replace(cfg, criteria=criteria)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    m = model
    if m is None or isinstance(m, str):
        log(f"[demo] loading {m or 'the embedded SmolLM2-135M-Instruct'} on {device}")
        m = load_model_option(m, device=device, dtype=dtype)
    settings = {"config": dataclasses.asdict(cfg), "seed": seed, "layers": layers,
                "model": model_id(m), "corpus": None if corpus is None else str(corpus)}  # fmt: skip
    old = read_meta(out).get("demo")
    if old is not None and old != _jsonable(settings):
        raise InputError(
            f"{out} holds a demo run with other settings ({old.get('model')}, {old.get('config')}); "
            "pass a new --out folder or delete this one"
        )
    update_meta(out, demo=settings, model=model_id(m), seed=seed)
    steps = JsonlLog(out / "steps.jsonl", key="step")
    done = {r["step"]: r for r in steps}

    def finish(step: str, **info: Any) -> None:
        steps.append({"step": step, "seconds": round(time.perf_counter() - t0, 1), **info})
        log(f"[demo] {step} done ({time.perf_counter() - t0:.0f} s): {info}")

    lay = parse_layers(layers, n_layers(m))
    convs, data, report = build_icrl_data(m, n_per_criterion=cfg.n_per_criterion,
                                          criteria=parse_criteria(cfg.criteria), seed=seed,
                                          out=out, corpus=corpus, placebo=True)  # fmt: skip
    data = shortest_per_group(data, cfg.keep_per_criterion)
    if "data" not in done:
        finish("data", conversations=len(convs), turns=len(data), tokens=data.n_tokens,
               dropped=report.reasons())  # fmt: skip
    stats_path = out / "stats.safetensors"
    if "stats" in done and stats_path.exists():
        stats = ActivationStats.load(stats_path)
    else:
        from value_lens.fitting.collect import collect_stats

        log(f"[demo] collecting statistics over {data.n_tokens} tokens")
        stats = collect_stats(m, data, layers=lay, batch_size=cfg.batch_size, progress=True)
        stats.save(stats_path)
        finish("stats", layers=len(stats.layers))
    axis_path = out / "axis.safetensors"
    if "axis" in done and axis_path.exists():
        axis = ValueAxis.load(axis_path)
    else:
        axis = ValueAxis.fit(stats)
        axis.save(axis_path)
        finish("axis", layers=len(axis.layers))
    if "sweep" not in done:
        from value_lens.analysis.sweep import cosine_matrix, layer_sweep

        n_groups = len(set(data.groups))
        n_train = min(n_groups - 1, max(1, round(cfg.train_fraction * n_groups)))
        log(f"[demo] held-out sweep: {cfg.n_splits} splits, {n_train} of {n_groups} criteria train")
        sw = layer_sweep(m, data, n_splits=cfg.n_splits, n_train=n_train, seed=seed,
                         layers=list(stats.layers), stats=stats, batch_size=cfg.batch_size)  # fmt: skip
        sw.to_csv(out / RESULT_FILES["sweep"], index=False)
        cosine_matrix(sw).to_csv(out / RESULT_FILES["cosine"])
        update_meta(out, sweep={"n_splits": cfg.n_splits, "n_train": n_train,
                                "n_criteria": n_groups, "ci": sw.attrs.get("ci")})  # fmt: skip
        best = best_layer(sw)
        finish("sweep", best_layer=best, best_auroc=float(sw["token_auroc_mean"].max()))
        done["sweep"] = {"best_layer": best}
    best = int(done["sweep"]["best_layer"])
    if "code" not in done:
        log(f"[demo] code suite at layer {best}: {cfg.code_problems} problems")
        finish("code", **_code_suite(m, axis, best, cfg, seed, out))
    layer = cfg.heatmap_layer if cfg.heatmap_layer is not None else best
    if layer not in axis.layers:
        layer = best
    if "heatmaps" not in done:
        info = _heatmaps(m, stats, data, convs, layer, out)
        update_meta(out, heatmap_layer=layer)
        finish("heatmaps", **info)
    if "dose" not in done:
        from value_lens.pipeline.workflow import STEER_PROMPTS
        from value_lens.steering.dose import dose_response

        dl = [x for x in cfg.dose_layers if x in axis.layers] or [layer]
        prompts = [[{"role": "user", "content": p}] for p in STEER_PROMPTS[: cfg.dose_prompts]]
        res = dose_response(m, axis, prompts, layers=dl, alphas=cfg.dose_alphas, unit="percent",
                            seeds=range(seed, seed + cfg.dose_seeds),
                            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                            batch_size=cfg.batch_size, enable_thinking=cfg.enable_thinking,
                            log=out / "dose.jsonl")  # fmt: skip
        res.frame.to_csv(out / RESULT_FILES["dose"], index=False)
        res.slopes.to_csv(out / RESULT_FILES["slopes"], index=False)
        update_meta(out, dose={"layers": dl, "alphas_percent": list(cfg.dose_alphas),
                               "prompts": len(prompts), "seeds": cfg.dose_seeds},
                    dose_metrics=["n_tokens", "backtrack", "code_lines", "rep4"])  # fmt: skip
        finish("dose", layers=dl)
    path = report_from_dir(out, title=f"value_lens demo: {model_id(m)}", intro=_INTRO)
    if "report" not in done:
        finish("report", path=str(path))
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
