"""Value-guided decoding benchmark (issue 15): does the value axis pick correct answers?

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_decode.py   # SmolLM2, ~15-20 min
    python benchmarks/bench_decode.py --quick --out /tmp/d.json            # tiny model, seconds

SmolLM2-135M-Instruct on procedural arithmetic (``value_lens.evals.problems``):

1. **Axis.** The value axis is fitted on scripted ICRL data (the demo's 12 criteria, the
   shortest labelled turn of 3 conversations each) at the ``--layers``, or loaded (``--axis``).
2. **Calibration.** Greedy accuracy per difficulty level on a calibration split (seed 1); the
   level whose accuracy lies in 20-60% (closest to 40%) is kept, leaving room for best-of-n.
3. **Rollouts.** ``n`` samples (T=0.7, at most ``--tokens`` new tokens) of each evaluation
   problem (seed 2, disjoint draws), scored by every scorer from the same decoding passes:
   the value axis (mean over all tokens, the last 16, the lowest group of 8, fixed offsets,
   and the mean at other layers), mean log-probability, self-certainty, DeepConf lowest group
   confidence, a probe cross-fitted by problem (upper bound), length and 10 random directions
   (both sign-aligned on the training folds).
4. **Tables.** Correctness AUROC pooled and within problem; best-of-k accuracy (argmax, and a
   rank-weighted vote) against random, majority vote and the pass@k oracle; DeepConf-style
   early stopping (2 warm-up rollouts per problem, thresholds at warm-up percentiles) by
   DeepConf group confidence, the value axis, log-probability groups and a random-stop control
   (i.i.d. noise per token): accuracy against the share of tokens saved. Every interval is a
   95% bootstrap over problems.

``--quick`` runs the same steps on the tiny random model with a random axis and a synthetic
checker (reply length parity), for the smoke test. Writes ``benchmarks/results/bench_decode.json``
(``--quick``: only with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

INSTRUCTION = "Answer with just the final number."


def _prompt(problem: dict[str, Any]) -> Any:
    return [{"role": "user", "content": f"{problem['question']} {INSTRUCTION}"}]


def _fit_axis(model: Any, layers: list[int]) -> Any:
    from value_lens.pipeline.options import parse_criteria
    from value_lens.pipeline.steps import build_data, collect, fit

    with tempfile.TemporaryDirectory() as tmp:
        data = build_data(
            model,
            tmp,
            n_per_criterion=3,
            criteria=parse_criteria("first:12"),
            keep_per_criterion=1,
            placebo=False,
        )
        stats = collect(model, data.tokens, tmp, layers=layers, progress=False)
        return fit(stats, tmp, layers=layers, write=False)


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from value_lens.core.model import load_model, model_id, n_layers
    from value_lens.evals.problems import arithmetic_problems, parse_answer
    from value_lens.fitting.axis import ValueAxis
    from value_lens.testing import tiny_qwen3

    if args.quick:
        model = tiny_qwen3()
        g = torch.Generator().manual_seed(0)
        axis = ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(model))

        def check(problem: Any, text: str) -> bool:  # noqa: ARG001 - synthetic: length parity
            return len(text) % 2 == 0

        def answer(text: str) -> Any:
            return text[:1]

        return {
            "model": model,
            "axis": axis,
            "layer": 1,
            "sweep": [0, 1],
            "check": check,
            "answer": answer,
            "problems": lambda n, seed, level: arithmetic_problems(n, seed=seed, levels=(level,)),
        }
    model = load_model()
    layers = sorted({*args.layers, args.layer})
    t0 = time.perf_counter()
    axis = ValueAxis.load(args.axis) if args.axis else _fit_axis(model, layers)
    fit_s = time.perf_counter() - t0
    assert n_layers(model) > max(layers)

    def check_num(problem: Any, text: str) -> bool:
        got = parse_answer(text)
        return got is not None and abs(got - float(problem["answer"])) < 1e-9

    return {
        "model": model,
        "axis": axis,
        "layer": args.layer,
        "sweep": layers,
        "check": check_num,
        "answer": parse_answer,
        "problems": lambda n, seed, level: arithmetic_problems(n, seed=seed, levels=(level,)),
        "axis_seconds": fit_s,
    }


def _calibrate(env: dict[str, Any], args: argparse.Namespace) -> tuple[int, list[dict]]:
    from value_lens.core.generate import generate

    rows = []
    for level in (1, 2, 3, 4, 5):
        probs = env["problems"](args.calib, 1, level)
        gens = generate(
            env["model"],
            [_prompt(p) for p in probs],
            max_new_tokens=args.tokens,
            batch_size=16,
        )
        acc: float = sum(bool(env["check"](p, g.text)) for p, g in zip(probs, gens, strict=True))
        acc /= len(probs)
        rows.append({"level": level, "greedy_accuracy": acc, "n_problems": len(probs)})
    ok = [r for r in rows if 0.2 <= r["greedy_accuracy"] <= 0.6]
    pick = min(ok or rows, key=lambda r: abs(r["greedy_accuracy"] - 0.4))
    return int(pick["level"]), rows


def _scorers(env: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from value_lens.decode import scorers as S

    axis, layer = env["axis"], env["layer"]
    out = {
        "value": S.value(axis, layer),
        "value_last16": S.value(axis, layer, window="last:16"),
        "value_lowest8": S.value(axis, layer, agg=f"lowest:{args.group}"),
        "value_offsets": S.value(axis, layer, window="offsets:4,8,16"),
        "logprob": S.mean_logprob(),
        "self_certainty": S.self_certainty(),
        "deepconf_lowest8": S.group_confidence(window=args.group),
        "probe": S.probe(layer, folds=5),
        "length": S.length(folds=5),
        "random_dirs": S.random_directions(10, layer, folds=5),
    }
    for la in env["sweep"]:
        if la != layer:
            out[f"value@{la}"] = S.value(axis, la)
    return out


def _noise_stopper(group: int) -> Any:
    """Control for early stopping: an i.i.d. N(0, 1) signal per token (seeded by problem and
    sample), so its stops fall at random, at a share set by the same warm-up percentiles."""
    import torch

    from value_lens.decode import scorers as S

    class _Noise(S.TokenScorer):
        def signal(self, s: Any) -> torch.Tensor:
            g = torch.Generator().manual_seed(100_003 * s.problem + s.index)
            return torch.randn(s.n_tokens, generator=g, dtype=torch.float64)

    return _Noise("noise", agg=f"lowest:{group}")


def _wide(res: Any, selector: str, methods: list[str], n: int, n_boot: int) -> list[dict]:
    cur = res.curves(selector, methods=methods, n_boot=n_boot)
    ks = sorted({1, 2, 4, n} & set(range(1, n + 1)))
    rows = []
    for m in methods:
        c = cur[cur.method == m].set_index("k")
        row: dict[str, Any] = {"method": m}
        row.update({f"k{k}": round(float(c.loc[k, "accuracy"]), 4) for k in ks})
        row[f"k{n}_lo"], row[f"k{n}_hi"] = float(c.loc[n, "lo"]), float(c.loc[n, "hi"])
        rows.append(row)
    return rows


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN / None entries of a record dropped (an empty table cell), others as is."""
    if isinstance(obj, dict):
        return {
            k: _clean(v)
            for k, v in obj.items()
            if v is not None and not (isinstance(v, float) and v != v)
        }
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny model, synthetic checker")
    ap.add_argument("--problems", type=int, default=100, help="evaluation problems")
    ap.add_argument("--calib", type=int, default=16, help="calibration problems per level")
    ap.add_argument("--n", type=int, default=8, help="rollouts per problem")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--layer", type=int, default=19, help="the value axis layer scored")
    ap.add_argument("--layers", type=int, nargs="*", default=[9, 14, 24], help="layer sweep")
    ap.add_argument("--group", type=int, default=8, help="token group of lowest-group scores")
    ap.add_argument("--warmup", type=int, default=2, help="early-stop warm-up rollouts")
    ap.add_argument("--axis", default=None, help="a saved axis instead of fitting one")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.problems, args.calib, args.n, args.tokens, args.boot = 6, 4, 4, 6, 50
        args.group, args.warmup = 3, 1

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.decode import best_of_n, early_stop
    from value_lens.decode import scorers as S

    times: dict[str, float] = {}
    t = time.perf_counter()
    env = _setup(args)
    times["load_and_axis"] = time.perf_counter() - t
    t = time.perf_counter()
    level, calib = _calibrate(env, args)
    times["calibration"] = time.perf_counter() - t
    problems = env["problems"](args.problems, 2, level)
    scorers = _scorers(env, args)
    t = time.perf_counter()
    res = best_of_n(
        env["model"],
        problems,
        args.n,
        scorers,
        check=env["check"],
        answer=env["answer"],
        prompt=_prompt,
        max_new_tokens=args.tokens,
        temperature=args.temperature,
        batch_size=16,
        seed=0,
    )
    times["rollouts"] = time.perf_counter() - t
    t = time.perf_counter()
    au = res.auroc(n_boot=args.boot)
    base = ["random", "majority", "oracle"]
    argmax = _wide(res, "argmax", [*scorers, *base], args.n, args.boot)
    voted = ["value", "value_lowest8", "logprob", "self_certainty", "deepconf_lowest8", "probe"]
    weighted = _wide(res, "weighted_vote", voted, args.n, args.boot)
    stops = []
    stoppers = {
        "deepconf": S.group_confidence(window=args.group),
        "value": S.value(env["axis"], env["layer"], agg=f"lowest:{args.group}"),
        "logprob": S.TokenScorer("logprob", agg=f"lowest:{args.group}"),
        "random_stop": _noise_stopper(args.group),
    }
    for name, sc in stoppers.items():
        for pct in (10, 30, 50, 70, 90):
            es = early_stop(None, None, args.n, sc, args.warmup, f"percentile:{pct}", rollouts=res)
            s = es.summary(n_boot=args.boot)
            keep = [k for k in s if k.startswith(("accuracy", "baseline", "tokens_saved"))]
            stops.append(
                {"scorer": name, "percentile": pct, "stopped_share": round(s["stopped_share"], 4)}
                | {k: round(float(s[k]), 4) for k in keep}
            )
    times["tables"] = time.perf_counter() - t
    y = res.correct
    result = {
        "setting": {
            "model": str(env["model"].cfg.model_name),
            "quick": bool(args.quick),
            "task": "arithmetic_problems (value_lens.evals.problems), parse_answer checker"
            if not args.quick
            else "synthetic checker (reply length parity)",
            "level": level,
            "problems": args.problems,
            "n": args.n,
            "max_new_tokens": args.tokens,
            "temperature": args.temperature,
            "layer": env["layer"],
            "group": args.group,
            "warmup": args.warmup,
            "n_boot": args.boot,
            "sample_accuracy": float(y.mean()),
            "problems_all_wrong": int((y.reshape(-1, args.n).max(1) == 0).sum()),
            "problems_all_right": int((y.reshape(-1, args.n).min(1) == 1).sum()),
            "mean_new_tokens": float(res.frame["n_tokens"].mean()),
            "empty_samples": int((res.frame["n_tokens"] == 0).sum()),
            "hit_limit_share": float(res.frame["hit_limit"].mean()),
            "torch_threads": torch.get_num_threads(),
        },
        "calibration": calib,
        "auroc": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
            for r in au.to_dict("records")
        ],
        "best_of_k_argmax": argmax,
        "best_of_k_weighted_vote": weighted,
        "early_stop": stops,
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    if "axis_seconds" in env:
        result["seconds"]["axis"] = round(env["axis_seconds"], 1)
    result = _clean(result)
    print(au.to_string())
    print(json.dumps(argmax, indent=1))
    out = args.out or (None if args.quick else "benchmarks/results/bench_decode.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result


if __name__ == "__main__":
    main()
