"""LoRA post-training with trl and peft (the optional extra ``value_lens[train]``): DPO on
preference pairs and SFT on chat rows, each returning a merged HF model for
:func:`value_lens.load_model`.

The caller's model and tokenizer are deep-copied first and never changed. Training writes to a
temporary folder (deleted afterwards) unless ``output_dir`` is given.

Example (a few seconds on a CPU):
    >>> from value_lens.testing import tiny_qwen3_hf
    >>> from value_lens.data.preference import word_pairs
    >>> hf, tok = tiny_qwen3_hf()
    >>> tuned = dpo(hf, tok, word_pairs("kite", n=4), epochs=1, batch_size=4, lora={"r": 4})
    >>> type(tuned).__name__
    'Qwen3ForCausalLM'
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from value_lens.errors import InputError
from value_lens.posttrain.settings import DPOSettings, LoraSettings, SFTSettings, _Common

__all__ = ["dpo", "dpo_rows", "sft", "sft_rows_for_trl"]

Say = Callable[[str], None]
_INSTALL = "install the training extra: pip install 'value_lens[train]' (trl, peft, datasets)"


def _require() -> tuple[Any, Any, Any]:
    try:
        import datasets
        import peft
        import trl
    except ImportError as exc:
        raise ImportError(f"{exc.name} is missing; {_INSTALL}") from None
    return trl, peft, datasets


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    ok = isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    )
    if not ok or not value:
        raise InputError(
            f"{where} must be a non-empty list of {{'role': ..., 'content': ...}} messages "
            "(or a string for a reply)"
        )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def dpo_rows(pairs: Sequence[dict[str, Any]], *, enable_thinking: bool = False) -> list[dict]:
    """trl's conversational preference rows (``prompt``/``chosen``/``rejected`` messages and
    ``chat_template_kwargs``) from pairs such as :func:`value_lens.data.preference.word_pairs`."""
    if not pairs:
        raise InputError("no preference pairs; build some with vl.data.preference.word_pairs(...)")
    rows = []
    for i, p in enumerate(pairs):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in p]
        if missing:
            raise InputError(
                f"pair {i} lacks {missing}; each pair needs prompt (messages), chosen and "
                "rejected (an assistant message list or a string)"
            )
        prompt = _messages(p["prompt"], f"pair {i} prompt")
        if prompt[-1]["role"] != "user":
            raise InputError(f"pair {i}: the prompt must end with a user message")
        rows.append(
            {
                "prompt": prompt,
                "chosen": _messages(p["chosen"], f"pair {i} chosen"),
                "rejected": _messages(p["rejected"], f"pair {i} rejected"),
                "chat_template_kwargs": {"enable_thinking": enable_thinking},
            }
        )
    return rows


def sft_rows_for_trl(
    rows: Sequence[dict[str, Any]], *, enable_thinking: bool = False, completion_only: bool = True
) -> list[dict]:
    """trl rows from chat rows with ``messages``: prompt/completion (the last assistant message is
    the completion) when ``completion_only``, else whole ``messages``."""
    if not rows:
        raise InputError("no SFT rows; build some with vl.data.sft.sft_rows(...)")
    out = []
    for i, r in enumerate(rows):
        if "messages" not in r:
            raise InputError(f"row {i} lacks 'messages'; each row needs a chat message list")
        msgs = _messages(r["messages"], f"row {i} messages")
        if msgs[-1]["role"] != "assistant":
            raise InputError(f"row {i}: the messages must end with the assistant's answer")
        kw = {"enable_thinking": enable_thinking}
        if completion_only:
            out.append({"prompt": msgs[:-1], "completion": msgs[-1:], "chat_template_kwargs": kw})
        else:
            out.append({"messages": msgs, "chat_template_kwargs": kw})
    return out


def _device_args(s: _Common) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) if s.bf16 is None else s.bf16
    ckpt = cuda if s.gradient_checkpointing is None else s.gradient_checkpointing
    return {"use_cpu": not cuda, "bf16": bool(bf16), "gradient_checkpointing": bool(ckpt)}


def _common_args(s: _Common, out_dir: str) -> dict[str, Any]:
    return {
        "output_dir": out_dir,
        "learning_rate": s.lr,
        "lr_scheduler_type": s.scheduler,
        "warmup_steps": s.warmup_ratio,  # a float in [0, 1) is a ratio
        "num_train_epochs": s.epochs,
        "max_steps": s.max_steps,
        "per_device_train_batch_size": s.batch_size,
        "gradient_accumulation_steps": s.grad_accum,
        "max_length": s.max_length,
        "seed": s.seed,
        "data_seed": s.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,  # the bar is value_lens's (_Progress): no widgets in notebooks
        "dataloader_num_workers": 0,
        **_device_args(s),
    }


def _lora_config(peft: Any, s: _Common) -> Any:
    lo = s.lora
    assert isinstance(lo, LoraSettings)  # settings turn a dict into LoraSettings
    target = lo.target if isinstance(lo.target, str) else list(lo.target)
    return peft.LoraConfig(
        r=lo.r,
        lora_alpha=lo.alpha,
        lora_dropout=lo.dropout,
        target_modules=target,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _forget_gguf(model: Any) -> None:
    """A GGUF checkpoint (the embedded SmolLM2) is de-quantised to float weights when loaded, but
    the model still reports a GGUF quantizer, which the trainer refuses. Drop that flag from our
    copy; other quantizers (e.g. bitsandbytes, for QLoRA) are left alone."""
    quantizer = getattr(model, "hf_quantizer", None)
    method = str(getattr(getattr(quantizer, "quantization_config", None), "quant_method", ""))
    if quantizer is not None and method.lower().endswith("gguf"):
        if not all(p.is_floating_point() for p in model.parameters()):
            raise InputError("this GGUF model holds non-float weights; load it de-quantised")
        quantizer.remove_quantization_config(model)


def _copies(model_hf: Any, tokenizer: Any) -> tuple[Any, Any]:
    if isinstance(model_hf, str) or not hasattr(model_hf, "parameters"):
        raise InputError(
            "pass a loaded HF causal LM (e.g. from vl.core.model.load_hf(...)), not "
            f"{type(model_hf).__name__}"
        )
    if tokenizer is None:
        raise InputError("pass the model's tokenizer: dpo(model_hf, tokenizer, pairs)")
    model, tok = copy.deepcopy(model_hf), copy.deepcopy(tokenizer)
    _forget_gguf(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.train()
    return model, tok


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """datasets' map bars off unless ``progress``, restored afterwards; transformers' notice that
    trl's ``gradient_checkpointing`` field is being renamed silenced."""
    import datasets

    before = not datasets.are_progress_bars_disabled()
    (datasets.enable_progress_bars if progress else datasets.disable_progress_bars)()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*gradient_checkpointing.*", category=FutureWarning
            )
            yield
    finally:
        (datasets.enable_progress_bars if before else datasets.disable_progress_bars)()


