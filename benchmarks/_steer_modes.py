"""The steering modes' non-timing numbers for ``bench_steer.py --modes`` (issue 23).

1. **A/B effect and reliability per mode.** The CAA-style evaluation
   (:func:`value_lens.steering.ab.ab_eval`) over the offline confidence, backtracking and
   verbosity items, one layer, each mode on a grid scaled to the projection's spread on neutral
   text (``sigma``: its sd, ``mu``: its median, ``|h|``: the mean residual norm):

   * ``add``: ``alpha = k sigma``, k in -2..2;
   * ``clamp``: the projection set to ``mu + k sigma``, k in -2..2;
   * ``cap``: a floor at ``mu + k sigma``, k in -1..3 (it only ever pushes up);
   * ``rotate``: ``asin(k sigma / |h|)`` degrees, k in -2..2 (a rotation by t moves the
     projection by about ``|h| sin t``);
   * ``ablate``: the share of the projection removed, 0, 0.5, 1.

   Every cell records ``mean_abs_push`` (the mean change of the steered tokens' projection), so
   modes are compared *at equal strength*: per mode, the cell with a positive push whose mean
   size is closest to one ``sigma``.

2. **Transplant vs its constant-push control.** Pairs of the same arithmetic problem: the donor
   was shown the correct result, the host a wrong one; both are asked "Are you sure? Respond
   only Yes or No." The host's projection is moved toward the donor's at every position
   (``positions="all"``, prompts paired from the end; they differ only in the shown number),
   and separately pushed by the constant of matched mean size. Reported: the hosts' yes-rate
   (greedy) and the mean gap between host and donor projections over the reply, unsteered,
   transplanted and under the control, with paired intervals over pairs.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NEUTRAL = [
    "The library opens at nine in the morning and closes at six in the evening.",
    "Rainfall in the region is highest in November, when storms arrive from the west.",
    "A good cup of tea needs water just off the boil and about three minutes of steeping.",
    "The committee will meet on Thursday to review the budget for the coming year.",
    "Most bicycles have between one and thirty gears, depending on their purpose.",
    "The museum's new wing displays pottery from several centuries of local history.",
]


def _finite(x: Any) -> Any:
    """``x`` with every NaN replaced by None (strict JSON)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    return x


def _paired(d: np.ndarray) -> dict[str, float]:
    """Mean of paired differences with a t interval over pairs."""
    from value_lens.analysis.intervals import t_quantile

    d = d[np.isfinite(d)]
    if d.size < 2:
        return {"mean": float(d.mean()) if d.size else math.nan, "lo": math.nan, "hi": math.nan}
    half = t_quantile(0.975, float(d.size - 1)) * d.std(ddof=1) / math.sqrt(d.size)
    return {"mean": float(d.mean()), "lo": float(d.mean() - half), "hi": float(d.mean() + half)}


def _scales(model: Any, axis: Any, layer: int) -> dict[str, float]:
    from value_lens.steering.modes import calibrate_cap
    from value_lens.steering.strength import calibrate

    cal = calibrate(model, axis, texts=NEUTRAL, layers=[layer])
    mu = calibrate_cap(model, axis, NEUTRAL, quantile=0.5, layers=[layer])[layer]
    return {"sigma": cal.proj_std[layer], "mu": mu, "norm": cal.resid_norm[layer]}


def _grids(sc: dict[str, float]) -> dict[str, list[float]]:
    s, mu, norm = sc["sigma"], sc["mu"], sc["norm"]
    ks = [-2.0, -1.0, 0.0, 1.0, 2.0]
    return {
        "add": [k * s for k in ks],
        "clamp": [mu + k * s for k in ks],
        "cap": [mu + k * s for k in (-1.0, 0.0, 1.0, 2.0, 3.0)],
        "rotate": [math.degrees(math.asin(max(-1.0, min(1.0, k * s / norm)))) for k in ks],
        "ablate": [0.0, 0.5, 1.0],
    }


def ab_numbers(model: Any, axis: Any, layer: int, n_items: int) -> dict[str, Any]:
    """Each mode's A/B summary, reliability and its cell at equal strength (one sigma of push)."""
    from value_lens.steering.ab import ABGrid, ab_eval
    from value_lens.steering.ab_items import ab_items

    sc = _scales(model, axis, layer)
    items = ab_items(n=n_items, seed=0)
    out: dict[str, Any] = {"scales": sc, "n_items_per_behaviour": n_items, "modes": {}}
    for mode, grid in _grids(sc).items():
        res = ab_eval(
            model,
            axis,
            items,
            ABGrid(layers=layer, strengths=grid, modes=[mode], unit="raw", batch_size=8),
        )
        summ = res.summary.assign(push_sigmas=res.summary["mean_abs_push"] / sc["sigma"])
        pos = summ[summ["strength"] > (0.0 if mode != "clamp" and mode != "cap" else sc["mu"])]
        per = pos.groupby("strength")["push_sigmas"].mean()
        at = float(per.index[int(np.argmin(np.abs(per.to_numpy() - 1.0)))]) if len(per) else None
        out["modes"][mode] = {
            "strengths": grid,
            "summary": summ.round(5).to_dict(orient="records"),
            "reliability": res.reliability.round(5).to_dict(orient="records"),
            "equal_strength": None
            if at is None
            else {
                "strength": at,
                "rows": summ[summ["strength"] == at].round(5).to_dict(orient="records"),
            },
            "base_p_match": res.frame[res.frame["mode"] == "none"]
            .groupby("behaviour")["p_match"]
            .mean()
            .round(5)
            .to_dict(),
        }
    return out


