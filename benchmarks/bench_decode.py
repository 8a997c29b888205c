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
    kept = None if args.store is None else Path(args.store) / "axis.safetensors"
    if args.axis or (kept is not None and kept.is_file()):
        axis = ValueAxis.load(args.axis or kept)
    else:
        axis = _fit_axis(model, layers)
        if kept is not None:
            axis.save(kept)
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
    kept = None if args.store is None else Path(args.store) / "calibration.json"
    if kept is not None and kept.is_file():
        rec = json.loads(kept.read_text())
        if rec["calib"] == args.calib and rec["tokens"] == args.tokens:
            return int(rec["level"]), list(rec["rows"])
    level, rows = _greedy_levels(env, args)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        rec = {"calib": args.calib, "tokens": args.tokens, "level": level, "rows": rows}
        kept.write_text(json.dumps(rec))
    return level, rows


def _greedy_levels(env: dict[str, Any], args: argparse.Namespace) -> tuple[int, list[dict]]:
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


def _paired(res: Any, selector: str, methods: list[str], n_boot: int) -> list[dict]:
    """Best-of-n minus random selection and minus majority vote, paired per problem, at k=n."""
    d = res.differences(selector, methods=methods, n_boot=n_boot)
    d = d[d.k == res.n]
    rows = []
    for m in methods:
        row: dict[str, Any] = {"method": m, "k": res.n}
        for _, r in d[d.method == m].iterrows():
            a = r["against"]
            row |= {f"vs_{a}": _round(r["difference"])}
            row |= {f"vs_{a}_lo": _round(r["lo"]), f"vs_{a}_hi": _round(r["hi"])}
        rows.append(row)
    return rows