def _drop_trl_forward(model: torch.nn.Module) -> None:
    """Undo trl's instance-level ``forward`` patches (its fused LM head). The patch closes over
    the bound method of *this* object, so a deep copy (as :func:`value_lens.load_model` makes)
    would run the original's modules, and hooks on the copy would never fire."""
    for mod in model.modules():
        fwd = mod.__dict__.get("forward")
        code = getattr(getattr(fwd, "__func__", fwd), "__code__", None)
        if code is not None and f"{os.sep}trl{os.sep}" in code.co_filename:
            del mod.__dict__["forward"]


def _progress_callback(what: str, enabled: bool | None, say: Say | None) -> Any:
    """A trainer callback: value_lens's progress bar over the optimiser steps, and after the
    first step the estimated time of the whole run (to ``say``)."""
    import time

    from transformers import TrainerCallback

    from value_lens.core.progress import estimate, progress

    class _Progress(TrainerCallback):
        bar: Any = None
        t0 = 0.0

        def on_train_begin(self, args, state, control, **kw):  # noqa: ARG002
            self.bar = progress(total=state.max_steps, desc=what, unit="step", enabled=enabled)

        def on_step_begin(self, args, state, control, **kw):  # noqa: ARG002
            if state.global_step == 0:
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ARG002
            self.bar.update(1)
            if state.global_step == 1 and say is not None:
                say(estimate(time.perf_counter() - self.t0, state.max_steps, what=what))

        def on_train_end(self, args, state, control, **kw):  # noqa: ARG002
            self.bar.close()

    return _Progress()