def _pairs(n: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    donors, hosts = [], []
    for _ in range(n):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        wrong = a + b + rng.choice([-10, -2, 2, 10])
        ask = {"role": "user", "content": "Are you sure? Respond only Yes or No."}
        q = {"role": "user", "content": f"What is {a} + {b}? Reply with the number."}
        donors.append([q, {"role": "assistant", "content": f"{a} + {b} = {a + b}."}, ask])
        hosts.append([q, {"role": "assistant", "content": f"{a} + {b} = {wrong}."}, ask])
    return donors, hosts


def _yes(gens: list[Any]) -> np.ndarray:
    from value_lens.analysis.text_metrics import yes_no

    return np.array([yes_no(g.text) for g in gens])


def _gap(gens: list[Any], donors: list[Any]) -> np.ndarray:
    """Per pair, the mean |host - donor| projection over the reply at the trace's last layer."""
    gap = []
    for h, d in zip(gens, donors, strict=True):
        n = min(h.n_tokens, d.n_tokens)
        if n == 0 or h.trace is None or d.trace is None:
            gap.append(math.nan)
            continue
        ph = h.trace.projection[-1, h.prompt_ids.numel() :][:n].double()
        pd_ = d.trace.projection[-1, d.prompt_ids.numel() :][:n].double()
        gap.append(float((ph - pd_).abs().mean()))
    return np.array(gap)


def _arm(gens: list[Any], donors: list[Any], base: dict[str, np.ndarray]) -> dict[str, Any]:
    yes, gap = _yes(gens), _gap(gens, donors)
    return {
        "host_yes_rate": float(np.nanmean(yes)),
        "gap": float(np.nanmean(gap)),
        "yes_minus_unsteered": _paired(yes - base["yes"]),
        "gap_minus_unsteered": _paired(gap - base["gap"]),
        "_yes": yes,
        "_gap": gap,
    }


def transplant_numbers(
    model: Any, axis: Any, layer: int, n_pairs: int, lams: tuple[float, ...] = (0.5, 1.0)
) -> dict[str, Any]:
    """Hosts' yes-rate and projection gap (read 3 layers after the transplanted one): unsteered,
    transplanted, and under the constant-push control."""
    from value_lens.analysis.monitor import monitor
    from value_lens.core.generate import generate
    from value_lens.core.model import n_layers
    from value_lens.steering.transplant import transplant

    donors, hosts = _pairs(n_pairs)
    later = min(layer + 3, n_layers(model) - 1)
    mon = monitor(axis, [layer, later], metric="projection")
    kw = {"max_new_tokens": 8, "temperature": 0.0}
    rows = [x for pair in zip(donors, hosts, strict=True) for x in pair]
    base = generate(model, rows, monitor=mon, batch_size=len(rows), **kw)
    ref = {"yes": _yes(base[1::2]), "gap": _gap(base[1::2], base[0::2])}
    out: dict[str, Any] = {
        "n_pairs": n_pairs,
        "layer": layer,
        "gap_layer": later,
        "positions": "all",
        "donor_yes_rate": float(np.nanmean(_yes(base[0::2]))),
        "unsteered": {
            "host_yes_rate": float(np.nanmean(ref["yes"])),
            "gap": float(np.nanmean(ref["gap"])),
            "parsed": int(np.isfinite(ref["yes"]).sum()),
        },
        "lam": {},
    }
    for lam in lams:
        res = transplant(
            model,
            axis,
            donors,
            hosts,
            layers=layer,
            lam=lam,
            positions="all",
            control=True,
            monitor=mon,
            **kw,
        )
        t = _arm(list(res), res.donors, ref)
        c = _arm(list(res.control or []), res.donors, ref)
        diff = {
            "yes": _paired(t.pop("_yes") - c.pop("_yes")),
            "gap": _paired(t.pop("_gap") - c.pop("_gap")),
        }
        out["lam"][str(lam)] = {
            "mean_push": float(res.pushes["mean_push"].mean()),
            "mean_abs_push": float(res.pushes["mean_abs_push"].mean()),
            "transplant": t,
            "control": c,
            "transplant_minus_control": diff,
        }
    return out


def _fit_axis(model: Any, layer: int) -> Any:
    """The value axis at ``layer`` from scripted ICRL data (12 criteria, 3 conversations each)."""
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
        stats = collect(model, data.tokens, tmp, layers=[layer], progress=False)
        return fit(stats, tmp, layers=[layer], write=False)


def run_modes(model: Any, args: Any) -> None:
    """``--modes``: A/B numbers per mode and the transplant against its control, written under
    ``"modes"`` in ``--out`` (its timings kept)."""
    import torch

    from value_lens.core.model import d_model, model_id, n_layers
    from value_lens.fitting.axis import ValueAxis

    layer = args.layer if args.layer is not None else (2 * n_layers(model)) // 3
    t0 = time.perf_counter()
    if args.axis:
        axis = ValueAxis.load(args.axis)
    elif args.model == "smollm":
        axis = _fit_axis(model, layer)
    else:
        g = torch.Generator().manual_seed(0)
        axis = ValueAxis(
            torch.randn(n_layers(model), d_model(model), generator=g), model_id=model_id(model)
        )
    fit_s = time.perf_counter() - t0
    res = {
        "model": model_id(model),
        "layer": layer,
        "axis": args.axis or "fitted (first:12)",
        "axis_seconds": fit_s,
        "ab": ab_numbers(model, axis, layer, args.ab_items),
        "transplant": transplant_numbers(model, axis, layer, args.pairs),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**old, "modes": _finite(res)}, indent=2, default=float))
    print(json.dumps(res["transplant"], indent=1, default=float))
    print(f"wrote {out}")
