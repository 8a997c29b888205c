"""Value-guided decoding: best-of-n selection and DeepConf-style early stopping.

:func:`best_of_n` samples ``n`` rollouts of every problem once, recording in the same decoding
passes what every scorer needs (the value axis through the monitor, the logit statistics of the
sampled tokens, mean residuals), checks each rollout, and scores it with every scorer. Its
:class:`~value_lens.decode.results.BestOfN` result tabulates correctness AUROCs and best-of-k
curves from those rollouts alone (the unbiased subset estimators, no regeneration).

:func:`early_stop` follows DeepConf's online protocol (Fu et al. 2025, arXiv 2508.15260) per
problem: the first ``warmup`` rollouts run to the end and set the threshold, a percentile of
their trace scores (the scorer's lowest group mean); each later rollout stops at its first token
``t`` (from the first full group on) whose running group mean, over tokens ``t - W + 1 .. t``,
falls below the threshold, keeping ``t + 1`` tokens. The answer is the majority vote of the
warm-up rollouts and the rollouts that were not stopped. The stop at token ``t`` depends only on
tokens up to ``t``, so it is the decision a live stop rule takes
(``generate(stop_when=vl.stop.below(...))`` with a ``"mean:W"`` monitor aggregate, as the tests
check); the rollouts are still written to the end once, so the tokens saved are counted exactly
against the full run (a stopped row frees no compute in a static batch anyway).

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.decode import scorers
    >>> model = tiny_qwen3()
    >>> res = best_of_n(model, ["a", "b"], 2, {"len": scorers.length()},
    ...                 check=lambda problem, text: len(text) % 2 == 0, max_new_tokens=3)
    >>> res.curves(methods=["oracle"], n_boot=10)["k"].tolist()
    [1, 2]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from value_lens.core.generate import GenerationConfig
from value_lens.core.protocols import GenerativeModel
from value_lens.decode.budget import StopInputs, stops, vote_accuracy, warmup_thresholds
from value_lens.decode.results import BestOfN, Selector, problem_boot
from value_lens.decode.rollouts import Needs, Sample, Task, rollout
from value_lens.decode.scorers import TokenScorer, as_scorer, group_means
from value_lens.decode.store import RolloutStore
from value_lens.errors import InputError

__all__ = [
    "DECODE_GENERATION",
    "EarlyStop",
    "best_of_n",
    "early_stop",
    "per_problem",
    "rescore",
    "stop_step",
]

#: sampling defaults of the decoding runs (overridable by config= and keyword overrides)
DECODE_GENERATION = GenerationConfig(max_new_tokens=32, temperature=0.7, batch_size=16)


def _config(config: GenerationConfig | None, overrides: dict[str, Any]) -> GenerationConfig:
    return (config or DECODE_GENERATION).with_overrides(**overrides)


def best_of_n(
    model: GenerativeModel,
    problems: Sequence[Any],
    n: int,
    scorers: Mapping[str, Any],
    selector: Selector = "argmax",
    *,
    check: Callable[[Any, str], Any],
    answer: Callable[[str], Hashable | None] | None = None,
    prompt: Callable[[Any], Any] | None = None,
    config: GenerationConfig | None = None,
    progress: bool = False,
    store: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> BestOfN:
    """Sample ``n`` rollouts per problem and score each with every scorer.

    Args:
        model: a TransformerBridge.
        problems: anything ``prompt`` maps to a ``generate`` prompt (default: a dict's
            ``"prompt"``, or its ``"question"`` as a user message, or a str / message list).
        n: rollouts per problem.
        scorers: ``{name: scorer}`` (:mod:`value_lens.decode.scorers`, or ``(sample) -> float``).
        selector: how :meth:`BestOfN.curves` picks among k samples by default: ``"argmax"``
            (the top score) or ``"weighted_vote"`` (a vote weighted by each score's rank).
        check: ``(problem, text) -> bool``: is a rollout correct?
        answer: ``(text) -> key`` for votes (``None`` abstains); default the stripped text.
        prompt: ``(problem) -> prompt``.
        config: generation settings; default :data:`DECODE_GENERATION` (T=0.7, 32 new tokens,
            16 rows per batch); ``overrides`` set its fields.
        progress: a progress bar over batches.
        store: a folder that keeps every finished batch of rollouts, so a killed run resumes
            (:class:`~value_lens.decode.store.RolloutStore`).
    """
    if not scorers:
        raise InputError(
            "scorers is empty; pass e.g. {'logprob': vl.decode.scorers.mean_logprob()}"
        )
    if selector not in ("argmax", "weighted_vote"):
        raise InputError(f"selector must be 'argmax' or 'weighted_vote', got {selector!r}")
    objs = {str(k): as_scorer(v) for k, v in scorers.items()}
    needs = Needs()
    for s in objs.values():
        needs = needs | s.needs
    cfg = _config(config, overrides)
    task = Task(check=check, answer=answer, prompt=prompt)
    kept = (
        None if store is None else RolloutStore.for_run(store, model, problems, n, needs, task, cfg)
    )
    samples = rollout(model, problems, n, needs, task, cfg, progress=progress, store=kept)
    return rescore(samples, n, objs, selector, info={"generation": cfg.to_dict()})


def rescore(
    samples: list[Sample],
    n: int,
    scorers: Mapping[str, Any],
    selector: Selector = "argmax",
    *,
    info: dict[str, Any] | None = None,
) -> BestOfN:
    """Score recorded rollouts (e.g. again with other scorers) into a :class:`BestOfN`."""
    out = {}
    clash = sorted(set(map(str, scorers)) & {"random", "majority", "oracle"})
    if clash:
        raise InputError(f"scorer names {clash} are taken by the baselines; rename them")
    for name, s in scorers.items():
        sc = np.asarray(as_scorer(s).score(samples), dtype=np.float64)
        if sc.ndim != 2 or sc.shape[0] != len(samples) or not np.isfinite(sc).all():
            raise InputError(f"scorer {name!r} returned {sc.shape}, not finite [n_samples, k]")
        out[str(name)] = sc
    meta = dict(info or {})
    meta["scorers"] = sorted(out)
    return BestOfN(samples, n, out, selector, meta)


@dataclass(frozen=True, eq=False)
class EarlyStop:
    """What :func:`early_stop` found.

    Attributes:
        frame: one row per rollout: ``problem``, ``sample``, ``warmup``, ``threshold`` (its
            problem's), ``trace_score``, ``full_tokens``, ``kept_tokens``, ``stopped``,
            ``answer``, ``correct``.
        per_problem: one row per problem: ``threshold``, ``accuracy`` (vote of the warm-up and
            unstopped rollouts), ``baseline`` (vote of all ``n`` full rollouts), ``kept_tokens``,
            ``full_tokens``.
        info: the settings (scorer group ``W``, warm-up, threshold rule).
    """

    frame: pd.DataFrame
    per_problem: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_saved(self) -> float:
        """Share of the full run's new tokens that early stopping did not write."""
        return float(
            1 - self.per_problem["kept_tokens"].sum() / self.per_problem["full_tokens"].sum()
        )

    def summary(self, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
        """Accuracy, baseline accuracy, their difference and the tokens saved, each with a
        problem-bootstrap interval."""
        pp = self.per_problem
        acc, base = pp["accuracy"].to_numpy(), pp["baseline"].to_numpy()
        kept, full = pp["kept_tokens"].to_numpy(float), pp["full_tokens"].to_numpy(float)
        n_p = len(pp)
        out: dict[str, Any] = dict(self.info)
        for key, stat, point in (
            ("accuracy", lambda w: w @ acc / w.sum(), acc.mean()),
            ("baseline", lambda w: w @ base / w.sum(), base.mean()),
            ("accuracy_change", lambda w: w @ (acc - base) / w.sum(), (acc - base).mean()),
            ("tokens_saved", lambda w: 1 - (w @ kept) / (w @ full), self.tokens_saved),
        ):
            lo, hi = problem_boot(stat, n_p, n_boot=n_boot, seed=seed, ci=ci)
            out.update({key: float(point), f"{key}_lo": lo, f"{key}_hi": hi})
        out["n_problems"], out["stopped_share"] = n_p, float(pp["stopped_share"].mean())
        out["warmup"] = int(self.info.get("warmup", 0))
        return out


def _thresholds(spec: float | str, inputs: StopInputs, warmup: int) -> np.ndarray:
    """``[P]``: a fixed threshold for every problem, or each problem's warm-up percentile."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        warmup_thresholds(inputs, warmup, [0])  # checks warmup
        return np.full(inputs.shape[0], float(spec))
    kind, _, arg = str(spec).partition(":")
    try:
        q = float(arg)
    except ValueError:
        q = -1.0
    if kind != "percentile" or not 0 <= q <= 100:
        raise InputError(f"threshold is a number or 'percentile:P' (0..100), got {spec!r}")
    return warmup_thresholds(inputs, warmup, [q])[:, 0]


def stop_step(scorer: TokenScorer, s: Sample, threshold: float) -> int | None:
    """Tokens kept when ``s`` stops (the first full group whose mean is below ``threshold``,
    that group's last token kept), or ``None`` when it never does."""
    w = scorer.group
    assert w is not None
    x = scorer.signal(s)
    if x.numel() < w:
        return None
    hit = np.flatnonzero(group_means(x, w).numpy() < threshold)
    return int(hit[0]) + w if hit.size else None


def early_stop(
    model: GenerativeModel | None,
    problems: Sequence[Any] | None,
    n: int,
    scorer: TokenScorer,
    warmup: int = 16,
    threshold: float | str = "percentile:10",
    *,
    check: Callable[[Any, str], Any] | None = None,
    answer: Callable[[str], Hashable | None] | None = None,
    prompt: Callable[[Any], Any] | None = None,
    config: GenerationConfig | None = None,
    rollouts: BestOfN | None = None,
    store: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> EarlyStop:
    """DeepConf-style early stopping with ``scorer`` (see the module docstring).

    Args:
        model, problems, n, check, answer, prompt, config, store, overrides: as in
            :func:`best_of_n`.
        scorer: a token scorer with a ``"lowest:W"`` aggregate over all tokens, e.g.
            ``group_confidence(window=16)`` or ``value(axis, layer, agg="lowest:16")``.
        warmup: rollouts per problem that always run to the end and set the threshold; 16 by
            default, as DeepConf (so ``n`` must exceed 16; the summary records how many).
        threshold: ``"percentile:P"`` of the warm-up trace scores of each problem (DeepConf-low
            is ``"percentile:90"``, keeping the top 10%; DeepConf-high ``"percentile:10"``), or
            a fixed number.
        rollouts: reuse the rollouts of a :func:`best_of_n` run (its first ``warmup`` samples
            of each problem are the warm-up); ``model`` and ``problems`` are then not used.
    """
    if not isinstance(scorer, TokenScorer) or scorer.group is None or scorer.window != "all":
        raise InputError(
            "early_stop needs a running group score: group_confidence(window=W) or "
            "value(axis, layer, agg='lowest:W') (window 'all')"
        )
    if not 1 <= warmup < n:
        raise InputError(
            f"warmup must be in 1..n-1 ({n - 1}), got {warmup}; the default is DeepConf's 16 "
            "warm-ups, so sample n > 16 rollouts per problem or pass a smaller warmup="
        )
    if rollouts is None:
        if model is None or problems is None or check is None:
            raise InputError("early_stop needs model, problems and check=, or rollouts=")
        task = Task(check=check, answer=answer, prompt=prompt)
        cfg = _config(config, overrides)
        needs = scorer.needs
        saved = (
            None
            if store is None
            else RolloutStore.for_run(store, model, problems, n, needs, task, cfg)
        )
        samples = rollout(model, problems, n, needs, task, cfg, store=saved)
    else:
        if rollouts.n != n:
            raise InputError(f"rollouts has n={rollouts.n}, not {n}")
        samples = rollouts.samples
    inputs = StopInputs.of(samples, n, scorer)
    thr = _thresholds(threshold, inputs, warmup)
    kept = stops(inputs, warmup, thr[:, None])[..., 0]  # [P, n], -1: not stopped
    info = {"warmup": warmup, "n": n, "threshold": str(threshold), "group": scorer.group}
    per = per_problem(inputs, warmup, threshold).assign(problem=[s.problem for s in samples[::n]])
    return EarlyStop(_frame(samples, inputs, thr, kept, warmup), per, info)


def _frame(
    samples: Sequence[Sample], inputs: StopInputs, thr: np.ndarray, kept: np.ndarray, warmup: int
) -> pd.DataFrame:
    n = inputs.shape[1]
    flat = kept.reshape(-1)
    return pd.DataFrame(
        {
            "problem": [s.problem for s in samples],
            "sample": [s.index for s in samples],
            "warmup": [s.index < warmup for s in samples],
            "threshold": np.repeat(thr, n),
            "trace_score": inputs.scores.reshape(-1),
            "full_tokens": inputs.n_tokens.reshape(-1),
            "kept_tokens": np.where(flat >= 0, flat, inputs.n_tokens.reshape(-1)),
            "stopped": flat >= 0,
            "answer": [s.answer for s in samples],
            "correct": inputs.correct.reshape(-1),
        }
    )


def per_problem(inputs: StopInputs, warmup: int, threshold: float | str) -> pd.DataFrame:
    """:attr:`EarlyStop.per_problem` straight from arrays (:class:`~value_lens.decode.budget.
    StopInputs`): each problem's threshold, vote accuracy with and without stopping, and tokens
    kept and written in full."""
    thr = _thresholds(threshold, inputs, warmup)
    kept = stops(inputs, warmup, thr[:, None])[..., 0]
    full = inputs.n_tokens.astype(np.float64)
    every = np.ones(inputs.shape, dtype=bool)
    return pd.DataFrame(
        {
            "problem": np.arange(inputs.shape[0]),
            "threshold": thr,
            "accuracy": vote_accuracy(kept < 0, inputs.answers, inputs.correct),
            "baseline": vote_accuracy(every, inputs.answers, inputs.correct),
            "kept_tokens": np.where(kept >= 0, kept, full).sum(1),
            "full_tokens": full.sum(1),
            "stopped_share": (kept[:, warmup:] >= 0).mean(1),
        }
    )