def _finish(trainer: Any, log: list[dict[str, Any]] | None, s: _Common, say: Say | None) -> Any:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the per-step metrics would otherwise be printed
    what = "DPO" if isinstance(s, DPOSettings) else "SFT"
    trainer.add_callback(_progress_callback(what, s.progress, say))
    trainer.train()
    if log is not None:
        log.extend(dict(e) for e in trainer.state.log_history)
    merged = trainer.model.merge_and_unload()
    _drop_trl_forward(merged)
    merged = merged.to(torch.float32) if trainer.args.bf16 else merged
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged.eval()


def _settings(cls: type[_Common], settings: Any, overrides: dict[str, Any]) -> Any:
    base: _Common = cls() if settings is None else settings
    if not isinstance(base, cls):
        raise InputError(f"settings must be a {cls.__name__}, got {type(base).__name__}")
    return base.replace(**overrides) if overrides else base


def dpo(
    model_hf: Any,
    tokenizer: Any,
    pairs: Sequence[dict[str, Any]],
    settings: DPOSettings | None = None,
    *,
    log: list[dict[str, Any]] | None = None,
    say: Say | None = None,
    **overrides: Any,
) -> Any:
    """LoRA DPO on preference ``pairs``; returns the merged HF model (the caller's is untouched).

    Args:
        model_hf / tokenizer: an HF causal LM and its tokenizer (deep-copied, never changed).
        pairs: rows with ``prompt`` (system/user messages), ``chosen`` and ``rejected`` (assistant
            messages or strings), e.g. :func:`value_lens.data.preference.word_pairs`.
        settings: a :class:`DPOSettings` (default: the paper's protocol).
        log: a list to extend with trl's log history (loss, rewards/margins, ... per step).
        say: called with one line after the first optimiser step: its time and the estimated
            time of the whole run (:func:`value_lens.core.progress.estimate`).
        **overrides: any :class:`DPOSettings` field, e.g. ``epochs=1, lora={"r": 8}``.
    """
    trl, peft, datasets = _require()
    s = _settings(DPOSettings, settings, overrides)
    model, tok = _copies(model_hf, tokenizer)
    data = datasets.Dataset.from_list(dpo_rows(pairs, enable_thinking=s.enable_thinking))
    with tempfile.TemporaryDirectory(prefix="value_lens_dpo_") as tmp, _quiet(bool(s.progress)):
        args = trl.DPOConfig(
            **_common_args(s, s.output_dir or tmp),
            beta=s.beta,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=s.precompute_ref,
        )
        trainer = trl.DPOTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tok,
            peft_config=_lora_config(peft, s),
        )
        return _finish(trainer, log, s, say)


def sft(
    model_hf: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    settings: SFTSettings | None = None,
    *,
    log: list[dict[str, Any]] | None = None,
    say: Say | None = None,
    **overrides: Any,
) -> Any:
    """LoRA SFT on chat ``rows`` (each with ``messages`` ending in the assistant's answer, e.g.
    :func:`value_lens.data.sft.sft_rows`); returns the merged HF model (the caller's is untouched).
    Settings, ``log`` and ``say`` as in :func:`dpo`, with :class:`SFTSettings`."""
    trl, peft, datasets = _require()
    s = _settings(SFTSettings, settings, overrides)
    model, tok = _copies(model_hf, tokenizer)
    data = datasets.Dataset.from_list(
        sft_rows_for_trl(rows, enable_thinking=s.enable_thinking, completion_only=s.completion_only)
    )
    with tempfile.TemporaryDirectory(prefix="value_lens_sft_") as tmp, _quiet(bool(s.progress)):
        args = trl.SFTConfig(
            **_common_args(s, s.output_dir or tmp),
            completion_only_loss=s.completion_only,
            packing=False,
        )
        trainer = trl.SFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tok,
            peft_config=_lora_config(peft, s),
        )
        return _finish(trainer, log, s, say)
