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
   was shown the correct result, the host a wrong one; both are asked whether the answer is
   correct (Yes or No). The host's projection is moved toward the donor's at every position
   (``positions="all"``, prompts paired from the end; they differ only in the shown number),
   and separately pushed by the constant of matched mean size. Reported, unsteered,
   transplanted and under the control, with paired t intervals over pairs: the hosts' greedy
   yes-rate and the mean gap between host and donor projections over the reply, read three
   layers after the transplanted one (:func:`transplant_numbers`, through
   ``value_lens.steering.transplant``); and the hosts' first-token ``p(Yes) / (p(Yes) + p(No))`` from
   the prompt pass's logits (:func:`first_token_numbers`).
"""

from __future__ import annotations

import json
import math
import random
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


ASK = "Is your answer correct? Answer with one word: Yes or No."


def _pairs(n: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    donors, hosts = [], []
    for _ in range(n):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        wrong = a + b + rng.choice([-10, -2, 2, 10])
        ask = {"role": "user", "content": ASK}
        q = {"role": "user", "content": f"What is {a} + {b}? Reply with the number."}
        donors.append([q, {"role": "assistant", "content": f"{a} + {b} = {a + b}."}, ask])
        hosts.append([q, {"role": "assistant", "content": f"{a} + {b} = {wrong}."}, ask])
    return donors, hosts


def _first_token_yes(model: Any, rows: list[Any], steers: list[Any]) -> np.ndarray:
    """Per row, p(Yes) / (p(Yes) + p(No)) at the first reply token, read from the logits of one
    left-padded prompt pass (the fast path) under ``steers``."""
    import contextlib

    import torch

    from value_lens.core.decoding import DecodeRequest, decode_batch
    from value_lens.core.model import to_token_ids
    from value_lens.core.prompts import format_prompts

    tok = model.tokenizer
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    ids = [to_token_ids(model, t) for t in format_prompts(model, rows)]
    lens = torch.tensor([x.numel() for x in ids])
    width = int(lens.max())
    tokens = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for j, x in enumerate(ids):
        tokens[j, width - x.numel() :] = x
        mask[j, width - x.numel() :] = 1
    req = DecodeRequest(tokens, mask, 1, 0.0, 1.0, [], 0, True, logits=True)
    with contextlib.ExitStack() as stack, torch.no_grad():
        for s in steers:
            stack.enter_context(s.activate(prompt_lens=lens, pads=width - lens))
        _, logits = decode_batch(model, req, "hf")
    p = torch.softmax(logits[0].double(), -1)[:, [yes, no]]
    return (p[:, 0] / p.sum(1)).numpy()


def first_token_numbers(model: Any, axis: Any, layer: int, n_pairs: int, lam: float) -> dict:
    """The transplant on the prompt pass (positions all, prompts paired from the end) against
    the constant push of matched mean size: the hosts' first-token p(Yes), paired over pairs."""
    from value_lens.steering.steer import steer
    from value_lens.steering.transplant import RowPush, Transplant

    donors, hosts = _pairs(n_pairs)
    rows = [x for pair in zip(donors, hosts, strict=True) for x in pair]
    base = _first_token_yes(model, rows, [])
    st = steer(model, axis, layers=layer, mode=Transplant(lam=lam), positions="all")
    tr = _first_token_yes(model, rows, [st])
    rep = st.report()
    host = rep[rep["row"] % 2 == 1]
    means = (host["push"] / host["moved"].where(host["moved"] > 0)).fillna(0.0).tolist()
    push = RowPush(tuple(a for m in means for a in (0.0, float(m))))
    ctrl = _first_token_yes(model, rows, [steer(model, axis, layers=layer, mode=push)])
    b, t, c = base[1::2], tr[1::2], ctrl[1::2]
    return {
        "lam": lam,
        "donor_p_yes": float(base[0::2].mean()),
        "host_p_yes": {
            "unsteered": float(b.mean()),
            "transplant": float(t.mean()),
            "control": float(c.mean()),
        },
        "transplant_minus_unsteered": _paired(t - b),
        "control_minus_unsteered": _paired(c - b),
        "transplant_minus_control": _paired(t - c),
        "mean_push": float(np.mean(means)),
        "mean_abs_push": float((host["push_abs"] / host["moved"]).mean()),
    }


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


def _axis(model: Any, args: Any, layers: list[int]) -> Any:
    import torch

    from value_lens.core.model import d_model, model_id, n_layers
    from value_lens.fitting.axis import ValueAxis

    if args.axis:
        return ValueAxis.load(args.axis)
    if args.model == "smollm":
        from bench_decode import _fit_axis  # the same demo-data axis as the decoding bench

        axis = _fit_axis(model, layers)
        if args.save_axis:
            axis.save(args.save_axis)
        return axis
    g = torch.Generator().manual_seed(0)
    return ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=g), model_id=model_id(model)
    )


def _write(out: Path, res: dict[str, Any]) -> None:
    old = json.loads(out.read_text()) if out.is_file() else {}
    merged = {**old.get("modes", {}), **res}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**old, "modes": _finite(merged)}, indent=2, default=float))


def run_modes(model: Any, args: Any) -> None:
    """``--modes``: A/B numbers per mode and the transplant against its control, written under
    ``"modes"`` in ``--out`` (its timings kept), each part as soon as it is done."""
    from value_lens.core.model import model_id, n_layers

    layer = args.layer if args.layer is not None else (2 * n_layers(model)) // 3
    later = min(layer + 3, n_layers(model) - 1)
    t0 = time.perf_counter()
    axis = _axis(model, args, sorted({layer, later}))
    out = Path(args.out)
    head = {
        "model": model_id(model),
        "layer": layer,
        "axis": f"loaded from {args.axis}" if args.axis else "fitted (first:12)",
        "axis_layers": list(axis.layers),
        "axis_seconds": time.perf_counter() - t0,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if "ab" in args.parts:
        _write(out, {**head, "ab": ab_numbers(model, axis, layer, args.ab_items)})
    if "transplant" in args.parts:
        tr = transplant_numbers(model, axis, layer, args.pairs)
        tr["first_token"] = [
            first_token_numbers(model, axis, layer, args.pairs, lam) for lam in (0.5, 1.0)
        ]
        _write(out, {**head, "transplant": tr})
        print(json.dumps(_finite(tr), indent=1, default=float))
    print(f"wrote {out}")
