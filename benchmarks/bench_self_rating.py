"""Self-rating on SmolLM2 (issue 22 item 2): can the model rate its own progress, and how do the
value axis, its variants and a self-rating axis read each other's labels?

Scripted ICRL conversations (the demo's first criteria); after the feedback to the last attempt
at each paragraph the model is asked for a 0-100 rating of how close it is to the hidden rule.

* greedy answers: the rating distribution, the parse statuses (refusals and non-numbers
  counted), and validity against the game's own progress: the AUROC of the rating for points
  after the criterion's discovery vs before it, with a leave-one-conversation-out jackknife
  interval;
* two sampled answers per prompt (temperature 0.7) on ``--retest-points`` of the points:
  test-retest agreement, Pearson r of the two samples with a jackknife interval over
  conversations;
* the cross-evaluation matrix at one layer (value_lens.analysis.crosseval): value-axis methods
  (mean_diff, lda, standardized, erased, mean_centred) fitted on BEFORE/AFTER tokens of the
  demo's criteria (``--value-criteria``, every labelled turn of ``--value-per-criterion``
  conversations each) and the
  self-rating axis (standardized, high vs low greedy rating within criterion), each scored on
  held-out criteria of every label set, with the placebo turns and position halves as
  position-only controls and sign-aligned random directions as the null.

Results, not timings: benchmarks/results/bench_self_rating.json, and every answer with its
parse in benchmarks/results/bench_self_rating.answers.jsonl.

    OMP_NUM_THREADS=1 python benchmarks/bench_self_rating.py    # SmolLM2: ~140k prompt tokens
    python benchmarks/bench_self_rating.py --model tiny --criteria first:4 --per-criterion 1
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def _conversation_ci(fn: Any, a: np.ndarray, b: np.ndarray, conv: np.ndarray) -> list[float]:
    from value_lens.analysis.metrics import bootstrap_ci

    try:
        return list(bootstrap_ci(fn, a, b, paired=True, groups=conv))
    except Exception as exc:  # too few conversations where the statistic is defined
        return [float("nan"), float("nan"), str(exc)]  # type: ignore[list-item]


def validity(ratings: Any) -> dict[str, Any]:
    """AUROC of the (greedy) rating for discovered vs undiscovered points, by conversation."""
    from value_lens.analysis.metrics import auroc, bootstrap_ci, spearman

    v = ratings.values()[:, 0]
    ok = np.isfinite(v)
    disc = np.array([bool(p.meta["discovered"]) for p in ratings.points])
    conv = np.array([p.source_id for p in ratings.points])
    pos = np.array([p.meta["paragraph_position"] for p in ratings.points], dtype=float)
    out: dict[str, Any] = {"n_rated": int(ok.sum()), "n_discovered": int((ok & disc).sum())}
    a, b = v[ok & disc], v[ok & ~disc]
    if a.size and b.size:
        out["auroc_discovered"] = auroc(a, b)
        try:
            groups = [conv[ok & disc], conv[ok & ~disc]]
            out["auroc_discovered_ci"] = list(bootstrap_ci(auroc, a, b, groups=groups))
        except Exception as exc:
            out["auroc_discovered_ci"] = str(exc)
    if ok.sum() > 2 and np.std(v[ok]) > 0:
        out["spearman_with_paragraph"] = spearman(v[ok], pos[ok])
    return out


def retest_ci(sampled: Any) -> dict[str, Any]:
    v = sampled.values()
    both = np.isfinite(v).all(axis=1)
    conv = np.array([p.source_id for p in sampled.points])[both]
    a, b = v[both, 0], v[both, 1]
    out = dict(sampled.summary()["retest"])
    if a.size > 3 and a.std() > 0 and b.std() > 0:

        def pearson(x: np.ndarray, y: np.ndarray) -> float:
            return float(np.corrcoef(x, y)[0, 1])

        ci = _conversation_ci(pearson, a, b, conv)
        # a jackknife t interval of a correlation can leave [-1, 1]: clipped, and said so
        out["pearson_ci_by_conversation_clipped"] = [max(-1.0, ci[0]), min(1.0, ci[1])]
        out["pearson_ci_raw"] = ci
    return out


def answers(ratings: Any) -> list[dict[str, Any]]:
    """Every answer with its point, repeat and parse (so a later parser can re-read them)."""
    out = []
    for r in ratings.records:
        p = r.parsed
        out.append({"point": r.point, "repeat": r.repeat, "text": r.text, "status": p.status})
        out[-1].update(form=p.form, value=p.value)
    return out


def examples(ratings: Any, k: int = 15) -> list[dict[str, Any]]:
    seen, out = set(), []
    for rec in ratings.records:
        if rec.text not in seen:
            seen.add(rec.text)
            text = " ".join(rec.text.split())  # one line, for the results table
            out.append({"text": text, "status": rec.parsed.status, "value": rec.parsed.value})
        if len(out) == k:
            break
    return out


def crosseval(model: Any, convs: Any, greedy: Any, layer: int) -> dict[str, Any]:
    """The cross-evaluation matrix: value-axis methods on ``convs``' labelled turns and the
    self-rating axis on the greedy ratings, with the placebo and position-half controls."""
    from value_lens.analysis.crosseval import (
        AxisSpec,
        CrossEvalConfig,
        LabelSet,
        cross_evaluate,
        position_halves,
    )
    from value_lens.data.icrl import label
    from value_lens.data.tokens import PLACEBO_AFTER, PLACEBO_BEFORE
    from value_lens.errors import InputError

    value = label(convs, model, placebo=True, drop_too_long=True)
    sets = [
        LabelSet("value", value),
        LabelSet("placebo", value, pos=PLACEBO_AFTER, neg=PLACEBO_BEFORE),
        LabelSet("position_halves", position_halves(value)),
    ]
    methods = ("mean_diff", "lda", "standardized", "erased", "mean_centred")
    axes = [AxisSpec(f"value_{m}", "value", m) for m in methods]
    out: dict[str, Any] = {"layer": layer}
    try:
        rating, report = greedy.labelled()
        out["rating_labels"] = report
        sets.insert(1, LabelSet("rating", rating))
        axes.append(AxisSpec("self_rating", "rating", "standardized"))
    except InputError as exc:
        out["rating_labels"] = f"no self-rating label set: {exc}"
    res = cross_evaluate(model, sets, axes, CrossEvalConfig(layer=layer, n_random=20))
    out["table"] = res.table.to_dict(orient="records")
    out["splits"] = res.splits
    out["lda_rho"] = res.axes["value_lda"].fit_info["rho"]
    out["standardized_sinks"] = res.axes["value_standardized"].fit_info["sink_dims"]
    print(res.matrix().round(3).to_string(), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    ap.add_argument("--criteria", default="first:8")
    ap.add_argument("--per-criterion", type=int, default=1)
    ap.add_argument("--retest-points", type=int, default=20, help="points sampled twice")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--value-criteria", default="first:12", help="criteria of the value data")
    ap.add_argument("--value-per-criterion", type=int, default=3)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "bench_self_rating.json"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.core.conventions import default_layer
    from value_lens.core.model import n_layers
    from value_lens.data.icrl import generate_scripted
    from value_lens.data.self_rating import QUESTION, RatingConfig, icrl_points, rate
    from value_lens.pipeline.options import load_model_option, parse_criteria

    model = load_model_option(None if args.model == "smollm2" else "tiny")
    convs = generate_scripted(
        args.per_criterion, seed=args.seed, criteria=parse_criteria(args.criteria)
    )
    pts = icrl_points(convs)
    greedy = rate(model, pts, RatingConfig(max_new_tokens=args.max_new_tokens))
    print(json.dumps(greedy.summary(), indent=1), flush=True)
    sampled = rate(
        model,
        pts,
        RatingConfig(
            max_new_tokens=args.max_new_tokens,
            repeats=2,
            temperature=args.temperature,
            seed=args.seed,
        ),
    )
    layer = args.layer if args.layer is not None else default_layer(n_layers(model))
    value_convs = generate_scripted(
        args.value_per_criterion, seed=args.seed, criteria=parse_criteria(args.value_criteria)
    )
    result = {
        "model": "SmolLM2-135M-Instruct" if args.model == "smollm2" else "tiny Qwen3",
        "settings": {**vars(args), "out": str(args.out), "question": QUESTION},
        "greedy": greedy.summary(),
        "validity": validity(greedy),
        "sampled": sampled.summary(),
        "retest": retest_ci(sampled),
        "examples": examples(greedy),
        "crosseval": crosseval(model, value_convs, greedy, layer),
    }
    result["settings"]["n_conversations"] = len(convs)
    print(json.dumps({k: result[k] for k in ("validity", "retest")}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    # every answer, one JSON line each, beside the results (so a later parser can re-read them)
    rows = [
        {"run": k, **a} for k, r in (("greedy", greedy), ("sampled", sampled)) for a in answers(r)
    ]
    args.out.with_suffix(".answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in rows))


if __name__ == "__main__":
    main()