def _stoppers(env: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from value_lens.decode import scorers as S

    w = args.group
    return {
        "deepconf": S.group_confidence(window=w),
        "value": S.value(env["axis"], env["layer"], agg=f"lowest:{w}"),
        "logprob": S.TokenScorer("logprob", agg=f"lowest:{w}"),
        "random_stop": S.random_stop(w),
    }


def _length_profile(es: Any) -> dict[str, float]:
    """How a rule's stops depend on length and correctness, over the later rollouts."""
    from value_lens.analysis.metrics import auroc

    later = es.frame[~es.frame["warmup"]]
    hit, miss = later[later["stopped"]], later[~later["stopped"]]
    ok = later["correct"] > 0.5
    out = {
        "stopped_share_correct": float(later.loc[ok, "stopped"].mean()),
        "stopped_share_wrong": float(later.loc[~ok, "stopped"].mean()),
    }
    if len(hit) and len(miss):  # 0.5: stops blind to the rollout's full length
        out["stop_length_auroc"] = auroc(hit["full_tokens"], miss["full_tokens"])
    return out


def _early_stop(
    env: dict[str, Any], res: Any, args: argparse.Namespace
) -> tuple[list[dict], list[dict], list[dict]]:
    from value_lens.decode import early_stop
    from value_lens.decode.budget import StopInputs, equal_budget, matched_random, stop_curve

    curves, matched, stops = {}, {}, []
    for name, sc in _stoppers(env, args).items():
        inputs = StopInputs.of(res.samples, res.n, sc)
        curves[name] = stop_curve(inputs, args.warmup, name=name)
        if name != "random_stop":
            matched[name] = matched_random(inputs, curves[name], seed=1)
        for pct in (10, 30, 50, 70, 90):
            es = early_stop(None, None, res.n, sc, args.warmup, f"percentile:{pct}", rollouts=res)
            s = es.summary(n_boot=args.boot)
            keep = [k for k in s if k.startswith(("accuracy", "baseline", "tokens_saved"))]
            stops.append(
                {"scorer": name, "percentile": pct, "warmup": s["warmup"]}
                | {"stopped_share": round(s["stopped_share"], 4)}
                | {k: round(float(s[k]), 4) for k in keep}
                | {k: round(v, 4) for k, v in _length_profile(es).items()}
            )
    budget = equal_budget(curves, args.savings, matched=matched, n_boot=args.boot)
    table = [{k: _round(v) for k, v in r.items()} for r in budget.to_dict("records")]
    return stops, table, _curve_rows(curves, matched)


def _curve_rows(curves: dict[str, Any], matched: dict[str, Any]) -> list[dict]:
    """Each rule's curve (and its matched control's) every 10 percentiles, never to always."""
    rows = []
    for name, cur in curves.items():
        for j, label in enumerate(cur.labels):
            if label not in ("never", "always") and int(label[1:]) % 10:
                continue
            row = {"scorer": name, "threshold": label}
            row |= {"tokens_saved": _round(float(cur.tokens_saved[j]))}
            row |= {"accuracy": _round(float(cur.accuracy[:, j].mean()))}
            row |= {"stopped_share": _round(float(cur.stopped_share[j]))}
            if name in matched:
                m = matched[name]
                row |= {"matched_tokens_saved": _round(float(m.tokens_saved[j]))}
                row |= {"matched_accuracy": _round(float(m.accuracy[:, j].mean()))}
            rows.append(row)
    return rows


def _round(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, float) else v


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


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny model, synthetic checker")
    ap.add_argument("--problems", type=int, default=100, help="evaluation problems")
    ap.add_argument("--calib", type=int, default=16, help="calibration problems per level")
    ap.add_argument("--n", type=int, default=32, help="rollouts per problem")
    ap.add_argument("--bon", type=int, default=8, help="best-of-k over the first BON rollouts")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--layer", type=int, default=19, help="the value axis layer scored")
    ap.add_argument("--layers", type=int, nargs="*", default=[9, 14, 24], help="layer sweep")
    ap.add_argument("--group", type=int, default=8, help="token group of lowest-group scores")
    ap.add_argument("--warmup", type=int, default=16, help="early-stop warm-up rollouts")
    ap.add_argument("--savings", type=float, nargs="*", default=[0.1, 0.2, 0.3])
    ap.add_argument("--axis", default=None, help="a saved axis instead of fitting one")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--store", default=None, help="resume folder (value_lens_out/bench_decode)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.problems, args.calib, args.n, args.bon, args.tokens, args.boot = 6, 4, 6, 4, 6, 50
        args.group, args.warmup, args.savings = 3, 3, [0.05, 0.1]
    elif args.store is None:
        args.store = "value_lens_out/bench_decode"
    return args


def _rollouts(env: dict[str, Any], args: argparse.Namespace, problems: list) -> Any:
    from value_lens.decode import best_of_n

    return best_of_n(
        env["model"],
        problems,
        args.n,
        _scorers(env, args),
        check=env["check"],
        answer=env["answer"],
        prompt=_prompt,
        max_new_tokens=args.tokens,
        temperature=args.temperature,
        batch_size=16,
        seed=0,
        store=None if args.store is None else Path(args.store) / "rollouts",
        progress=not args.quick,
    )


def _tables(env: dict[str, Any], res: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Every table: AUROC on all rollouts, best-of-k on the first ``bon`` (scorers refitted
    on those), early stopping on all of them (``warmup`` warm-ups per problem)."""
    from value_lens.decode import rescore

    sub = [s for s in res.samples if s.index < args.bon]
    bon = rescore(sub, args.bon, _scorers(env, args), info=res.info)
    names, base = list(bon.scores), ["random", "majority", "oracle"]
    voted = ["value", "value_lowest8", "logprob", "self_certainty", "deepconf_lowest8", "probe"]
    au = res.auroc(n_boot=args.boot).to_dict("records")
    stops, budget, curves = _early_stop(env, res, args)
    return {
        "auroc": [{k: _round(v) for k, v in r.items()} for r in au],
        "best_of_k_argmax": _wide(bon, "argmax", [*names, *base], args.bon, args.boot),
        "best_of_k_argmax_paired": _paired(bon, "argmax", names, args.boot),
        "best_of_k_weighted_vote": _wide(bon, "weighted_vote", voted, args.bon, args.boot),
        "best_of_k_weighted_vote_paired": _paired(bon, "weighted_vote", voted, args.boot),
        "early_stop": stops,
        "early_stop_equal_budget": budget,
        "early_stop_curves": curves,
    }


def _setting(env: dict[str, Any], res: Any, args: argparse.Namespace, level: int) -> dict:
    import torch

    from value_lens.analysis.metrics import auroc

    y, f = res.correct, res.frame
    ok = y > 0.5
    return {
        "model": str(env["model"].cfg.model_name),
        "quick": bool(args.quick),
        "task": "synthetic checker (reply length parity)"
        if args.quick
        else "arithmetic_problems (value_lens.evals.problems), parse_answer checker",
        "level": level,
        "problems": args.problems,
        "n": args.n,
        "best_of_k_n": args.bon,
        "max_new_tokens": args.tokens,
        "temperature": args.temperature,
        "layer": env["layer"],
        "group": args.group,
        "warmup": args.warmup,
        "n_boot": args.boot,
        "sample_accuracy": float(y.mean()),
        "problems_all_wrong": int((y.reshape(-1, args.n).max(1) == 0).sum()),
        "problems_all_right": int((y.reshape(-1, args.n).min(1) == 1).sum()),
        "mean_new_tokens": float(f["n_tokens"].mean()),
        "empty_samples": int((f["n_tokens"] == 0).sum()),
        "hit_limit_share": float(f["hit_limit"].mean()),
        "shorter_is_correct_auroc": auroc(-f.loc[ok, "n_tokens"], -f.loc[~ok, "n_tokens"])
        if ok.any() and (~ok).any()
        else None,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    times: dict[str, float] = {}
    t = time.perf_counter()
    env = _setup(args)
    times["load_and_axis"] = time.perf_counter() - t
    t = time.perf_counter()
    level, calib = _calibrate(env, args)
    times["calibration"] = time.perf_counter() - t
    t = time.perf_counter()
    res = _rollouts(env, args, env["problems"](args.problems, 2, level))
    times["rollouts (or loading the stored ones)"] = time.perf_counter() - t
    t = time.perf_counter()
    tables = _tables(env, res, args)
    times["tables"] = time.perf_counter() - t
    result = {"setting": _setting(env, res, args, level), "calibration": calib, **tables}
    result["seconds"] = {k: round(v, 1) for k, v in times.items()}
    if "axis_seconds" in env:
        result["seconds"]["axis"] = round(env["axis_seconds"], 1)
    result = _clean(result)
    print(json.dumps(tables["early_stop_equal_budget"], indent=1))
    out = args.out or (None if args.quick else "benchmarks/results/bench_decode.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result


if __name__ == "__main__":
    main()
