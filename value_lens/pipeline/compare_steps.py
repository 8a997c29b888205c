"""Post-training steps of the pipeline (see :mod:`value_lens.pipeline.steps` for the contract):
LoRA DPO or SFT on one preferred word, saved as a model folder that ``--model`` loads, and the
comparison of a base and a tuned model along the base's value axis.

:func:`posttrain` writes ``out/model`` (the merged model and its tokenizer, by
``save_pretrained``), ``out/pairs.jsonl`` and ``out/posttrain_log.csv`` (trl's per-step log).
:func:`compare` writes the tables and summaries of :data:`COMPARISONS` as CSV
(:data:`~value_lens.pipeline.rundir.RESULT_FILES`), which the report draws.

Example:
    >>> sft_rows_from_pairs([{"prompt": [{"role": "user", "content": "Pick one: kite, lamp"}],
    ...                       "chosen": [{"role": "assistant", "content": "I'd pick kite."}]}])
    [{'messages': [{'role': 'user', 'content': 'Pick one: kite, lamp'}, {'role': 'assistant', 'content': "I'd pick kite."}]}]
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from value_lens.compare import CompareResult, preference_rank, selection_accuracy, word_delta
from value_lens.core.conventions import resolve_layers
from value_lens.core.io import atomic_write_text
from value_lens.core.model import model_id, n_layers
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline.options import TINY, layer_or_default, load_axis_option
from value_lens.pipeline.rundir import RESULT_FILES, update_meta
from value_lens.pipeline.steps import AXIS_FILE, build, quiet

__all__ = [
    "COMPARISONS",
    "LOG_FILE",
    "MODEL_DIR",
    "PAIRS_FILE",
    "Compared",
    "Posttrained",
    "axis_for_compare",
    "posttrain_size",
    "compare",
    "load_hf_option",
    "posttrain",
    "sft_rows_from_pairs",
]

#: where :func:`posttrain` saves the merged model, its pairs and trl's log, inside ``out``.
MODEL_DIR = "model"
PAIRS_FILE = "pairs.jsonl"
LOG_FILE = "posttrain_log.csv"
#: the comparisons :func:`compare` runs; each writes ``RESULT_FILES[name]`` and ``[name_summary]``.
COMPARISONS = ("selection", "rank_assistant", "rank_user", "word_delta")
#: the model names in every table (the first is the reference for paired differences).
NAMES = ("base", "tuned")
#: the paper's pairs per word for training (800 made, 640 trained on).
PAPER_PAIRS = 640
#: ``value-lens posttrain``'s size off CUDA: 64 pairs x 2 epochs (the paper's 640 x 6 DPO is about
#: 3.4 h on the embedded model on a CPU, at ~101 s per 32 pairs per epoch; this is ~7 min).
CPU_PAIRS, CPU_EPOCHS = 64, 2.0

Log = Callable[[str], None]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Posttrained:
    """What :func:`posttrain` made: the merged HF model, where it was saved, the settings used."""

    model: Any  # the merged Hugging Face model (not a bridge)
    path: Path
    settings: Any


@dataclass(frozen=True)
class Compared:
    """What :func:`compare` made: ``{name: CompareResult}`` (see :data:`COMPARISONS`), the layer
    read and the results folder."""

    results: dict[str, CompareResult]
    layer: int
    out: Path


def load_hf_option(model: str | None, *, dtype: str | None = None) -> tuple[Any, Any]:
    """The HF model and tokenizer of a ``--model`` value: ``None`` = embedded SmolLM2, ``"tiny"``
    = :func:`value_lens.testing.tiny_qwen3_hf` (the weights of ``--model tiny``), else a
    directory or hub id (:func:`value_lens.core.model.load_hf`)."""
    if model == TINY:
        from value_lens.testing import tiny_qwen3_hf

        return tiny_qwen3_hf()
    from value_lens.core.model import load_hf, parse_dtype

    return load_hf(model, dtype=parse_dtype(dtype))


def posttrain_size(paper: bool | None = None) -> tuple[int, float | None]:
    """``(pairs, epochs)`` of ``value-lens posttrain``: the paper's (:data:`PAPER_PAIRS`, the
    recipe's epochs, i.e. None) when ``paper``, or for ``paper=None`` when CUDA is available (as
    the demo picks its scale); else :data:`CPU_PAIRS` x :data:`CPU_EPOCHS`.

    >>> posttrain_size(True), posttrain_size(False)
    ((640, None), (64, 2.0))
    """
    import torch

    if paper is None:
        paper = torch.cuda.is_available()
    return (PAPER_PAIRS, None) if paper else (CPU_PAIRS, CPU_EPOCHS)


def sft_rows_from_pairs(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """SFT chat rows from preference pairs: each prompt followed by its chosen reply."""
    return [{"messages": [*p["prompt"], *p["chosen"]]} for p in pairs]


def posttrain(
    model_hf: Any,
    tokenizer: Any,
    out: PathLike,
    *,
    word: str,
    n_pairs: int = PAPER_PAIRS,
    method: str = "dpo",
    seed: int = 42,
    log: Log = quiet,
    **overrides: Any,
) -> Posttrained:
    """LoRA ``method`` (``"dpo"`` on :func:`~value_lens.data.preference.word_pairs`, or ``"sft"``
    on the same pairs' chosen replies) preferring ``word``; saves the merged model and the
    tokenizer to ``out/model``, so ``--model OUT/model`` (:func:`value_lens.load_model`) loads it.

    ``seed`` seeds both the pairs and the training; ``overrides`` are settings fields
    (``epochs=1``, ``lora={"r": 8}``, ``progress=True``, ...; see :mod:`value_lens.posttrain`),
    default the paper's. ``log`` also gets the estimated time after the first optimiser step.
    """
    from value_lens.data.preference import word_pairs
    from value_lens.posttrain import DPOSettings, SFTSettings, dpo, sft

    if method not in ("dpo", "sft"):
        raise InputError(f"method must be 'dpo' or 'sft', got {method!r}")
    cls = DPOSettings if method == "dpo" else SFTSettings
    settings = cls(seed=seed).replace(**{k: v for k, v in overrides.items() if v is not None})
    pairs = word_pairs(word, n=n_pairs, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PAIRS_FILE, "".join(json.dumps(p) + "\n" for p in pairs))
    log(f"{method.upper()} on {len(pairs)} pairs preferring {word!r}, {settings.epochs:g} epoch(s)")
    history: list[dict[str, Any]] = []
    if method == "dpo":
        tuned = dpo(model_hf, tokenizer, pairs, settings, log=history, say=log)
    else:
        rows = sft_rows_from_pairs(pairs)
        tuned = sft(model_hf, tokenizer, rows, settings, log=history, say=log)
    path = out / MODEL_DIR
    tuned.save_pretrained(path)
    tokenizer.save_pretrained(path)
    pd.DataFrame(history).to_csv(out / LOG_FILE, index=False)
    base_id = getattr(model_hf.config, "_name_or_path", "") or type(model_hf).__name__
    update_meta(
        out,
        posttrain={
            "method": method,
            "word": word,
            "n_pairs": len(pairs),
            "base_model": base_id,
            "model_dir": str(path),
            "settings": dataclasses.asdict(settings),
        },
    )
    return Posttrained(tuned, path, settings)


def axis_for_compare(
    base: Any,
    axis: PathLike | None,
    out: PathLike,
    *,
    criteria: list[str] | None = None,
    n_per_criterion: int = 4,
    seed: int = 0,
    log: Log = quiet,
) -> ValueAxis:
    """``axis`` (a saved ValueAxis or the paper's ``.npy``), else ``out/axis.safetensors`` when it
    exists, else one fitted on ``base`` as :func:`~value_lens.pipeline.steps.build` does."""
    path = Path(axis) if axis is not None else Path(out) / AXIS_FILE
    if axis is not None or path.exists():
        log(f"axis: {path}")
        return load_axis_option(path, base)
    log("no --axis: fitting one on the base model (value-lens build)")
    _, fitted = build(
        base, out, n_per_criterion=n_per_criterion, criteria=criteria, seed=seed, log=log
    )
    return fitted


def _sentences(word: str, path: PathLike | None) -> dict[str, list[str]] | None:
    from value_lens.data.sentences import load_word_sentences, shipped_words, word_sentences

    if path is not None:
        return load_word_sentences(path)
    return word_sentences() if word in shipped_words() else None


def compare(
    base: Any,
    tuned: Any,
    out: PathLike,
    *,
    word: str,
    axis: ValueAxis | PathLike | None = None,
    layer: int | None = None,
    n_prompts: int = 160,
    sentences: PathLike | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    criteria: list[str] | None = None,
    n_per_criterion: int = 4,
    log: Log = quiet,
) -> Compared:
    """Selection accuracy, the preferred item's value rank (as the answer and in the prompt) on
    ``n_prompts`` held-out prompts (:func:`~value_lens.data.preference.eval_prompts`, ``seed``),
    and the word's value change in natural sentences (shipped, or the JSONL ``sentences``; skipped
    when ``word`` has none), base against tuned at ``layer`` (default
    :func:`~value_lens.pipeline.options.layer_or_default`); tables and summaries as CSV.

    ``axis`` is a ValueAxis or a path; None: :func:`axis_for_compare` (``out``'s axis, else one
    fitted on ``base`` with ``criteria``, ``n_per_criterion`` and ``seed``).
    """
    from value_lens.data.preference import eval_prompts

    if not isinstance(axis, ValueAxis):
        axis = axis_for_compare(
            base, axis, out, criteria=criteria, n_per_criterion=n_per_criterion, seed=seed, log=log
        )

    lay = resolve_layers([layer], n_layers(base))[0] if layer is not None else None
    lay = layer_or_default(base, axis.layers, lay)
    prompts = eval_prompts(word, n=n_prompts, seed=seed)
    models = dict(zip(NAMES, (base, tuned), strict=True))
    boot: dict[str, Any] = {"n_boot": n_boot, "seed": seed}
    log(f"comparing at layer {lay} on {len(prompts)} held-out prompts")
    results = {
        "selection": selection_accuracy(models, prompts, word, n_boot=n_boot, seed=seed),
        "rank_assistant": preference_rank(
            models, axis, lay, prompts, word, n_boot=n_boot, seed=seed
        ),
        "rank_user": preference_rank(
            models, axis, lay, prompts, word, position="user", n_boot=n_boot, seed=seed
        ),
    }
    sents = _sentences(word, sentences)
    if sents is None:
        log(f"no shipped sentences for {word!r}: word_delta skipped (pass --sentences FILE)")
    else:
        results["word_delta"] = word_delta(
            base, tuned, axis, lay, sents, word, n_boot=n_boot, seed=seed
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, res in results.items():
        res.table.to_csv(out / RESULT_FILES[name], index=False)
        res.summary.to_csv(out / RESULT_FILES[f"{name}_summary"], index=False)
    update_meta(
        out,
        compare={
            "base": model_id(base),
            "tuned": model_id(tuned),
            "word": word,
            "layer": lay,
            "n_prompts": len(prompts),
            "comparisons": list(results),
            "sentences": str(sentences) if sentences is not None else "shipped",
            **boot,
        },
    )
    return Compared(results, lay, out)
